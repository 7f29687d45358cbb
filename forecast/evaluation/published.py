"""Published test scores printed beside a run's own (evaluate.published=true):
- the long-horizon tables at lookback 96 (ETT protocol, `+experiment=ett`): MSE / MAE of
  z-scores from the SegRNN repository's table "Comparison Results for Lookback L = 96" (SegRNN
  re-run by its authors; the other rows from the iTransformer paper);
- the day-ahead electricity prices (`+experiment=epf`, NP and PJM): test MAE in price units over
  the last 728 days, from ../shared/benchmarks/epf/README.md (epftoolbox and NBEATSx tables).
"""

from __future__ import annotations

from pathlib import Path

MODELS = ("SegRNN", "iTransformer", "TimesNet", "PatchTST", "DLinear")
TABLE = {  # (file stem, horizon) -> one (MSE, MAE) per model of MODELS
    ("ETTh1", 96): ((0.368, 0.395), (0.386, 0.405), (0.384, 0.402), (0.414, 0.419),
                    (0.386, 0.400)),
    ("ETTh1", 192): ((0.408, 0.419), (0.441, 0.436), (0.436, 0.429), (0.460, 0.445),
                     (0.437, 0.432)),
    ("ETTh1", 336): ((0.444, 0.440), (0.487, 0.458), (0.491, 0.469), (0.501, 0.466),
                     (0.481, 0.459)),
    ("ETTh1", 720): ((0.446, 0.457), (0.503, 0.491), (0.521, 0.500), (0.500, 0.488),
                     (0.519, 0.516)),
    ("ETTh2", 96): ((0.278, 0.335), (0.297, 0.349), (0.340, 0.374), (0.302, 0.348),
                    (0.333, 0.387)),
    ("ETTh2", 192): ((0.359, 0.389), (0.380, 0.400), (0.402, 0.414), (0.388, 0.400),
                     (0.477, 0.476)),
    ("ETTh2", 336): ((0.421, 0.436), (0.428, 0.432), (0.452, 0.452), (0.426, 0.433),
                     (0.594, 0.541)),
    ("ETTh2", 720): ((0.432, 0.455), (0.427, 0.445), (0.462, 0.468), (0.431, 0.446),
                     (0.831, 0.657)),
}


EPF_MODELS = ("naive (epftoolbox)", "LEAR, 1456-day window", "DNN, best single",
              "LEAR ensemble", "DNN ensemble", "NBEATSx-G ensemble", "NBEATSx-I ensemble")
EPF_TABLE = {  # file stem -> test MAE per model of EPF_MODELS, recalibrated every day
    "NP": (3.165, 1.990, 1.712, 1.74, 1.68, 1.58, 1.62),
    "PJM": (4.846, 3.095, 3.075, 3.01, 2.86, 2.91, 2.90),
}


def describe(path: str | None, lookback: int, horizon: int, mse: float, mae: float,
             space: str = "scaled", origin_hour: int | None = None) -> str:
    """The published rows for this file and horizon beside the run's own scores, or why there
    are none."""
    stem = Path(str(path)).stem
    if stem in EPF_TABLE:
        return _describe_epf(stem, horizon, mae, space, origin_hour)
    if space != "scaled":
        return "The published tables score z-scores: set evaluate.space=scaled to compare."
    rows = TABLE.get((stem, horizon))
    if rows is None or lookback != 96:
        known = sorted({s for s, _ in TABLE})
        return (f"No published row for '{stem}' at lookback={lookback}, horizon={horizon} "
                f"(the table holds {known} at lookback 96, horizons 96/192/336/720).")
    lines = [f"Published test scores, {stem}, L=96, H={horizon} (MSE / MAE of z-scores):",
             f"  {'this run':<14}{mse:7.3f} {mae:7.3f}"]
    lines += [f"  {name:<14}{m:7.3f} {a:7.3f}" for name, (m, a) in zip(MODELS, rows, strict=True)]
    ahead = [name for name, (m, _) in zip(MODELS, rows, strict=True) if mse <= m]
    lines.append(f"This run's MSE is at or below: {', '.join(ahead) if ahead else 'none of them'}.")
    return "\n".join(lines)


def _describe_epf(stem: str, horizon: int, mae: float, space: str,
                  origin_hour: int | None) -> str:
    if horizon != 24 or origin_hour != 0 or space != "original":
        return (f"The published {stem} scores are one day-ahead forecast a day from midnight in "
                "price units: run +experiment=epf (horizon=24, evaluate.origin_hour=0, "
                "evaluate.space=original) to compare.")
    lines = [f"Published test MAE, {stem}, last 728 days (price units; the published models "
             "are recalibrated every day, this run is fitted once):",
             f"  {'this run':<24}{mae:7.3f}"]
    lines += [f"  {name:<24}{value:7.3f}"
              for name, value in zip(EPF_MODELS, EPF_TABLE[stem], strict=True)]
    ahead = [n for n, v in zip(EPF_MODELS, EPF_TABLE[stem], strict=True) if mae <= v]
    lines.append(f"This run's MAE is at or below: {', '.join(ahead) if ahead else 'none'}.")
    return "\n".join(lines)
