"""Figures of a run. Each function returns a matplotlib Figure and saves nothing."""

from __future__ import annotations

import hashlib
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def safe_name(name: str) -> str:
    """A column name as part of a file name. Characters other than letters, digits, '.', '-' and
    '_' become '_' ('sh (g/kg)' -> 'sh__g_kg_-<hash>'); a name that had to change gets a short
    hash of the original, so two columns never share a file."""
    safe = re.sub(r"[^\w.-]", "_", str(name))
    if not safe.strip("."):  # '.', '..' or empty would name a folder
        safe = "_" + safe
    if safe != name:
        safe += "-" + hashlib.sha1(str(name).encode()).hexdigest()[:6]
    return safe

def labelled(name: str, unit: str | None) -> str:
    """An axis label with its unit: "temp (degF)", or the name alone."""
    return f"{name} ({unit})" if unit else name


# a forecast plot draws at most this many series (rows); more are chosen across the ranking
MAX_PANELS = 6
# a by-series plot draws at most this many series (rows), those with the largest model error
MAX_SERIES_ROWS = 30


def forecasts_vs_actuals(
    forecasts: pd.DataFrame, target: str, days: int = 14, every: int | None = None,
    unit: str | None = None, lead: tuple[str, float] = ("steps", 1.0), stretches: int = 3,
) -> Figure:
    """A grid of the test actuals and forecast trajectories from one origin per `every` steps
    (default: one per horizon): a row per series (at most MAX_PANELS, chosen from the best to the
    worst forecast when there are more), a column per stretch of `days` days, spread over the
    whole test span (its start, middle and end; one column when the span is shorter)."""
    df = forecasts[forecasts["target"] == target]
    ids, n_series = chosen_series(df)
    spans = test_stretches(df["origin"], pd.Timedelta(days=days), stretches)
    every = every or int(df["lead"].max())
    width = 11 if len(spans) == 1 else 4.2 * len(spans) + 0.6
    fig, axes = plt.subplots(len(ids), len(spans), figsize=(width, 2.4 * len(ids) + 0.5),
                             squeeze=False, sharex="col", sharey="row")
    for row, name in enumerate(ids):
        one = df[df["series"] == name]
        for col, (start, end) in enumerate(spans):
            ax = axes[row, col]
            _trajectories(ax, one[(one["origin"] >= start) & (one["origin"] < end)], every)
            ax.set_title(f"{name}: {target}, {start:%d %b} - {end:%d %b %Y}", fontsize=8,
                         loc="left")
        axes[row, 0].set_ylabel(labelled(target, unit))
    axes[0, 0].legend(loc="upper right", fontsize=7)
    shown = f"{len(ids)} of {n_series} series, best to worst" if len(ids) < n_series else ""
    fig.suptitle(f"Test forecasts of {target} from one origin every {every * lead[1]:g} "
                 f"{lead[0]}" + (f" ({shown})" if shown else ""), fontsize=10)
    for ax in axes[-1]:  # short date labels: several columns share the width
        locator = mdates.AutoDateLocator(maxticks=6)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    fig.tight_layout()
    return fig


def chosen_series(df: pd.DataFrame, most: int = MAX_PANELS) -> tuple[list, int]:
    """The series a forecast plot draws -> (ids, how many there are): all of them in their
    order, or `most` spread evenly over the ranking by MAE, best first."""
    error = (df["forecast"] - df["actual"]).abs().groupby(df["series"], sort=False,
                                                                observed=True).mean()
    if len(error) <= most:
        return list(error.index), len(error)
    ranked = list(error.sort_values(kind="stable").index)
    picks = np.linspace(0, len(ranked) - 1, most).round().astype(int)
    return [ranked[i] for i in picks], len(error)


def test_stretches(origins: pd.Series, width: pd.Timedelta,
                   n: int) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """(start, end) of `n` stretches of the test origins, `width` long, the first at the start
    of the span, the last at its end, the others evenly between; one stretch over the whole span
    when it is no longer than n * width."""
    first, last = origins.min(), origins.max()
    if n < 2 or last - first <= width * n:
        return [(first, last + pd.Timedelta(1, "ns"))]
    gap = (last - first - width) / (n - 1)
    return [(first + i * gap, first + i * gap + width) for i in range(n)]


def _trajectories(ax, one: pd.DataFrame, every: int) -> None:
    """One series' actuals and forecasts (with interval bands) from one origin per `every`."""
    actual = _break_gaps(one.drop_duplicates("time").sort_values("time"))
    ax.plot(actual["time"], actual["actual"], color="black", lw=1.0, label="actual")
    bands = interval_bands(one.columns)
    for i, origin in enumerate(np.sort(one["origin"].unique())[::every]):
        path = one[one["origin"] == origin].sort_values("lead")
        ax.plot(path["time"], path["forecast"], color="tab:red", lw=0.9, alpha=0.8,
                label="forecast" if i == 0 else None)
        for low, high, level in bands:  # widest first, each shaded over the narrower
            ax.fill_between(path["time"], path[low], path[high], color="tab:red",
                            alpha=0.12, lw=0, label=level if i == 0 else None)
    ax.grid(alpha=0.3)


def interval_bands(columns) -> list[tuple[str, str, str]]:
    """(low column, high column, legend label) of the intervals to shade, widest first: the
    calibrated lower_<level>/upper_<level> pairs ("80% interval"), else the outermost quantiles
    ("80% interval (uncalibrated)" for q0.1-q0.9)."""
    levels = sorted((c[len("lower_"):] for c in columns if c.startswith("lower_")
                     and f"upper_{c[len('lower_'):]}" in columns), key=float, reverse=True)
    if levels:
        return [(f"lower_{v}", f"upper_{v}", f"{v}% interval") for v in levels]
    band = sorted((c for c in columns if c.startswith("q")), key=lambda c: float(c[1:]))
    if not band:
        return []
    nominal = 100 * (float(band[-1][1:]) - float(band[0][1:]))
    return [(band[0], band[-1], f"{nominal:g}% interval (uncalibrated)")]


def _break_gaps(actual: pd.DataFrame) -> pd.DataFrame:
    """Insert a NaN row into each gap longer than the usual step, so lines are not drawn across
    missing data."""
    steps = actual["time"].diff()
    gaps = steps > steps.median()
    if not gaps.any():
        return actual
    holes = actual.loc[gaps, ["time"]].assign(time=lambda d: d["time"] - steps[gaps] / 2)
    return pd.concat([actual, holes]).sort_values("time")


def error_by_lead(by_lead: dict[str, list[float]], metric: str = "mae", unit: str = "",
                  lead: tuple[str, float] = ("steps", 1.0)) -> Figure:
    """Lines of one metric by lead, one per forecaster (the model drawn thicker); `lead` is the
    unit the lead axis is told in and its count per step (`tables.lead_unit`)."""
    fig, ax = plt.subplots(figsize=(8.5, 4))
    for name, values in by_lead.items():
        leads = np.arange(1, len(values) + 1) * lead[1]
        ax.plot(leads, values, lw=2.5 if name == "model" else 1.2, label=name,
                marker="o" if name == "model" else None, ms=3)
    ax.set_xlabel(f"lead ({lead[0]} ahead)")
    ax.set_ylabel(labelled(metric.upper(), unit))
    ax.set_title(f"Test {metric.upper()} by lead time")
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    fig.tight_layout()
    return fig


def _legend_outside(ax, fontsize: int = 8) -> None:
    """The legend to the right of the axes, where it covers no data."""
    ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def error_by_series(by_series: dict[str, dict[str, dict]], metric: str = "mae",
                    unit: str = "") -> Figure:
    """Dots: a row per series (the model's worst at the top; at most MAX_SERIES_ROWS, those
    with the largest model error), a dot per forecaster, the model's larger and ringed. The
    width stays the same however many series there are.
    by_series: forecaster -> series -> {metric: value}."""
    names = list(by_series)
    model = by_series.get("model", by_series[names[0]])
    ids = sorted(model, key=lambda i: _value(model[i], metric), reverse=True)
    shown = ids[:MAX_SERIES_ROWS]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(shown) + 1.8))
    y = np.arange(len(shown))[::-1]
    for name in names:
        values = [_value(by_series[name].get(i, {}), metric) for i in shown]
        big = name == "model"
        # the model's larger ringed dot under the baselines': a baseline on the same value
        # stays visible inside the ring
        ax.plot(values, y, "o", ms=9 if big else 5, label=name, zorder=2 if big else 3,
                markeredgecolor="black" if big else "none")
    ax.set_yticks(y, [str(i) for i in shown], fontsize=8)
    ax.set_ylim(-0.7, len(shown) - 0.3)
    ax.set_xlabel(labelled(metric.upper(), unit))
    more = f" ({len(shown)} of {len(ids)} with the model's largest)" if len(shown) < len(ids) \
        else ""
    ax.set_title(f"Test {metric.upper()} by series{more}", fontsize=10)
    _legend_outside(ax, fontsize=7)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def _value(scores: dict, metric: str) -> float:
    value = scores.get(metric)
    return float("nan") if value is None else float(value)


def residuals(forecasts: pd.DataFrame, leads: tuple[int, ...] = (1, 6, 24),
              units: dict[str, str | None] | None = None,
              lead: tuple[str, float] = ("steps", 1.0)) -> Figure:
    """Distribution of forecast - actual per target (a grid, at most three panels wide), for a
    few lead steps told in the data's time unit (`lead`); `units` by target."""
    targets = list(pd.unique(forecasts["target"]))
    cols = min(3, len(targets))
    rows = -(-len(targets) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(targets):]:
        ax.set_visible(False)
    for ax, target in zip(axes.flat, targets, strict=False):
        one = forecasts[forecasts["target"] == target]
        error = one["forecast"] - one["actual"]
        for step in [step for step in leads if step <= one["lead"].max()]:
            e = error[one["lead"] == step]
            ax.hist(e, bins=60, histtype="step", density=True,
                    label=f"lead {step * lead[1]:g} {lead[0]}: mean {e.mean():+.2f}, "
                          f"sd {e.std():.2f}")
        ax.axvline(0, color="black", lw=0.8)
        ax.set_title(f"Residuals (forecast - actual), {target}", fontsize=10)
        ax.set_xlabel(labelled("error", (units or {}).get(target)))
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def sweep_comparison(board: pd.DataFrame, by_lead: dict[str, np.ndarray], unit: str = "",
                     lead: tuple[str, float] = ("steps", 1.0)) -> Figure:
    """Left: validation loss and test MAE per config (error bars: std over seeds), best first.
    Right: test MAE by lead (told in `lead`'s unit) for the best few configs. board: the
    leaderboard's ok rows; `unit`: the scores' unit."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 0.4 * len(board) + 3.5))
    y = np.arange(len(board))[::-1]
    left.errorbar(board["test_mae"], y, xerr=board.get("test_mae_std"), fmt="o", capsize=3,
                  label="test MAE")
    left.set_yticks(y, [c[:48] for c in board["config"]], fontsize=8)
    left.set_xlabel(labelled("test MAE, mean over seeds", unit))
    if "persistence_mae" in board:
        left.axvline(board["persistence_mae"].mean(), color="grey", ls=":", label="persistence")
    if "ridge_mae" in board:
        left.axvline(board["ridge_mae"].mean(), color="tab:green", ls="--", label="ridge")
    left.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.08), ncols=3)
    left.set_title("Runs, best validation loss at the top", fontsize=10, pad=28)
    for name, values in by_lead.items():
        right.plot(np.arange(1, len(values) + 1) * lead[1], values, label=name[:40])
    right.set_xlabel(f"lead ({lead[0]} ahead)")
    right.set_ylabel(labelled("test MAE", unit))
    right.set_title("Best runs by lead time", fontsize=10)
    _legend_outside(right, fontsize=7)
    right.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def learning_curves(history: pd.DataFrame, loss: str = "loss") -> Figure:
    """Train and validation loss per epoch from Lightning's CSV log (metrics.csv); `loss` names
    it on the axis (mae, mse, huber, pinball)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for column, label in (("train/loss_epoch", "train"), ("val/loss", "validation")):
        if column in history:
            per_epoch = history.dropna(subset=[column]).groupby("epoch")[column].last()
            ax.plot(per_epoch.index + 1, per_epoch.values, marker="o", ms=3, label=label)
            if column == "val/loss" and len(per_epoch):
                best = int(per_epoch.idxmin()) + 1  # epochs counted from 1, as the console
                ax.axvline(best, color="grey", ls="--", lw=1,
                           label=f"best validation (epoch {best}): the weights used")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{loss.upper() if len(loss) == 3 else loss} (scaled targets)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Learning curves")
    ax.grid(alpha=0.3)
    _legend_outside(ax)
    fig.tight_layout()
    return fig


def save(fig: Figure, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)


GATES = ("forget", "input", "output")


def gate_distributions(gates: dict[str, np.ndarray], bins: int = 50) -> Figure:
    """Histograms of the LSTM's sigmoid gates over all test windows, one panel per gate, mean
    marked. `gates` maps "forget", "input", "output" to values in [0, 1] of any shape, e.g.
    (n_windows, L, H) from `ManualLSTM.gates`; other keys ("candidate") are ignored."""
    names = [name for name in GATES if name in gates]
    if not names:
        raise ValueError(f"gates has keys {sorted(gates)}; expected some of {list(GATES)} "
                         "(set ManualLSTM.record_gates = True before the forward pass)")
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4), squeeze=False,
                             sharey=True)
    for ax, name in zip(axes[0], names, strict=True):
        values = np.asarray(gates[name], dtype=np.float64).ravel()
        # np.histogram + stairs instead of ax.hist: test sets give tens of millions of values
        counts, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
        ax.stairs(counts / max(values.size, 1), edges, fill=True, alpha=0.6)
        mean = values.mean()
        ax.axvline(mean, color="black", ls="--", lw=1.2, label=f"mean {mean:.2f}")
        # saturated gates (near 0 or 1) act as switches; the share says how binary a gate is
        saturated = np.mean((values < 0.05) | (values > 0.95))
        ax.set_title(f"{name} gate ({saturated:.0%} saturated)", fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_xlabel("activation")
        ax.legend(fontsize=8, loc="upper center")
    axes[0, 0].set_ylabel("share of values")
    fig.tight_layout()
    return fig


def history_and_forecast(history: pd.DataFrame, forecast: pd.DataFrame, target: str) -> Figure:
    """One panel per series: the recent history ([series, time, target, actual]) and the forecast
    past its end ([series, time, target, forecast [, q0.1, ...]], the outermost quantiles shaded),
    split by a line at the last observed time."""
    hist = history[history["target"] == target]
    ahead = forecast[forecast["target"] == target]
    ids = list(pd.unique(ahead["series"]))
    fig, axes = plt.subplots(len(ids), 1, figsize=(11, 2.6 * len(ids)), squeeze=False,
                             sharex=True)
    for ax, name in zip(axes[:, 0], ids, strict=True):
        past = _break_gaps(hist[hist["series"] == name].sort_values("time"))
        future = ahead[ahead["series"] == name].sort_values("time")
        ax.plot(past["time"], past["actual"], color="black", lw=1.2, label="history")
        ax.plot(future["time"], future["forecast"], color="tab:red", lw=1.5, marker="o", ms=2,
                label="forecast")
        for low, high, level in interval_bands(future.columns):
            ax.fill_between(future["time"], future[low], future[high], color="tab:red",
                            alpha=0.12, lw=0, label=level)
        if len(past):
            ax.axvline(past["time"].max(), color="grey", lw=0.8, ls="--")
        ax.set_title(f"{name}: {target}, forecast of {len(future)} steps", fontsize=9, loc="left")
        ax.set_ylabel(target)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
