"""The intervals of a training run: calibrated on its validation windows (conformal.py), walked
over its test windows when adaptive (adaptive.py), scored (coverage and width overall, by lead,
series and target) for metrics.json, their bounds made columns of the forecasts table, and
described in the log. numpy besides the validation forward pass."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forecast.config import EvaluateConfig
from forecast.evaluation import adaptive
from forecast.evaluation.conformal import (
    FILE,
    Calibration,
    calibrate,
    calibrated_bounds,
    raw_bounds,
    save,
    scores,
    specs,
)
from forecast.evaluation.metrics import coverage

log = logging.getLogger(__name__)
GROUPS = ("by_lead", "by_series", "by_target")


@dataclass(frozen=True)
class IntervalResults:
    """What a run's test windows make of its intervals. `scores`: entries of metrics.json's
    "model" (calibrated, calibration, coverage_<label>, width_<label> and their _split and
    _raw kin, overall and in by_lead, by_series, by_target), added with `merged`; `bounds`:
    lower_<label>, upper_<label> (K * H * n_targets,) in data units, columns of the forecasts
    table in its row order; `calibration`: calibration.json's content, the offsets
    forecast-predict applies (adaptive: those once every test outcome is known), None when
    the intervals are uncalibrated and nothing is saved."""

    scores: dict
    bounds: dict[str, np.ndarray]
    calibration: dict | None


def interval_scores(actual, low, high, series: np.ndarray, ids, targets, key: str) -> dict:
    """coverage_<key> and width_<key> of one interval (all (K, H, n_targets)), shaped as a
    "model" entry: overall, by_lead (lists), by_series and by_target."""
    inside = coverage(actual, low, high, axis=(0, 2))
    width = high - low
    out = {f"coverage_{key}": coverage(actual, low, high), f"width_{key}": float(np.mean(width)),
           "by_lead": {f"coverage_{key}": [float(v) for v in inside],
                       f"width_{key}": [float(v) for v in np.mean(width, axis=(0, 2))]},
           "by_series": {}, "by_target": {}}
    for i, name in enumerate(ids):
        rows = series == i
        if rows.any():
            out["by_series"][str(name)] = {
                f"coverage_{key}": coverage(actual[rows], low[rows], high[rows]),
                f"width_{key}": float(np.mean(width[rows]))}
    for j, name in enumerate(targets):
        part = slice(j, j + 1)
        out["by_target"][name] = {
            f"coverage_{key}": coverage(actual[..., part], low[..., part], high[..., part]),
            f"width_{key}": float(np.mean(width[..., part]))}
    return out


def merged(model: dict, extra: dict) -> dict:
    """A "model" entry of metrics.json with `extra`'s scores added after its own (overall, by
    lead, and per series and target); neither is changed."""
    out = {**model, **{k: v for k, v in extra.items() if k not in GROUPS}}
    out["by_lead"] = {**model.get("by_lead", {}), **extra.get("by_lead", {})}
    for group in ("by_series", "by_target"):
        old, new = model.get(group, {}), extra.get(group, {})
        out[group] = {name: {**old.get(name, {}), **new.get(name, {})}
                      for name in dict.fromkeys([*old, *new])}
    return out


def log_validation(calibration: dict) -> None:
    """One line per interval of a calibration's content: nominal vs validation coverage,
    before and after calibration."""
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
    (empty when there are none), with the validation-only and uncalibrated ones beside it."""
    lines = []
    for key in sorted((k for k in model if k.startswith("coverage_") and k.count("_") == 1),
                      key=lambda k: float(k.split("_")[1])):
        tag = key.split("_", 1)[1]
        how = model.get("calibration", "uncalibrated")
        line = f"{tag}% interval: test coverage {model[key]:.3f}, width " \
               f"{model[f'width_{tag}']:.3f} ({how})"
        for suffix, name in (("split", "validation offsets alone"),
                             ("raw", "uncalibrated")):
            if f"coverage_{tag}_{suffix}" in model:
                line += (f"; {name} {model[f'coverage_{tag}_{suffix}']:.3f}, width "
                         f"{model[f'width_{tag}_{suffix}']:.3f}")
        lines.append(line)
    return "\n".join(lines)


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
                x, _, *rest = ds[list(range(start, min(start + batch_size, len(ds))))]
                y_hat = module(x.to(device), *(t.to(device) for t in rest))  # series, known..
                out.append(y_hat.float().cpu().numpy())
    finally:
        module.train(was_training)
    return np.concatenate(out)


def calibrate_run(evaluate: EvaluateConfig, prep, module, dm, quantiles,
                  folder: Path) -> Calibration | None:
    """Calibrate the intervals a run asks for (model.quantiles, evaluate.intervals) on its
    validation windows; None when there are none, or with evaluate.calibrate=false (then only
    the quantile pairs are reported, uncalibrated). `save_run` writes calibration.json once
    `score_test` has walked the test windows; one an earlier run left in `folder` is removed
    now, so that forecast-predict never applies one this run did not make."""
    (Path(folder) / FILE).unlink(missing_ok=True)
    levels = evaluate.intervals
    if not quantiles and not levels:
        return None
    if not evaluate.calibrate:
        if not quantiles:
            log.warning("evaluate.calibrate=false: a point model has no uncalibrated intervals; "
                        "evaluate.intervals=%s are not reported", list(levels))
        return Calibration({"calibrated": False, "intervals": specs(quantiles, levels)})
    if len(prep.indices["val"]) == 0:
        raise ValueError("intervals are calibrated on the validation windows, but the validation "
                         "split holds none; enlarge data.split.val or set evaluate.calibrate=false")
    from forecast.data.inputs import FeatureColumns

    actual = FeatureColumns(prep.panel.values, prep.target_cols).gather(
        prep.indices["val"], prep.lookback, prep.horizon)
    units = prep.scaler.inverse_forecast(validation_forecast(module, dm), prep.target_cols)
    calibration = calibrate(actual, units, quantiles, levels, prep.targets,
                            evaluate.calibration, evaluate.adapt_rate,
                            prep.indices["val"][:, 0], len(prep.panel.ids))
    log_validation(calibration.content)
    return calibration


def save_run(content: dict | None, folder: Path) -> None:
    """calibration.json in `folder` (`IntervalResults.calibration`), the offsets
    forecast-predict applies: the validation ones (split) or those at the end of the data
    (adaptive); nothing for a run without calibrated intervals (None)."""
    if content is not None:
        save(content, folder)


def score_test(calibration: Calibration, prep, units: np.ndarray, actual: np.ndarray,
               quantiles, space: str = "original") -> IntervalResults:
    """Score every interval on the test windows (coverage_<label>, width_<label>; beside them
    coverage_<label>_raw for the uncalibrated quantile pair and, when adaptive, _split for the
    validation offsets kept fixed) and give its bounds lower_<label>, upper_<label> (data
    units). units: the test forecasts (K, H, n_targets[, Q]), actual (K, H, n_targets), both
    in data units; the scores are in `space`."""
    calibrated, content = calibration.calibrated, calibration.content
    adaptive_walk = calibrated and content["calibration"] == "adaptive"
    to_space = (lambda a: a) if space == "original" else (  # noqa: E731
        lambda a: prep.scaler.transform(a, prep.target_cols))
    series = prep.indices["test"][:, 0]
    out = {"calibrated": calibrated, **({"calibration": content["calibration"]}
                                        if calibrated else {})}
    bounds, ends = {}, []

    def score(pair, key):
        return merged(out, interval_scores(to_space(actual), to_space(pair[0]), to_space(pair[1]),
                                           series, prep.panel.ids, prep.targets, key))

    for i, spec in enumerate(content["intervals"]):
        raw = raw_bounds(spec, units, quantiles)
        pair = calibrated_bounds(spec, spec["validation_offsets"], units, quantiles, series) \
            if calibrated else raw
        if pair is None:
            continue
        if adaptive_walk:
            out = score(pair, f"{spec['label']}_split")
            offsets, spec = _adapt(spec, calibration.validation_scores[i], content["adapt_rate"],
                                   prep, actual, units, quantiles)
            pair = calibrated_bounds(spec, offsets, units, quantiles, series)
        ends.append(spec)
        bounds[f"lower_{spec['label']}"] = pair[0].reshape(-1)
        bounds[f"upper_{spec['label']}"] = pair[1].reshape(-1)
        out = score(pair, spec["label"])
        if calibrated and raw is not None:
            out = score(raw, f"{spec['label']}_raw")
    if not calibrated:
        return IntervalResults(out, bounds, None)
    walked = {"adapted_windows": len(prep.indices["test"])} if adaptive_walk and ends else {}
    return IntervalResults(out, bounds, {**content, "intervals": ends, **walked})


def _adapt(spec: dict, validation_scores: np.ndarray, rate: float, prep, actual, units,
           quantiles) -> tuple[np.ndarray, dict]:
    """The adaptive walk of one interval over the test windows: their offsets (K, H, n_targets)
    and the interval's spec with the offsets and level at the end of the data."""
    test_scores = scores(spec, actual, units, quantiles, prep.indices["test"][:, 0])
    offsets, level, final = adaptive.walk(validation_scores, test_scores,
                                          prep.indices["test"][:, 1], spec["level"], rate)
    return offsets, {**spec, "offsets": final.tolist(), "end_level": level.tolist()}
