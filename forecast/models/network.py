"""RegLSTM: recurrent layers that read the whole lookback, then a head to every lead.

One forward pass maps x (B, L, F_in) to y_hat (B, H, n_targets) from recurrent states that have
read all L input steps; nothing after the forecast origin is ever an input. A channel-independent
net also takes x (B, L, n_targets), the target columns alone (RegLSTM.input_columns).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import nn

from forecast.config import NetOptions
from forecast.models.layers import (
    ParallelDecoder,
    SegmentEmbedding,
    WindowNorm,
    join_channels,
    split_channels,
)
from forecast.models.manual_lstm import ManualLSTM
from forecast.models.options import check_shapes, net_from_hparams, to_hparams

log = logging.getLogger(__name__)

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN, "manual_lstm": ManualLSTM}


class RegLSTM(nn.Module):
    """Recurrent encoder over the lookback + a forecasting head.

    decoder="direct" (many-to-one): pool the recurrent outputs (`head`), then
    Linear(D*hidden -> H * n_targets [* n_quantiles]).
    decoder="autoregressive" (many-to-many, per-step): Linear(hidden -> F_in) on every step predicts
    the next input step; a forecast rolls out H steps feeding its own predictions back.
    decoder="parallel": every output segment of `segment` steps from the final state and a
    position embedding, all in one batched recurrent step (forecast.models.layers.ParallelDecoder).

    Around the encoder and decoder: `window_norm` normalises each window and
    reverses it on the output; `channel_independent` runs each target column as its own
    univariate series through the shared weights; `segment` > 0 embeds segments of the lookback
    instead of single steps.
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
        options: NetOptions | None = None,
    ):
        """The data's shapes, then the network's options (None: NetOptions' defaults)."""
        super().__init__()
        o = options or NetOptions()
        check_shapes(o, lookback, n_series)
        self.options = o
        self.shapes = {"n_features": n_features, "horizon": horizon, "n_targets": n_targets,
                       "lookback": lookback, "n_series": n_series,
                       "target_positions": list(target_positions or range(n_targets)),
                       "norm_features": norm_features}
        self.horizon, self.head, self.decoder = horizon, o.head, o.decoder
        self.residual, self.quantiles = o.residual, list(o.quantiles or [])
        # input columns holding the targets, and how many leading columns are data features
        # (calendar and mask columns after them are not normalised per window)
        self.target_positions = list(target_positions or range(n_targets))
        self.n_inputs = n_features  # F_in of the input array; columns() may hand fewer
        self.channels = len(self.target_positions) if o.channel_independent else 0
        if self.channels:  # the net sees one column, the target, of one channel at a time
            if n_features > self.channels:
                log.info("model.channel_independent: the %d target columns are read, each on "
                         "its own; the other %d inputs are not", self.channels,
                         n_features - self.channels)
            n_features, n_targets, norm_features = 1, 1, 1
            self.inner_positions = [0]
        else:
            self.inner_positions = self.target_positions
        self.n_targets = n_targets
        self.norm = WindowNorm(o.window_norm, norm_features or n_features, self.inner_positions)
        self.embedding = nn.Embedding(n_series, o.embedding_dim) if o.embedding_dim else None
        self.channel_embedding = (nn.Embedding(self.channels, o.channel_embedding)
                                  if self.channels and o.channel_embedding else None)
        # a parallel decoder reads the channel embedding; otherwise every encoder step does
        step_channel = 0 if o.decoder == "parallel" or not self.channels else o.channel_embedding
        self.segments = (SegmentEmbedding(o.segment, n_features, o.hidden_size)
                         if o.segment else None)
        step_width = o.hidden_size if o.segment else n_features
        self.rnn = CELLS[o.cell](
            input_size=step_width + o.embedding_dim + step_channel,
            hidden_size=o.hidden_size,
            num_layers=o.num_layers,
            dropout=o.dropout if o.num_layers > 1 else 0.0,
            bidirectional=o.bidirectional,
            batch_first=True,
        )
        self.directions = 2 if o.bidirectional else 1
        width = self.directions * o.hidden_size
        self.attention = nn.Linear(width, 1) if o.head == "attention" else None
        self.head_dropout = nn.Dropout(o.head_dropout)  # no weights: state dicts are unchanged
        self.head_norm = nn.LayerNorm(width) if o.head_norm else nn.Identity()
        n_out = n_targets * max(1, len(self.quantiles))
        self.out = nn.Linear(width, horizon * n_out) if o.decoder == "direct" else None
        self.step_out = nn.Linear(width, n_features) if o.decoder == "autoregressive" else None
        self.parallel = None
        if o.decoder == "parallel":
            self.parallel = ParallelDecoder(
                -(-horizon // o.segment), o.segment, self.rnn.input_size,
                o.channel_embedding if self.channels else 0, width, n_out, o.head_dropout)
        # LSTNet-style highway: a linear map of the whole window added to the recurrent forecast
        self.skip = (nn.Linear(lookback * n_features, horizon * n_targets)
                     if o.linear_skip else None)
        self.aux_loss: torch.Tensor | None = None  # next-step loss of the autoregressive decoder

    @classmethod
    def from_hparams(cls, net: Mapping, source: str = "the checkpoint") -> RegLSTM:
        """The net a checkpoint's "net" hyper-parameters describe (shapes and options)."""
        shapes, options = net_from_hparams(net, source)
        return cls(**shapes, options=options)

    def hparams(self) -> dict:
        """Shapes and options as plain values: what a checkpoint stores as "net"."""
        return {**self.shapes, **to_hparams(self.options)}

    @property
    def input_columns(self) -> list[int] | None:
        """The input columns the net reads, in the order it reads them; None: all F_in. A
        channel-independent net reads its target columns alone, so batches of just those
        (B, L, n_targets) do: gathering the inputs it never reads costs time on every training
        step (benchmarks/README.md). forward takes either width."""
        if not self.channels or self.channels == self.n_inputs:
            return None
        return list(self.target_positions)

    def forward(self, x: torch.Tensor, series: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, F_in) (or (B, L, n_targets), see input_columns), series (B,) -> y_hat
        (B, H, n_targets), or (B, H, n_targets, Q) sorted along Q when the model has
        quantiles."""
        x, series, channel = self._rows(x, series)
        x, stats = self.norm(x)
        if self.decoder == "autoregressive":
            y = self._rollout(x, series, channel)
        else:
            y = self._direct(x, series, channel)
        y = self.norm.restore(y, stats)
        if self.channels:
            y = join_channels(y, self.channels)  # (B, H, n_targets[, Q])
        return y.sort(dim=-1).values if self.quantiles else y

    def encoder_inputs(self, x: torch.Tensor, series: torch.Tensor | None = None) -> torch.Tensor:
        """What the recurrent layers read of a batch x (B, L, F_in) (or (B, L, n_targets), see
        input_columns): (B', L', input_size)."""
        x, series, channel = self._rows(x, series)
        return self._steps(self.norm(x)[0], series, channel)

    def _rows(self, x: torch.Tensor, series: torch.Tensor | None):
        """Under channel independence, one row per (window, target column):
        x (B*C, L, 1), series (B*C,) and the channel ids (B*C,); otherwise as given."""
        if not self.channels:
            return x, series, None
        channel = torch.arange(self.channels, device=x.device).repeat(x.shape[0])
        if series is not None:
            series = series.repeat_interleave(self.channels)
        return split_channels(x, self._channel_positions(x.shape[-1])), series, channel

    def _channel_positions(self, width: int) -> list[int]:
        """Where the target columns lie in a batch of `width` columns: all F_in inputs, or
        the target columns alone (input_columns)."""
        if width == self.n_inputs:
            return self.target_positions
        if width == self.channels:
            return list(range(self.channels))
        raise ValueError(
            f"a batch of {width} input columns: this channel-independent net reads all "
            f"{self.n_inputs} inputs or its {self.channels} target columns alone "
            "(RegLSTM.input_columns)")

    def _steps(self, x: torch.Tensor, series: torch.Tensor | None,
               channel: torch.Tensor | None) -> torch.Tensor:
        """x (B, L, F) -> the recurrent input (B, L or L/segment, input_size): segment
        embedding, then the series (and channel) embeddings appended to every step."""
        steps = self.segments(x) if self.segments is not None else x
        extra = []
        if self.embedding is not None:
            if series is None:
                raise ValueError("a model with model.embedding_dim > 0 needs the series ids")
            extra.append(self.embedding(series))  # (B, d)
        if self.channel_embedding is not None and self.parallel is None:
            extra.append(self.channel_embedding(channel))
        if not extra:
            return steps
        e = torch.cat(extra, dim=1)[:, None, :].expand(-1, steps.shape[1], -1)  # (B, L', d)
        return torch.cat([steps, e], dim=2)

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

    def _direct(self, x: torch.Tensor, series, channel) -> torch.Tensor:
        output, state = self.rnn(self._steps(x, series, channel))  # (B, L', D*hidden)
        if self.parallel is not None:
            ids = self.channel_embedding(channel) if self.channel_embedding is not None else None
            y = self.parallel(self.rnn, state, ids)[:, : self.horizon]  # (B, H, n_targets*Q)
        else:
            summary = self.head_norm(self._pool(output, state))  # (B, D*hidden)
            y = self.out(self.head_dropout(summary))  # (B, H*n_targets*Q)
        y = y.reshape(x.shape[0], self.horizon, self.n_targets, -1)  # (B, H, n_targets, Q)
        if self.skip is not None:
            y = y + self.skip(x.flatten(1)).view(x.shape[0], self.horizon, self.n_targets, 1)
        if self.residual:  # every lead (and quantile) is a change from the last observed value
            y = y + x[:, -1, self.inner_positions][:, None, :, None]
        return y if self.quantiles else y[..., 0]

    def _rollout(self, x: torch.Tensor, series, channel) -> torch.Tensor:
        output, state = self.rnn(self._steps(x, series, channel))  # (B, L, hidden)
        steps = self.step_out(output)  # (B, L, F_in): step t predicts input step t+1
        if self.residual:  # ... as a change from step t
            steps = steps + x
        if self.training:
            self.aux_loss = nn.functional.mse_loss(steps[:, :-1], x[:, 1:])
        preds = [steps[:, -1]]
        for _ in range(self.horizon - 1):
            step_in = self._steps(preds[-1][:, None], series, channel)  # (B, 1, input_size)
            out, state = self.rnn(step_in, state)  # (B, 1, hidden)
            step = self.step_out(out[:, -1])  # (B, F_in)
            preds.append(step + preds[-1] if self.residual else step)
        path = torch.stack(preds, dim=1)  # (B, H, F_in)
        return path[:, :, self.inner_positions]
