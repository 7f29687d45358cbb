"""Figures of a run. Each function returns a matplotlib Figure and saves nothing."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def forecasts_vs_actuals(
    forecasts: pd.DataFrame, target: str, days: int = 14, every: int | None = None
) -> Figure:
    """One panel per series: the actuals over the first `days` of the test period and forecast
    trajectories from one origin per `every` steps (default: one per horizon)."""
    df = forecasts[forecasts["target"] == target]
    ids = list(pd.unique(df["series"]))
    fig, axes = plt.subplots(len(ids), 1, figsize=(11, 2.6 * len(ids)), squeeze=False,
                             sharex=True)
    horizon = int(df["lead"].max())
    every = every or horizon
    for ax, name in zip(axes[:, 0], ids, strict=True):
        one = df[df["series"] == name]
        end = one["origin"].min() + pd.Timedelta(days=days)
        one = one[one["origin"] < end]
        actual = _break_gaps(one.drop_duplicates("time").sort_values("time"))
        ax.plot(actual["time"], actual["actual"], color="black", lw=1.2, label="actual")
        origins = np.sort(one["origin"].unique())[::every]
        for i, origin in enumerate(origins):
            path = one[one["origin"] == origin].sort_values("lead")
            ax.plot(path["time"], path["forecast"], color="tab:red", lw=1.0, alpha=0.8,
                    label="forecast" if i == 0 else None)
            if "q_low" in path and "q_high" in path:
                ax.fill_between(path["time"], path["q_low"], path["q_high"], color="tab:red",
                                alpha=0.15, lw=0)
        ax.set_title(f"{name}: {target}, forecasts from one origin every {every} steps",
                     fontsize=9, loc="left")
        ax.set_ylabel(target)
        ax.legend(loc="upper right", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _break_gaps(actual: pd.DataFrame) -> pd.DataFrame:
    """Insert a NaN row into each gap longer than the usual step, so lines are not drawn across
    missing data."""
    steps = actual["time"].diff()
    gaps = steps > steps.median()
    if not gaps.any():
        return actual
    holes = actual.loc[gaps, ["time"]].assign(time=lambda d: d["time"] - steps[gaps] / 2)
    return pd.concat([actual, holes]).sort_values("time")


def error_by_lead(by_lead: dict[str, list[float]], metric: str = "mae", unit: str = "") -> Figure:
    """Lines of one metric by lead step, one per forecaster (the model drawn thicker)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in by_lead.items():
        leads = np.arange(1, len(values) + 1)
        ax.plot(leads, values, lw=2.5 if name == "model" else 1.2, label=name,
                marker="o" if name == "model" else None, ms=3)
    ax.set_xlabel("lead (steps ahead)")
    ax.set_ylabel(f"{metric.upper()} {unit}".strip())
    ax.set_title(f"Test {metric.upper()} by lead time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def learning_curves(history: pd.DataFrame) -> Figure:
    """Train and validation loss per epoch from Lightning's CSV log (metrics.csv)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for column, label in (("train/loss_epoch", "train"), ("val/loss", "validation")):
        if column in history:
            per_epoch = history.dropna(subset=[column]).groupby("epoch")[column].last()
            ax.plot(per_epoch.index + 1, per_epoch.values, marker="o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (scaled)")
    ax.set_yscale("log")
    ax.set_title("Learning curves")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def save(fig: Figure, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
