"""Prediction intervals calibrated on the validation windows: split conformal prediction, and
by default its adaptive form over the test windows (adaptive.py).

A point model gets intervals from the absolute residuals |actual - forecast| of the validation
windows; a quantile model gets its quantile pairs conformalised (CQR: the scores are
max(low - actual, actual - high)). The conformity scores are pooled over series and windows
separately for every (lead, target), and the offset of an interval of coverage 1 - alpha is
their ceil((n + 1)(1 - alpha)) / n empirical quantile (the k-th smallest of n, k =
ceil((n + 1)(1 - alpha))), which covers a new exchangeable window with probability at least
1 - alpha. Only validation windows' scores are read. With evaluate.calibration=split (the
offsets as they are) the test windows are scored, never used; with adaptive (the default) the
level at which those scores are read moves, origin by origin, with the misses of the test
forecasts whose outcomes were known at that origin (never a later one), because a validation
period easier or harder than test makes fixed offsets miss the promised coverage.

A quantile model's scores are divided by the width of its outermost quantile pair in that window
(normalised CQR), so the offsets are in those widths; a point model's are in data units. They
are saved as <run>/checkpoints/calibration.json beside data.json and applied by
forecast-predict (adaptive: the offsets once every test outcome is known). numpy only besides
the validation forward pass: this module must not import PyTorch Lightning (forecast-predict
imports it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forecast.config import EvaluateConfig
from forecast.evaluation import adaptive
from forecast.evaluation.metrics import coverage

FILE = "calibration.json"
SHRINK = 50  # validation scores' worth of the pooled mean in each series' scale
MIN_SERIES_SCALE = 0.1
METHODS = {
    "split": "split conformal, scores pooled over series per lead and target",
    "adaptive": "adaptive conformal inference (level moved by the misses of resolved forecasts) "
                "on split-conformal scores pooled over series per lead and target",
}  # residual scores are divided by their series' scale before they are pooled


@dataclass(frozen=True)
class Calibration:
    """A run's intervals as calibrated on its validation windows. `content` is what
    calibration.json holds (method, units, targets, horizon, windows, quantiles and "intervals",
    one spec dict each with its offsets); {"calibrated": False, "intervals": specs} when the
    run reports its quantile pairs uncalibrated. `validation_scores` holds each interval's
    conformity scores (n, H, n_targets), in the order of content["intervals"]: an adaptive walk
    over the test windows reads its offsets from them, so they stay in memory, never in the
    file."""

    content: dict
    validation_scores: tuple[np.ndarray, ...] = ()

    @property
    def calibrated(self) -> bool:
        return self.content.get("calibrated", True)


def label(level: float) -> str:
    """0.8 -> '80', 0.95 -> '95', 0.975 -> '97.5': the suffix of coverage_<label>, lower_<label>."""
    return f"{round(level * 100, 6):g}"


def conformal_quantile(scores: np.ndarray, coverage: float) -> np.ndarray:
    """The conformal quantile over axis 0 of `scores` (n, ...): per column the k-th smallest
    non-NaN score, k = ceil((n + 1) * coverage); +inf where k > n (too few scores)."""
    scores = np.asarray(scores, dtype=np.float64)
    ordered, n = adaptive.ordered_scores(scores)
    value = adaptive.offsets_at(ordered, n, np.asarray(coverage, dtype=np.float64))
    return np.where(adaptive.rank(n, coverage) > n, np.inf, value)


def specs(quantiles: Sequence[float] | None, levels: Sequence[float] | None) -> list[dict]:
    """The intervals a run reports: `levels` (evaluate.intervals) or else the symmetric quantile
    pairs of the model. A level that a quantile pair (q, 1 - q) spans is conformalised from that
    pair (kind 'cqr'); any other from the absolute residuals of the point forecast ('residual')."""
    quantiles = [float(q) for q in (quantiles or [])]
    pairs = {}
    for q in sorted(quantiles):
        partner = [p for p in quantiles if abs(p - (1 - q)) < 1e-6]
        if q < 0.5 and partner:
            pairs[round(partner[0] - q, 6)] = (q, partner[0])
    if levels is None:
        levels = sorted(pairs)
    out = []
    for level in sorted(float(v) for v in levels):
        if not 0 < level < 1:
            raise ValueError(f"evaluate.intervals: {level} is not a coverage in (0, 1)")
        pair = pairs.get(round(level, 6))
        out.append({"level": level, "label": label(level), "kind": "cqr" if pair else "residual",
                    "quantiles": list(pair) if pair else None})
    return out


def raw_bounds(spec: dict, units: np.ndarray, quantiles: Sequence[float] | None):
    """(low, high) of an interval before calibration: its quantile pair; None for 'residual'."""
    if spec["kind"] != "cqr":
        return None
    quantiles = [float(q) for q in quantiles]
    lo, hi = (quantiles.index(q) for q in spec["quantiles"])
    return units[..., lo], units[..., hi]


def _point(units: np.ndarray, quantiles) -> np.ndarray:
    return units[..., [float(q) for q in quantiles].index(0.5)] if quantiles else units


def scale(spec: dict, units: np.ndarray, quantiles) -> np.ndarray | float:
    """Each window's own spread, which divides the conformity scores, so that calibrated
    intervals stay wider where the model expects more spread (normalised CQR): the width (data
    units) of the interval's quantile pair, or of the outermost pair for a residual interval of
    a quantile model; 1 for a point model."""
    if not quantiles:
        return 1.0
    quantiles = [float(q) for q in quantiles]
    pair = spec["quantiles"] or (min(quantiles), max(quantiles))
    lo, hi = (quantiles.index(q) for q in pair)
    return np.maximum(units[..., hi] - units[..., lo], 1e-6)


def scores(spec: dict, actual: np.ndarray, units: np.ndarray, quantiles,
           series: np.ndarray | None = None) -> np.ndarray:
    """Conformity scores (K, H, n_targets) of one interval on windows with `actual` values:
    how far each actual lies outside the quantile pair (cqr) or from the point forecast
    (residual), divided by `scale` and by the window's series scale (`series`: (K,) positions)."""
    if spec["kind"] == "cqr":
        low, high = raw_bounds(spec, units, quantiles)
        raw = np.maximum(low - actual, actual - high)
    else:
        raw = np.abs(actual - _point(units, quantiles))
    return raw / scale(spec, units, quantiles) / _series_factor(spec, series)


def series_scale(scores: np.ndarray, series: np.ndarray, n_series: int) -> np.ndarray:
    """(n_series, n_targets): each series' mean validation score per target over all series'
    mean. Residual scores are divided by it, so that a calm series and a stormy one share the
    offsets, each in its own spread, instead of the pooled offsets covering the calm one always
    and the stormy one seldom. A series' own mean is pulled towards the pooled one by
    SHRINK scores' worth (1 for a series without validation windows), and the ratio is kept
    at least MIN_SERIES_SCALE: a series that was flat on validation is not promised a band of
    no width."""
    observed = ~np.isnan(scores)
    filled = np.where(observed, scores, 0.0)
    sums, counts = np.zeros((n_series, scores.shape[2])), np.zeros((n_series, scores.shape[2]))
    np.add.at(sums, series, filled.sum(axis=1))
    np.add.at(counts, series, observed.sum(axis=1))
    pooled = sums.sum(axis=0) / np.maximum(counts.sum(axis=0), 1)  # (n_targets,)
    own = (sums + SHRINK * pooled) / (counts + SHRINK)
    ratio = np.where(pooled > 0, own / np.where(pooled > 0, pooled, 1.0), 1.0)
    return np.maximum(ratio, MIN_SERIES_SCALE)


def _series_factor(spec: dict, series: np.ndarray | None) -> np.ndarray | float:
    if spec.get("series_scale") is None:
        return 1.0
    if series is None:
        raise ValueError("this calibration scales the intervals by series: pass each window's "
                         "series position")
    return np.asarray(spec["series_scale"], dtype=np.float64)[np.asarray(series)][:, None, :]


def calibrated_bounds(spec: dict, offsets: np.ndarray, units: np.ndarray, quantiles,
                      series: np.ndarray | None = None):
    """(low, high) of an interval after calibration; offsets (H, n_targets) or (K, H,
    n_targets) in units of `scale` (data units for a point model, quantile-pair widths for a
    quantile model) and of the series scale of each window's series (`series`: (K,) positions
    in the training panel)."""
    offsets = (np.asarray(offsets, dtype=np.float64) * scale(spec, units, quantiles)
               * _series_factor(spec, series))
    if spec["kind"] == "cqr":
        low, high = raw_bounds(spec, units, quantiles)
    else:
        low = high = _point(units, quantiles)
    return (low - offsets).astype(np.float32), (high + offsets).astype(np.float32)


def calibrate(actual: np.ndarray, units: np.ndarray, quantiles, levels,
              targets: Sequence[str], method: str = "split",
              rate: float = EvaluateConfig.adapt_rate, series: np.ndarray | None = None,
              n_series: int | None = None) -> Calibration:
    """The intervals calibrated on the VALIDATION windows: actual (K, H, n_targets) and the
    model's forecasts `units` (K, H, n_targets[, Q]), both in data units; `series` (K,) their
    series' positions among `n_series` (residual scores are then scaled per series)."""
    check_method(method, rate)
    out = {"method": METHODS[method], "calibration": method,
           "units": "quantile-pair width" if quantiles else "data", "targets": list(targets),
           "horizon": int(actual.shape[1]),
           "windows": int(actual.shape[0]), "quantiles": list(quantiles or []), "intervals": []}
    validation_scores = []
    for spec in specs(quantiles, levels):
        s = scores(spec, actual, units, quantiles)
        if series is not None and spec["kind"] == "residual":
            spec["series_scale"] = series_scale(s, series, n_series).tolist()
            s = s / _series_factor(spec, series)
        offsets = conformal_quantile(s, spec["level"])
        low, high = calibrated_bounds(spec, offsets, units, quantiles, series)
        raw = raw_bounds(spec, units, quantiles)
        out["intervals"].append({
            **spec, "offsets": offsets.tolist(), "validation_offsets": offsets.tolist(),
            "validation_coverage": coverage(actual, low, high),
            "validation_coverage_raw": None if raw is None else coverage(actual, *raw),
        })
        validation_scores.append(s)
    if method == "adaptive":
        out["adapt_rate"] = float(rate)
    return Calibration(out, tuple(validation_scores))


def check_method(method: str, rate: float) -> None:
    if method not in METHODS:
        raise ValueError(f"evaluate.calibration={method!r} is not one of {sorted(METHODS)}: "
                         "'adaptive' follows the outcomes known at each origin, 'split' keeps "
                         "the validation offsets")
    if not 0 < rate < 1:
        raise ValueError(f"evaluate.adapt_rate={rate} must be in (0, 1) (0.005 is the usual "
                         "step; larger follows a shift faster and widens the intervals more)")


def bounds(calibration: dict | None, units: np.ndarray, quantiles,
           series: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """{'lower_80': (K, H, n_targets), 'upper_80': ...} of every calibrated interval; empty
    without a calibration. `series` (K,): each window's series position in the training panel
    (required when the calibration scales by series)."""
    out = {}
    for spec in (calibration or {}).get("intervals", []):
        low, high = calibrated_bounds(spec, spec["offsets"], units, quantiles, series)
        out[f"lower_{spec['label']}"], out[f"upper_{spec['label']}"] = low, high
    return out


def save(calibration: dict, folder: Path) -> Path:
    """calibration.json (a `Calibration`'s content) in `folder`."""
    path = Path(folder) / FILE
    path.write_text(json.dumps(calibration, indent=2, default=_plain))
    return path


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else float(value)


def load(folder: Path, description: dict | None = None) -> dict | None:
    """<folder>/calibration.json, checked against the run's data.json; None when absent (a run
    without intervals or with evaluate.calibrate=false)."""
    path = Path(folder) / FILE
    if not path.is_file():
        return None
    calibration = json.loads(path.read_text())
    if description is not None:
        want = {"targets": list(description["targets"]), "horizon": description["horizon"]}
        wrong = {k: (calibration.get(k), v) for k, v in want.items() if calibration.get(k) != v}
        n_series = {len(spec["series_scale"]) for spec in calibration["intervals"]
                    if spec.get("series_scale") is not None}
        if n_series - {len(description["ids"])}:
            wrong["series"] = (sorted(n_series), len(description["ids"]))
        if wrong:
            raise ValueError(f"'{path}' does not match its data.json (calibration vs data.json: "
                             f"{wrong}); the run folder mixes files of different runs")
    for spec in calibration["intervals"]:
        spec["offsets"] = np.asarray(spec["offsets"], dtype=np.float64)
    return calibration
