"""RegLSTM: recurrent layers that read the whole lookback, then a head to every lead.

One forward pass maps x (B, L, F_in) to y_hat (B, H, n_targets) from recurrent states that have
read all L input steps; nothing after the forecast origin is ever an input. A channel-independent
net also takes x (B, L, n_targets), the target columns alone (RegLSTM.input_columns).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import torch
from torch import nn

from forecast.config import ModelConfig
from forecast.models.layers import (
    WINDOW_NORMS,
    ParallelDecoder,
    SegmentEmbedding,
    WindowNorm,
    join_channels,
    split_channels,
)
from forecast.models.manual_lstm import ManualLSTM

log = logging.getLogger(__name__)

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN, "manual_lstm": ManualLSTM}
HEADS = ("last", "mean", "max", "attention")
DECODERS = ("direct", "autoregressive", "parallel")


class RegLSTM(nn.Module):
    """Recurrent encoder over the lookback + a forecasting head.

    decoder="direct" (many-to-one): pool the recurrent outputs (`head`), then
    Linear(D*hidden -> H * n_targets [* n_quantiles]).
    decoder="autoregressive" (many-to-many, per-step): Linear(hidden -> F_in) on every step predicts
    the next input step; a forecast rolls out H steps feeding its own predictions back.
    decoder="parallel": every output segment of `segment` steps from the final state and a
    position embedding, all in one batched recurrent step (forecast.models.layers.ParallelDecoder).

    Around the encoder and decoder: `window_norm` (or `instance_norm`) normalises each window and
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
        **options,
    ):
        """The data's shapes, then the `model.*` options of the schema (forecast.config
        ModelConfig, whose defaults fill what is not given)."""
        super().__init__()
        o = net_options(options)
        check_options(o, lookback, n_series)
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
        kind = "standard" if o.instance_norm else o.window_norm
        self.norm = WindowNorm(kind, norm_features or n_features, self.inner_positions)
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

    @property
    def instance_norm(self) -> bool:
        return self.norm.kind == "standard"

    @property
    def input_columns(self) -> list[int] | None:
        """The input columns the net reads, in the order it reads them; None: all F_in. A
        channel-independent net reads its target columns alone, so batches of just those
        (B, L, n_targets) do: gathering the other 12 of the default data's 13 inputs cost
        segrnn 0.36-0.53 ms a training step. forward takes either width."""
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
    check_long_horizon_options(o, lookback)
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
    if o.head_norm and decoder != "direct":
        raise ValueError(f"model.head_norm normalises the summary that the direct head reads; "
                         f"model.decoder={decoder} has none: use model.decoder=direct")
    if quantiles and (0.5 not in quantiles or not all(0 < q < 1 for q in quantiles)):
        raise ValueError(f"model.quantiles={list(quantiles)} must lie in (0, 1) and include 0.5 "
                         "(the median is the point forecast)")
    if linear_skip and not lookback:
        raise ValueError("model.linear_skip needs the lookback (the width of the linear map)")
    if (instance_norm or o.window_norm == "revin") and lookback is not None and lookback < 2:
        raise ValueError(f"model.instance_norm and model.window_norm=revin need lookback >= 2 "
                         f"(a window's spread); got lookback={lookback}")
    if embedding_dim and n_series is not None and n_series < 1:
        raise ValueError("model.embedding_dim > 0 needs the number of series")
    if warn and dropout and num_layers == 1:
        log.warning("model.dropout=%s has no effect with model.num_layers=1: dropout acts "
                    "between stacked recurrent layers", dropout)


def check_long_horizon_options(o, lookback: int | None) -> None:
    """The options of forecast.models.layers: window_norm, segment, parallel decoding, channels."""
    if o.window_norm not in WINDOW_NORMS or o.window_norm == "standard":
        raise ValueError(f"model.window_norm='{o.window_norm}' is unknown; choose one of "
                         "none, last, revin (model.instance_norm=true is the plain standardising)")
    if o.window_norm != "none" and o.instance_norm:
        raise ValueError("model.instance_norm=true and model.window_norm="
                         f"{o.window_norm} both normalise each window; keep one of them")
    if o.segment < 0 or (o.segment and lookback is not None and lookback % o.segment):
        raise ValueError(f"model.segment={o.segment} must be 0 (step-wise input) or divide "
                         f"lookback={lookback}; e.g. model.segment=24 with lookback=96")
    if o.segment and o.decoder == "autoregressive":
        raise ValueError("model.segment > 0 reads whole segments, which the autoregressive "
                         "decoder cannot feed back step by step; use model.decoder=parallel "
                         "or direct")
    if o.decoder == "parallel":
        if not o.segment:
            raise ValueError("model.decoder=parallel forecasts one segment per recurrent step: "
                             "set model.segment (e.g. 24)")
        if o.head != "last":
            raise ValueError(f"model.decoder=parallel starts from the final state; "
                             f"model.head={o.head} is for model.decoder=direct")
        if o.linear_skip:
            raise ValueError("model.linear_skip is for model.decoder=direct")
    if o.channel_embedding < 0 or (o.channel_embedding and not o.channel_independent):
        raise ValueError(f"model.channel_embedding={o.channel_embedding} names each target "
                         "column's series: it needs model.channel_independent=true")
    if o.decoder == "parallel" and o.channel_embedding >= o.hidden_size + o.embedding_dim:
        raise ValueError(f"model.channel_embedding={o.channel_embedding} must be smaller than "
                         f"model.hidden_size={o.hidden_size} + model.embedding_dim="
                         f"{o.embedding_dim}: the parallel decoder's input is the position "
                         "embedding and the channel embedding together")
