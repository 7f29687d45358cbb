"""The linear backbone (`model.backbone`), fitted in closed form on the train windows before
training. With `model.backbone_mode=start` the recurrent network adds what it misses: its last
layers start at zero, so the model starts from the backbone's forecast, a linear map of the
window (what the linear baselines are). With `blend` the network trains on its own and each
lead's forecast is then blended with the backbone's (`blend`, weights chosen on validation by
forecast.runs.blending).

- ridge: one ridge regression of every lead and target on the flattened window (all inputs),
  the known inputs of the leads and the static values;
- rlinear: each target column its own series, one map shared by the columns from its lookback
  normalised by its last value, its mean, or its mean and spread (chosen on validation), its
  level and the known inputs;
- auto: both fitted, the one with the lower validation loss kept.

`BlockRidge` is the closed-form ridge the backbones and the linear baselines use (numpy only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from forecast.models.quantiles import point


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


NORMS = ("last", "mean", "revin")  # rlinear's window normalisations, as in the baseline


def normalise_windows(x, kind: str):
    """x (rows, L) lookbacks (numpy or torch) -> (normalised x, loc (rows, 1), scale (rows, 1));
    kind: "last" (minus the last value), "mean" (minus the mean) or "revin" (mean and
    spread)."""
    if kind == "last":
        loc = x[:, -1:]
        return x - loc, loc, loc * 0 + 1
    loc = x.mean(axis=1, keepdims=True) if isinstance(x, np.ndarray) else x.mean(1, keepdim=True)
    if kind != "revin":
        return x - loc, loc, loc * 0 + 1
    spread = x.std(axis=1, keepdims=True) if isinstance(x, np.ndarray) else \
        x.std(1, keepdim=True, unbiased=False)
    return (x - loc) / (spread + 1e-2), loc, spread + 1e-2


def column_rows(columns, known_flat):
    """A batch's target columns (B, L, C) -> one row per (window, column): lookbacks (B*C, L)
    and the windows' flattened known inputs repeated per column (B*C, H*F_known) or None."""
    b, steps, c = columns.shape
    rows = columns.permute(0, 2, 1).reshape(b * c, steps)
    known = None if known_flat is None else known_flat.repeat_interleave(c, dim=0)
    return rows, known


def column_design(xn, loc, scale, known):
    """rlinear's regressors of a row: the normalised lookback, the level in the row's units
    (so that a residual or a known forecast of the column can be followed) [, known]."""
    parts = [xn, loc / scale] + ([] if known is None else [known])
    return np.concatenate(parts, axis=1) if isinstance(xn, np.ndarray) else torch.cat(parts, 1)


class LinearBackbone(nn.Module):
    """The backbone's forecast (B, H, n_targets) from `design` (B, p) and the target columns
    (B, L, C): ridge, W design + b; or rlinear, per column (W_c row + b_c) * scale + loc. The
    coefficients are buffers (saved in checkpoints, never trained) set by `fit_backbone`;
    `norm` says which is used (-1: ridge; else rlinear with NORMS[norm])."""

    def __init__(self, n_inputs: int, horizon: int, n_targets: int, lookback: int,
                 n_known: int = 0):
        """n_inputs: p, the width of `design`'s rows; n_known: H * F_known."""
        super().__init__()
        self.horizon, self.n_targets = horizon, n_targets
        self.register_buffer("weight", torch.zeros(horizon * n_targets, n_inputs))
        self.register_buffer("bias", torch.zeros(horizon * n_targets))
        self.register_buffer("column_weight", torch.zeros(horizon, lookback + 1 + n_known))
        self.register_buffer("column_bias", torch.zeros(horizon))
        self.register_buffer("norm", torch.tensor(-1))

    @staticmethod
    def design(x: torch.Tensor, known: torch.Tensor | None,
               static: torch.Tensor | None) -> torch.Tensor:
        """The regressors of a batch x (B, L, F_x): (B, L*F_x [+ H*F_known] [+ S])."""
        parts = [x.flatten(1)]
        parts += [t.flatten(1) for t in (known, static) if t is not None]
        return torch.cat(parts, dim=1)

    @property
    def kind(self) -> str:
        return "ridge" if int(self.norm) < 0 else f"rlinear ({NORMS[int(self.norm)]})"

    def forward(self, design: torch.Tensor, columns: torch.Tensor,
                known_flat: torch.Tensor | None) -> torch.Tensor:
        """design (B, p), columns (B, L, C), known_flat (B, H*F_known) -> (B, H, C)."""
        b = design.shape[0]
        if int(self.norm) < 0:
            y = torch.addmm(self.bias, design.to(self.weight.dtype), self.weight.T)
            return y.view(b, self.horizon, self.n_targets)
        rows, known = column_rows(columns.to(self.weight.dtype), known_flat)
        xn, loc, scale = normalise_windows(rows, NORMS[int(self.norm)])
        y = torch.addmm(self.column_bias, column_design(xn, loc, scale, known),
                        self.column_weight.T) * scale + loc  # (B*C, H)
        return y.view(b, self.n_targets, self.horizon).transpose(1, 2)

    def set_ridge(self, ridge: BlockRidge) -> None:
        self.weight.copy_(torch.from_numpy(ridge.coef_))
        self.bias.copy_(torch.from_numpy(ridge.intercept_))
        self.norm.fill_(-1)

    def set_columns(self, ridge: BlockRidge, norm: str) -> None:
        self.column_weight.copy_(torch.from_numpy(ridge.coef_))
        self.column_bias.copy_(torch.from_numpy(ridge.intercept_))
        self.norm.fill_(NORMS.index(norm))


def blend(y: torch.Tensor, base: torch.Tensor, weight: torch.Tensor,
          quantiles: Sequence[float] = ()) -> torch.Tensor:
    """The network's forecast y (B, H, C) or (B, H, C, Q) moved towards the backbone's base
    (B, H, C) by weight (H, C) in [0, 1]: weight * base + (1 - weight) * y; a quantile
    forecast moves as a whole, by the shift of its median."""
    shift = weight * (base - point(y, quantiles))
    return y + (shift[..., None] if quantiles else shift)


class _Windows:
    """The windows a backbone is fitted on or chosen by: what the rest of the net outputs
    before training (its last layers at zero) is computed once; the regressors are gathered
    again a block at a time whenever a fit reads them."""

    def __init__(self, net: nn.Module, dataset, rows: np.ndarray, block: int = 2048):
        self.net, self.dataset, self.rows, self.block = net, dataset, rows, block
        # a net blended with the backbone after training does not add to it: fitted to y alone
        self.base = (np.zeros((len(rows), net.horizon, net.backbone.n_targets), np.float32)
                     if net.blend_mode else
                     np.concatenate([self._base(part) for part in self._parts()]))  # (K, H, C)

    def _parts(self):
        for start in range(0, len(self.rows), self.block):
            yield self.rows[start:start + self.block]

    def _base(self, part) -> np.ndarray:
        x, _, series, *cov = self.dataset[part]
        known, static = (cov + [None, None])[:2]
        base = self.net(x, series, known, static, backbone=False)  # (B, H, nt[, Q])
        return point(base, self.net.quantiles).numpy()

    def batches(self):
        """(regressors of the backbone, targets y (B, H, C) less the base) per block."""
        at = 0
        for part in self._parts():
            x, y, series, *cov = self.dataset[part]
            known, static = (cov + [None, None])[:2]
            inputs = self.net.backbone_inputs(x, known, static)
            yield inputs, y.numpy() - self.base[at:at + len(part)]
            at += len(part)


def _fit_ridge(windows: _Windows) -> BlockRidge:
    def blocks():
        for (design, _, _), y in windows.batches():
            yield design.double().numpy(), y.reshape(len(y), -1).astype(np.float64)
    return BlockRidge(RIDGE_ALPHAS).fit(blocks)


def _fit_columns(windows: _Windows, norm: str) -> BlockRidge:
    def blocks():
        for (_, columns, known_flat), y in windows.batches():
            rows, known = column_rows(columns.double(), known_flat)
            xn, loc, scale = normalise_windows(rows.numpy(), norm)
            target = y.transpose(0, 2, 1).reshape(len(rows), -1)  # (B*C, H)
            known = None if known is None else known.numpy()
            yield column_design(xn, loc, scale, known), (target - loc) / scale
    return BlockRidge(RIDGE_ALPHAS).fit(blocks)


def fit_backbone(net: nn.Module, train, val, loss, kind: str = "ridge",
                 max_windows: int = 30_000, seed: int = 0) -> str:
    """Fit `net.backbone` on the windows of `train` (a WindowDataset; at most max_windows of
    them, drawn with `seed`) to the targets less what the rest of the net outputs before
    training; rlinear's normalisation and, with kind="auto", ridge or rlinear chosen by `loss`
    (a function of forecasts and targets, the training loss) on the windows of `val`.
    -> what was kept, e.g. "rlinear (last; penalty 10)"."""
    rows = np.arange(len(train))
    if len(rows) > max_windows:
        rows = np.sort(np.random.default_rng(seed).choice(len(rows), max_windows, False))
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            windows = _Windows(net, train, rows)
            checks = _Windows(net, val, np.arange(len(val)))
            tried = []
            if kind in ("ridge", "auto"):
                ridge = _fit_ridge(windows)
                net.backbone.set_ridge(ridge)
                tried.append((_loss(checks, net.backbone, loss), "ridge", ridge))
            if kind in ("rlinear", "auto"):
                for norm in NORMS:
                    ridge = _fit_columns(windows, norm)
                    net.backbone.set_columns(ridge, norm)
                    tried.append((_loss(checks, net.backbone, loss), norm, ridge))
    finally:
        net.train(was_training)
    _, chosen, ridge = min(tried, key=lambda t: t[0])
    if chosen == "ridge":
        net.backbone.set_ridge(ridge)
    else:
        net.backbone.set_columns(ridge, chosen)
    return f"{net.backbone.kind}, penalty {ridge.alpha_:g}"


def _loss(windows: _Windows, backbone: LinearBackbone, loss) -> float:
    """The loss of the base plus the backbone over the windows, weighted by window."""
    total, count = 0.0, 0
    at = 0
    for inputs, rest in windows.batches():
        n = len(rest)
        base = torch.from_numpy(windows.base[at:at + n])
        y = torch.from_numpy(rest) + base
        total += float(loss(backbone(*inputs) + base, y)) * n
        count, at = count + n, at + n
    return total / max(count, 1)


# the linear baselines' penalties and two stronger ones: a backbone over long windows and known
# inputs (hundreds of correlated regressors) can want more shrinkage; leave-one-out chooses
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0, 1e4, 1e5)
