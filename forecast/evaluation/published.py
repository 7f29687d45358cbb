"""Published test scores of the long-horizon tables at lookback 96 (ETT protocol), printed beside
a run's own by `+experiment=ett` (evaluate.published=true).

MSE / MAE of z-scores from the SegRNN repository's table "Comparison Results for Lookback L = 96"
(SegRNN re-run by its authors; the other rows from the iTransformer paper).
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


def describe(path: str | None, lookback: int, horizon: int, mse: float, mae: float) -> str:
    """The published rows for this file and horizon beside the run's own MSE / MAE (z-scores),
    or why there are none."""
    stem = Path(str(path)).stem
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
