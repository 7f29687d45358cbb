"""The linear backbone (`model.backbone=ridge`): ridge regression of each window's targets on its
flattened inputs, fitted in closed form on the train windows before training, to which the
recurrent network adds what it misses. The network's last layer starts at zero, so the model
starts from the backbone's forecast: a linear map of the window (what the ridge baseline is) is
where training begins, not what it has to find.

`BlockRidge` is the closed-form ridge both this and the ridge baseline use (numpy only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn


class BlockRidge:
    """Ridge regression with an unpenalised intercept, the penalty chosen among `alphas` by the
    exact leave-one-out squared error summed over all outputs (what scikit-learn's RidgeCV
    does), fitted from row blocks: memory (p, p) + (p, m) + one block, never (n, p)."""

    def __init__(self, alphas: Sequence[float]):
        self.alphas = tuple(float(a) for a in alphas)

    def fit(self, blocks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]) -> BlockRidge:
        """blocks(): a fresh iterator of (x (b, p), y (b, m)) row blocks; it is read twice."""
        n, sx, sy, xtx, xty = 0, 0.0, 0.0, 0.0, 0.0
        for x, y in blocks():
            x, y = x.astype(np.float64), y.astype(np.float64)
            n, sx, sy = n + len(x), sx + x.sum(0), sy + y.sum(0)
            xtx, xty = xtx + x.T @ x, xty + x.T @ y
        mx, my = sx / n, sy / n
        values, vectors = np.linalg.eigh(xtx - n * np.outer(mx, mx))
        values = np.clip(values, 0.0, None)
        projected = vectors.T @ (xty - n * np.outer(mx, my))  # (p, m)
        errors = np.zeros(len(self.alphas))
        for x, y in blocks():
            xv = (x.astype(np.float64) - mx) @ vectors
            centred = y.astype(np.float64) - my
            for a, alpha in enumerate(self.alphas):
                inverse = 1.0 / (values + alpha)
                hat = 1.0 / n + np.einsum("ij,ij,j->i", xv, xv, inverse)
                loo = (centred - (xv * inverse) @ projected) / (1.0 - hat)[:, None]
                errors[a] += np.einsum("ij,ij->", loo, loo)
        self.alpha_ = self.alphas[int(np.argmin(errors))]
        self.coef_ = (vectors @ (projected / (values + self.alpha_)[:, None])).T  # (m, p)
        self.intercept_ = my - self.coef_ @ mx
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.float64) @ self.coef_.T + self.intercept_


class LinearBackbone(nn.Module):
    """y (B, H, n_targets) = W [x (B, L*F_x), known (B, H*F_known), static (B, S)] + b, with
    W and b buffers (saved in checkpoints, never trained) set by `fit`."""

    def __init__(self, n_inputs: int, horizon: int, n_targets: int):
        """n_inputs: p, the width of `design`'s rows."""
        super().__init__()
        self.horizon, self.n_targets = horizon, n_targets
        self.register_buffer("weight", torch.zeros(horizon * n_targets, n_inputs))
        self.register_buffer("bias", torch.zeros(horizon * n_targets))

    @staticmethod
    def design(x: torch.Tensor, known: torch.Tensor | None,
               static: torch.Tensor | None) -> torch.Tensor:
        """The regressors of a batch x (B, L, F_x): (B, L*F_x [+ H*F_known] [+ S])."""
        parts = [x.flatten(1)]
        parts += [t.flatten(1) for t in (known, static) if t is not None]
        return torch.cat(parts, dim=1)

    def forward(self, design: torch.Tensor) -> torch.Tensor:
        """design (B, p) (`design`) -> (B, H, n_targets)."""
        y = torch.addmm(self.bias, design.to(self.weight.dtype), self.weight.T)  # (B, H*nt)
        return y.view(design.shape[0], self.horizon, self.n_targets)

    def set(self, ridge: BlockRidge) -> None:
        self.weight.copy_(torch.from_numpy(ridge.coef_))
        self.bias.copy_(torch.from_numpy(ridge.intercept_))


def fit_backbone(net: nn.Module, dataset, max_windows: int = 30_000, seed: int = 0,
                 block: int = 2048) -> float:
    """Fit `net.backbone` on the windows of `dataset` (a WindowDataset of train windows; at
    most max_windows of them, drawn with `seed`): ridge of what the rest of the net outputs
    before training (its last layer at zero: the residual's last value, or nothing) subtracted
    from the targets. -> the penalty chosen by leave-one-out."""
    rows = np.arange(len(dataset))
    if len(rows) > max_windows:
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), max_windows, False))
    was_training = net.training
    net.eval()

    def blocks():
        with torch.no_grad():
            for start in range(0, len(rows), block):
                x, y, series, *cov = dataset[rows[start:start + block]]
                known, static = (cov + [None, None])[:2]
                base = net(x, series, known, static, backbone=False)  # (B, H, nt[, Q])
                if base.dim() == 4:
                    base = base[..., net.quantiles.index(0.5)]
                design = net.backbone_inputs(x, known, static)
                yield design.double().numpy(), (y - base).flatten(1).double().numpy()

    try:
        ridge = BlockRidge(RIDGE_ALPHAS).fit(blocks)
    finally:
        net.train(was_training)
    net.backbone.set(ridge)
    return ridge.alpha_


RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)  # the ridge baseline's penalties
