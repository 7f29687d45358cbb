"""Prediction intervals calibrated on the validation windows (split conformal prediction).

A point model gets intervals from the absolute residuals |actual - forecast| of the validation
windows; a quantile model gets its quantile pairs conformalised (CQR: the scores are
max(low - actual, actual - high)). The conformity scores are pooled over series and windows
separately for every (lead, target), and the offset of an interval of coverage 1 - alpha is
their ceil((n + 1)(1 - alpha)) / n empirical quantile (the k-th smallest of n, k =
ceil((n + 1)(1 - alpha))), which covers a new exchangeable window with probability at least
1 - alpha. Only validation windows are read; the test windows are scored, never used.

A quantile model's scores are divided by the width of its outermost quantile pair in that window
(normalised CQR), so the offsets are in those widths; a point model's are in data units. They
are saved as <run>/checkpoints/calibration.json beside data.json
and applied by forecast-predict. numpy only besides the validation forward pass: this module
must not import PyTorch Lightning (forecast-predict imports it).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FILE = "calibration.json"
TOL = 1e-9


def label(level: float) -> str:
    """0.8 -> '80', 0.95 -> '95', 0.975 -> '97.5': the suffix of coverage_<label>, lower_<label>."""
    return f"{round(level * 100, 6):g}"


def conformal_rank(n: int, coverage: float) -> int:
    """k = ceil((n + 1) * coverage): the rank (1-based) of the score that is the offset; > n when
    n scores are too few for that coverage (the interval is then unbounded)."""
    return int(math.ceil((n + 1) * coverage - TOL))


def conformal_level(n: int, coverage: float) -> float:
    """The finite-sample quantile level ceil((n + 1)(1 - alpha)) / n of n calibration scores."""
    return conformal_rank(n, coverage) / n


def conformal_quantile(scores: np.ndarray, coverage: float) -> np.ndarray:
    """The conformal quantile over axis 0 of `scores` (n, ...): per column the k-th smallest
    non-NaN score, k = ceil((n + 1) * coverage); +inf where k > n (too few scores)."""
    scores = np.asarray(scores, dtype=np.float64)
    ordered = np.sort(scores, axis=0)  # NaN last
    n = np.sum(~np.isnan(scores), axis=0)
    k = np.ceil((n + 1) * coverage - TOL).astype(np.int64)
    pick = np.clip(k - 1, 0, max(scores.shape[0] - 1, 0))
    value = np.take_along_axis(ordered, pick[None, ...], axis=0)[0]
    return np.where((k > n) | (n == 0), np.inf, value)


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


def scores(spec: dict, actual: np.ndarray, units: np.ndarray, quantiles) -> np.ndarray:
    """Conformity scores (K, H, n_targets) of one interval on windows with `actual` values:
    how far each actual lies outside the quantile pair (cqr) or from the point forecast
    (residual), divided by `scale`."""
    if spec["kind"] == "cqr":
        low, high = raw_bounds(spec, units, quantiles)
        return np.maximum(low - actual, actual - high) / scale(spec, units, quantiles)
    return np.abs(actual - _point(units, quantiles)) / scale(spec, units, quantiles)


def calibrated_bounds(spec: dict, offsets: np.ndarray, units: np.ndarray, quantiles):
    """(low, high) of an interval after calibration; offsets (H, n_targets) in units of
    `scale` (data units for a point model, quantile-pair widths for a quantile model)."""
    offsets = np.asarray(offsets, dtype=np.float64) * scale(spec, units, quantiles)
    if spec["kind"] == "cqr":
        low, high = raw_bounds(spec, units, quantiles)
    else:
        low = high = _point(units, quantiles)
    return (low - offsets).astype(np.float32), (high + offsets).astype(np.float32)


def calibrate(actual: np.ndarray, units: np.ndarray, quantiles, levels,
              targets: Sequence[str]) -> dict:
    """calibration.json's content from the VALIDATION windows: actual (K, H, n_targets) and the
    model's forecasts `units` (K, H, n_targets[, Q]), both in data units."""
    out = {"method": "split conformal, scores pooled over series per lead and target",
           "units": "quantile-pair width" if quantiles else "data", "targets": list(targets),
           "horizon": int(actual.shape[1]),
           "windows": int(actual.shape[0]), "quantiles": list(quantiles or []), "intervals": []}
    for spec in specs(quantiles, levels):
        s = scores(spec, actual, units, quantiles)
        offsets = conformal_quantile(s, spec["level"])
        low, high = calibrated_bounds(spec, offsets, units, quantiles)
        raw = raw_bounds(spec, units, quantiles)
        out["intervals"].append({
            **spec, "offsets": offsets.tolist(),
            "validation_coverage": _coverage(actual, low, high),
            "validation_coverage_raw": None if raw is None else _coverage(actual, *raw),
        })
    return out


def _coverage(actual, low, high, axis=None):
    inside = ((actual >= low) & (actual <= high)).astype(np.float64)
    inside[np.isnan(actual)] = np.nan
    return np.nanmean(inside, axis=axis) if axis is not None else float(np.nanmean(inside))


def bounds(calibration: dict | None, units: np.ndarray, quantiles) -> dict[str, np.ndarray]:
    """{'lower_80': (K, H, n_targets), 'upper_80': ...} of every calibrated interval; empty
    without a calibration."""
    out = {}
    for spec in (calibration or {}).get("intervals", []):
        low, high = calibrated_bounds(spec, spec["offsets"], units, quantiles)
        out[f"lower_{spec['label']}"], out[f"upper_{spec['label']}"] = low, high
    return out


def interval_scores(actual, low, high, series: np.ndarray, ids, targets, key: str) -> dict:
    """coverage_<key> and width_<key>: overall, by_lead (lists), by_series and by_target."""
    inside = _coverage(actual, low, high, axis=(0, 2))
    width = high - low
    out = {"overall": {f"coverage_{key}": _coverage(actual, low, high),
                       f"width_{key}": float(np.mean(width))},
           "by_lead": {f"coverage_{key}": [float(v) for v in inside],
                       f"width_{key}": [float(v) for v in np.mean(width, axis=(0, 2))]},
           "by_series": {}, "by_target": {}}
    for i, name in enumerate(ids):
        rows = series == i
        if rows.any():
            out["by_series"][str(name)] = {
                f"coverage_{key}": _coverage(actual[rows], low[rows], high[rows]),
                f"width_{key}": float(np.mean(width[rows]))}
    for j, name in enumerate(targets):
        part = slice(j, j + 1)
        out["by_target"][name] = {
            f"coverage_{key}": _coverage(actual[..., part], low[..., part], high[..., part]),
            f"width_{key}": float(np.mean(width[..., part]))}
    return out


def merge(model: dict, part: dict) -> None:
    """Add interval_scores' output to metrics.json's "model" entry in place."""
    model.update(part["overall"])
    model["by_lead"].update(part["by_lead"])
    for group in ("by_series", "by_target"):
        for name, values in part[group].items():
            model[group].setdefault(name, {}).update(values)


def save(calibration: dict, folder: Path) -> Path:
    path = Path(folder) / FILE
    path.write_text(json.dumps(calibration, indent=2, default=float))
    return path


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
        if wrong:
            raise ValueError(f"'{path}' does not match its data.json (calibration vs data.json: "
                             f"{wrong}); the run folder mixes files of different runs")
    for spec in calibration["intervals"]:
        spec["offsets"] = np.asarray(spec["offsets"], dtype=np.float64)
    return calibration


def log_validation(calibration: dict) -> None:
    """One line per interval: nominal vs validation coverage, before and after calibration."""
    for spec in calibration["intervals"]:
        raw = spec["validation_coverage_raw"]
        before = "no uncalibrated interval" if raw is None else f"uncalibrated {raw:.3f}"
        offsets = np.asarray(spec["offsets"], dtype=np.float64)
        log.info("%s%% interval (%s), nominal %.3f: validation coverage %s -> calibrated %.3f on "
                 "%d windows; offsets (%s) per lead and target from %.4g to %.4g",
                 spec["label"], spec["kind"], spec["level"], before, spec["validation_coverage"],
                 calibration["windows"], calibration["units"], offsets.min(), offsets.max())


def describe(model: dict) -> str:
    """Test coverage and width of every interval in metrics.json's "model" entry, one line each
    (empty when there are none)."""
    lines = []
    for key in sorted((k for k in model if k.startswith("coverage_") and not k.endswith("_raw")),
                      key=lambda k: float(k.split("_")[1])):
        tag = key.split("_", 1)[1]
        line = (f"{tag}% interval: test coverage {model[key]:.3f}, "
                f"width {model[f'width_{tag}']:.3f}"
                f"{' (uncalibrated)' if model.get('calibrated') is False else ''}")
        if f"coverage_{tag}_raw" in model:
            line += (f"; uncalibrated {model[f'coverage_{tag}_raw']:.3f}, width "
                     f"{model[f'width_{tag}_raw']:.3f}")
        lines.append(line)
    return "\n".join(lines)


# ------------------------------------------------------------------- the hooks of a training run


def validation_forecast(module, dm, batch_size: int = 1024) -> np.ndarray:
    """The module's scaled forecasts (K, H, n_targets[, Q]) of the validation windows, in index
    order, with its current weights (call it after the best checkpoint is loaded)."""
    import torch

    ds = dm.dataset("val")
    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(ds), batch_size):
                x, _, series = ds[list(range(start, min(start + batch_size, len(ds))))]
                out.append(module(x.to(device), series.to(device)).float().cpu().numpy())
    finally:
        module.train(was_training)
    return np.concatenate(out)


def calibrate_run(evaluate: dict, prep, module, dm, quantiles, folder: Path) -> dict | None:
    """Calibrate the intervals a run asks for (model.quantiles, evaluate.intervals) on its
    validation windows and save them in `folder`; None when there are none, or with
    evaluate.calibrate=false (then only the quantile pairs are reported, uncalibrated)."""
    levels = evaluate.get("intervals")
    if not quantiles and not levels:
        return None
    if not evaluate.get("calibrate", True):
        if not quantiles:
            log.warning("evaluate.calibrate=false: a point model has no uncalibrated intervals; "
                        "evaluate.intervals=%s are not reported", list(levels))
        return {"calibrated": False, "intervals": specs(quantiles, levels)}
    if len(prep.indices["val"]) == 0:
        raise ValueError("intervals are calibrated on the validation windows, but the validation "
                         "split holds none; enlarge data.split.val or set evaluate.calibrate=false")
    from forecast.inputs import FeatureColumns

    actual = FeatureColumns(prep.panel.values, prep.target_cols).gather(
        prep.indices["val"], prep.lookback, prep.horizon)
    units = prep.scaler.inverse_forecast(validation_forecast(module, dm), prep.target_cols)
    calibration = calibrate(actual, units, quantiles, levels, prep.targets)
    log_validation(calibration)
    save(calibration, folder)
    return calibration


def add_to_run(metrics: dict, forecasts, prep, units: np.ndarray, actual: np.ndarray,
               calibration: dict | None, quantiles, space: str = "original") -> None:
    """Score every interval on the test windows (coverage_<level>, width_<level>, and
    coverage_<level>_raw, width_<level>_raw beside them when calibrated) into metrics["model"],
    and add the bounds lower_<level>, upper_<level> (data units) to the forecasts table."""
    if calibration is None:
        return
    calibrated = calibration.get("calibrated", True)
    to_space = (lambda a: a) if space == "original" else (  # noqa: E731
        lambda a: prep.scaler.transform(a, prep.target_cols))
    series, ids, model = prep.indices["test"][:, 0], prep.panel.ids, metrics["model"]
    model["calibrated"] = calibrated
    for spec in calibration["intervals"]:
        raw = raw_bounds(spec, units, quantiles)
        pair = calibrated_bounds(spec, spec["offsets"], units, quantiles) if calibrated else raw
        if pair is None:
            continue
        forecasts[f"lower_{spec['label']}"] = pair[0].reshape(-1)
        forecasts[f"upper_{spec['label']}"] = pair[1].reshape(-1)
        merge(model, interval_scores(to_space(actual), to_space(pair[0]), to_space(pair[1]),
                                     series, ids, prep.targets, spec["label"]))
        if calibrated and raw is not None:
            merge(model, interval_scores(to_space(actual), to_space(raw[0]), to_space(raw[1]),
                                         series, ids, prep.targets, f"{spec['label']}_raw"))
