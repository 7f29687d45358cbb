"""RegLSTM: recurrent layers that read the whole lookback, then a head to every lead.

One forward pass maps x (B, L, F_in) to y_hat (B, H, n_targets) from recurrent states that have
read all L input steps; nothing after the forecast origin is ever an input.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import torch
from torch import nn

from forecast.config import ModelConfig
from forecast.manual_lstm import ManualLSTM

log = logging.getLogger(__name__)

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN, "manual_lstm": ManualLSTM}
HEADS = ("last", "mean", "max", "attention")
DECODERS = ("direct", "autoregressive")


class RegLSTM(nn.Module):
    """Recurrent encoder over the lookback + a forecasting head.

    decoder="direct" (many-to-one): pool the recurrent outputs (`head`), then
    Linear(D*hidden -> H * n_targets [* n_quantiles]).
    decoder="autoregressive" (many-to-many, per-step): Linear(hidden -> F_in) on every step predicts
    the next input step; a forecast rolls out H steps feeding its own predictions back.
    """

    def __init__(
        self,
        n_features: int,
        horizon: int,
        n_targets: int,
        *,
        lookback: int | None = None,
        n_series: int = 0,
        target_positions: list[int] | None = None,
        norm_features: int | None = None,
        **options,
    ):
        """The data's shapes, then the `model.*` options of the schema (forecast.config
        ModelConfig, whose defaults fill what is not given)."""
        super().__init__()
        o = net_options(options)
        check_options(o, lookback, n_series)
        hidden_size, num_layers, cell, head = o.hidden_size, o.num_layers, o.cell, o.head
        decoder, embedding_dim, bidirectional = o.decoder, o.embedding_dim, o.bidirectional
        instance_norm, quantiles, residual = o.instance_norm, o.quantiles, o.residual
        dropout, linear_skip = o.dropout, o.linear_skip
        self.horizon, self.n_targets, self.head, self.decoder = horizon, n_targets, head, decoder
        self.instance_norm, self.residual = instance_norm, residual
        self.quantiles = list(quantiles or [])
        # input columns holding the targets, and how many leading columns are data features
        # (calendar and mask columns after them are not normalised per window)
        self.target_positions = list(target_positions or range(n_targets))
        self.norm_features = norm_features or n_features
        self.embedding = nn.Embedding(n_series, embedding_dim) if embedding_dim else None
        self.rnn = CELLS[cell](
            input_size=n_features + embedding_dim,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
            batch_first=True,
        )
        self.directions = 2 if bidirectional else 1
        width = self.directions * hidden_size
        self.attention = nn.Linear(width, 1) if head == "attention" else None
        self.head_dropout = nn.Dropout(o.head_dropout)  # no weights: state dicts are unchanged
        n_out = horizon * n_targets * max(1, len(self.quantiles))
        self.out = nn.Linear(width, n_out) if decoder == "direct" else None
        self.step_out = nn.Linear(width, n_features) if decoder == "autoregressive" else None
        # LSTNet-style highway: a linear map of the whole window added to the recurrent forecast
        self.skip = nn.Linear(lookback * n_features, horizon * n_targets) if linear_skip else None
        self.aux_loss: torch.Tensor | None = None  # next-step loss of the autoregressive decoder

    def forward(self, x: torch.Tensor, series: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, F_in), series (B,) -> y_hat (B, H, n_targets), or (B, H, n_targets, Q)
        sorted along Q when the model has quantiles."""
        if self.instance_norm:
            x, loc, scale = self._normalise(x)
        if self.decoder == "direct":
            y = self._direct(x, series)
        else:
            y = self._rollout(x, series)
        if self.instance_norm:
            t = self.target_positions
            loc, scale = loc[:, :, t], scale[:, :, t]  # (B, 1, n_targets)
            if self.quantiles:
                loc, scale = loc[..., None], scale[..., None]
            y = y * scale + loc
        return y.sort(dim=-1).values if self.quantiles else y

    def _normalise(self, x: torch.Tensor):
        k = self.norm_features
        loc = x[:, :, :k].mean(dim=1, keepdim=True)  # (B, 1, k)
        scale = x[:, :, :k].std(dim=1, keepdim=True) + 1e-3  # (B, 1, k)
        return torch.cat([(x[:, :, :k] - loc) / scale, x[:, :, k:]], dim=2), loc, scale

    def _embed(self, x: torch.Tensor, series: torch.Tensor | None) -> torch.Tensor:
        """Append the series embedding (B, d) to every step of x (B, L, F_in)."""
        if self.embedding is None:
            return x
        if series is None:
            raise ValueError("a model with model.embedding_dim > 0 needs the series ids")
        e = self.embedding(series)[:, None, :].expand(-1, x.shape[1], -1)  # (B, L, d)
        return torch.cat([x, e], dim=2)

    def _pool(self, output: torch.Tensor, state) -> torch.Tensor:
        """Recurrent outputs (B, L, D*hidden) -> summary (B, D*hidden) that has read it all."""
        if self.head == "last":
            h_n = state[0] if isinstance(state, tuple) else state  # (layers*D, B, hidden)
            # both directions of the top layer: the forward one has read every step, and so has
            # the backward one (unlike output[:, -1], whose backward half has seen one step)
            top = h_n[-self.directions :]  # (D, B, hidden)
            return top.transpose(0, 1).reshape(output.shape[0], -1)
        if self.head == "mean":
            return output.mean(dim=1)
        if self.head == "max":
            return output.amax(dim=1)
        weights = torch.softmax(self.attention(output), dim=1)  # (B, L, 1)
        return (weights * output).sum(dim=1)

    def _direct(self, x: torch.Tensor, series: torch.Tensor | None) -> torch.Tensor:
        output, state = self.rnn(self._embed(x, series))  # (B, L, D*hidden)
        y = self.out(self.head_dropout(self._pool(output, state)))  # (B, H*n_targets*Q)
        y = y.view(x.shape[0], self.horizon, self.n_targets, -1)  # (B, H, n_targets, Q)
        if self.skip is not None:
            y = y + self.skip(x.flatten(1)).view(x.shape[0], self.horizon, self.n_targets, 1)
        if self.residual:  # every lead (and quantile) is a change from the last observed value
            y = y + x[:, -1, self.target_positions][:, None, :, None]
        return y if self.quantiles else y[..., 0]

    def _rollout(self, x: torch.Tensor, series: torch.Tensor | None) -> torch.Tensor:
        output, state = self.rnn(self._embed(x, series))  # (B, L, hidden)
        steps = self.step_out(output)  # (B, L, F_in): step t predicts input step t+1
        if self.residual:  # ... as a change from step t
            steps = steps + x
        if self.training:
            self.aux_loss = nn.functional.mse_loss(steps[:, :-1], x[:, 1:])
        preds = [steps[:, -1]]
        for _ in range(self.horizon - 1):
            out, state = self.rnn(self._embed(preds[-1][:, None], series), state)  # (B, 1, hidden)
            step = self.step_out(out[:, -1])  # (B, F_in)
            preds.append(step + preds[-1] if self.residual else step)
        path = torch.stack(preds, dim=1)  # (B, H, F_in)
        return path[:, :, self.target_positions]


def net_options(options: dict) -> SimpleNamespace:
    """The network's options: the schema's defaults (ModelConfig) updated with `options`; a name
    the schema does not know is refused."""
    defaults = ModelConfig().net_options()
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"RegLSTM got unknown option(s) {unknown}; known: {sorted(defaults)}")
    return SimpleNamespace(**{**defaults, **options})


def check_options(o, lookback: int | None = None, n_series: int | None = None,
                  warn: bool = True) -> None:
    """Refuse combinations that cannot work, at start-up, with the option names and the fix.
    `o` holds the net options as attributes (ModelConfig, or `net_options`); `n_series` None:
    not known yet (checked again when the net is built)."""
    cell, head, decoder, bidirectional = o.cell, o.head, o.decoder, o.bidirectional
    quantiles, linear_skip, embedding_dim = o.quantiles, o.linear_skip, o.embedding_dim
    instance_norm, dropout, num_layers = o.instance_norm, o.dropout, o.num_layers
    if cell not in CELLS:
        raise ValueError(f"model.cell='{cell}' is unknown; choose one of {sorted(CELLS)}")
    if head not in HEADS:
        raise ValueError(f"model.head='{head}' is unknown; choose one of {list(HEADS)}")
    if decoder not in DECODERS:
        raise ValueError(f"model.decoder='{decoder}' is unknown; choose one of {list(DECODERS)}")
    if decoder == "autoregressive":
        if bidirectional:
            raise ValueError(
                "model.decoder=autoregressive with model.bidirectional=true is refused: the "
                "backward direction would read the steps it predicts. Use model.bidirectional="
                "false, or model.decoder=direct for a Bi-LSTM"
            )
        if quantiles or linear_skip:
            raise ValueError("model.decoder=autoregressive supports neither model.quantiles nor "
                             "model.linear_skip; use model.decoder=direct for them")
    if quantiles and (0.5 not in quantiles or not all(0 < q < 1 for q in quantiles)):
        raise ValueError(f"model.quantiles={list(quantiles)} must lie in (0, 1) and include 0.5 "
                         "(the median is the point forecast)")
    if linear_skip and not lookback:
        raise ValueError("model.linear_skip needs the lookback (the width of the linear map)")
    if instance_norm and lookback is not None and lookback < 2:
        raise ValueError(f"model.instance_norm needs lookback >= 2 (a window's spread); "
                         f"got lookback={lookback}")
    if embedding_dim and n_series is not None and n_series < 1:
        raise ValueError("model.embedding_dim > 0 needs the number of series")
    if warn and dropout and num_layers == 1:
        log.warning("model.dropout=%s has no effect with model.num_layers=1: dropout acts "
                    "between stacked recurrent layers", dropout)
