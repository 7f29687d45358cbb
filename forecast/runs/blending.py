"""`model.backbone_mode=blend`: after training, each lead's and target's forecast becomes
w * backbone + (1 - w) * network. w starts as the weight in [0, 1] with the lowest training loss
(the median's point loss for a quantile model) on the validation windows; the loss is a sum over
leads and targets, so the weights chosen one by one minimise it as a whole. Then each moves
`model.blend_shrink` of the way toward 0.5, the plain average: weights fitted on one short span
are noisy, and on later spans the average of two forecasts is hard to beat (the forecast
combination puzzle). A target whose shrunk weights lose on validation to the network or the
backbone alone keeps the chosen ones, so on validation the blend is never worse than either."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from forecast.models import checkpoints
from forecast.models.forecaster import LOSSES, Forecaster
from forecast.models.quantiles import point

GRID = np.linspace(0.0, 1.0, 21)  # the weights tried; steps of 0.05


@dataclass(frozen=True)
class Blend:
    """The weights used (H, n_targets), the validation loss before and after, how far the
    chosen weights moved toward 0.5 (`shrink`) and for how many targets they were kept as
    chosen instead (`kept`: shrunk, they lost on validation to a part alone)."""

    weights: np.ndarray
    net_loss: float
    backbone_loss: float
    blended_loss: float
    shrink: float = 0.0
    kept: int = 0

    def describe(self, backbone: str) -> str:
        w = self.weights.mean(axis=1)
        n = self.weights.shape[1]
        moved = ""
        if self.shrink and self.kept < n:
            moved = f" (the chosen weights moved {self.shrink:g} of the way to 0.5" + \
                (f"; kept as chosen for {self.kept} of {n} targets)" if self.kept else ")")
        elif self.shrink:
            moved = " (kept as chosen: moved toward 0.5 they lose on validation)"
        return (f"Blended with the backbone ({backbone}) on validation: its weight "
                f"{w[0]:.2f} at lead 1, {w[-1]:.2f} at lead {len(w)}, {w.mean():.2f} on "
                f"average{moved}; val/loss {self.net_loss:.4g} (network alone), "
                f"{self.backbone_loss:.4g} (backbone alone), {self.blended_loss:.4g} (blend)")


def choose_blend(module: Forecaster, dataset, batch_size: int = 1024,
                 max_windows: int = 50_000, seed: int = 0) -> Blend:
    """Set module.net.blend_weight (H, n_targets) to the weights that minimise the training
    loss over (at most max_windows of) the windows of `dataset`, moved toward 0.5 by
    model.blend_shrink (see the module's docstring), and say what they gave."""
    net = module.net
    rows = np.arange(len(dataset))
    if len(rows) > max_windows:
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), max_windows, False))
    own, linear, actual = _forecasts(module, dataset, rows, batch_size)  # (K, H, C) each
    loss = LOSSES["mae" if net.quantiles else module.hparams.loss]

    def losses(w) -> np.ndarray:  # (H, C): the mean loss of weights w (H, C) or one weight
        return loss(torch.from_numpy(own + w * (linear - own)), torch.from_numpy(actual),
                    reduction="none").mean(0).numpy()

    per_weight = np.stack([losses(w) for w in GRID])  # (grid, H, C)
    chosen = GRID[per_weight.argmin(axis=0)]  # (H, C)
    weights = (1.0 - net.options.blend_shrink) * chosen + net.options.blend_shrink * 0.5
    parts = np.minimum(per_weight[0].mean(0), per_weight[-1].mean(0))  # (C,) each part alone
    worse = losses(weights).mean(0) > parts
    weights[:, worse] = chosen[:, worse]
    weights = weights.astype(np.float32)
    net.blend_weight.copy_(torch.from_numpy(weights))
    return Blend(weights, float(per_weight[0].mean()), float(per_weight[-1].mean()),
                 float(losses(weights).mean()), net.options.blend_shrink, int(worse.sum()))


def blend_best(module: Forecaster, dataset, best: str, seed: int = 0) -> Blend:
    """Load the best checkpoint's weights, choose the blend on `dataset` (the validation
    windows) and write it into the checkpoint."""
    module.load_state_dict(checkpoints.read(best)["state_dict"])
    chosen = choose_blend(module, dataset, seed=seed)
    checkpoints.write_weights(best, module.state_dict())
    return chosen


def _forecasts(module: Forecaster, dataset, rows: np.ndarray, batch_size: int):
    """The network's point forecasts, the backbone's and the targets over `rows`, (K, H, C)
    each, in scaled units (float64)."""
    net, parts = module.net, ([], [], [])
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                x, y, series, *cov = dataset[rows[start:start + batch_size]]
                known, static = (cov + [None, None])[:2]
                own = point(net(x, series, known, static, backbone=False), net.quantiles)
                linear = net.backbone(*net.backbone_inputs(x, known, static))
                for part, values in zip(parts, (own, linear, y), strict=True):
                    part.append(values.double().numpy())
    finally:
        module.train(was_training)
    return tuple(np.concatenate(p) for p in parts)
