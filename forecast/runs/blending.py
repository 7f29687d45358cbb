"""`model.backbone_mode=blend`: after training, each lead's and target's forecast becomes
w * backbone + (1 - w) * network, w in [0, 1] the one with the lowest training loss (the
median's point loss for a quantile model) on the validation windows. The loss is a sum over
leads and targets, so the weights chosen one by one minimise it as a whole: on validation the
blend is never worse than the network (w = 0) or the backbone (w = 1) alone."""

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
    """The weights chosen (H, n_targets) and the validation loss before and after."""

    weights: np.ndarray
    net_loss: float
    backbone_loss: float
    blended_loss: float

    def describe(self, backbone: str) -> str:
        w = self.weights.mean(axis=1)
        return (f"Blended with the backbone ({backbone}) on validation: its weight "
                f"{w[0]:.2f} at lead 1, {w[-1]:.2f} at lead {len(w)}, {w.mean():.2f} on "
                f"average; val/loss {self.net_loss:.4g} (network alone), "
                f"{self.backbone_loss:.4g} (backbone alone), {self.blended_loss:.4g} (blend)")


def choose_blend(module: Forecaster, dataset, batch_size: int = 1024,
                 max_windows: int = 50_000, seed: int = 0) -> Blend:
    """Set module.net.blend_weight (H, n_targets) to the weights that minimise the training
    loss over (at most max_windows of) the windows of `dataset`, and say what they gave."""
    net = module.net
    rows = np.arange(len(dataset))
    if len(rows) > max_windows:
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), max_windows, False))
    own, linear, actual = _forecasts(module, dataset, rows, batch_size)  # (K, H, C) each
    loss = LOSSES["mae" if net.quantiles else module.hparams.loss]
    # (grid, H, C): the mean loss of each weight at each lead and target
    per_weight = np.stack([
        loss(torch.from_numpy(own + w * (linear - own)), torch.from_numpy(actual),
             reduction="none").mean(0).numpy() for w in GRID])
    best = per_weight.argmin(axis=0)  # (H, C)
    weights = GRID[best].astype(np.float32)
    net.blend_weight.copy_(torch.from_numpy(weights))
    blended = np.take_along_axis(per_weight, best[None], axis=0)[0]
    return Blend(weights, float(per_weight[0].mean()), float(per_weight[-1].mean()),
                 float(blended.mean()))


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
