"""RegLSTM: recurrent layers that read the whole lookback, then a head to every lead.

One forward pass maps x (B, L, F_in) to y_hat (B, H, n_targets) from recurrent states that have
read all L input steps; nothing after the forecast origin is an input but the known covariates:
known (B, H, F_known), the values known at the origin for each lead (data.known, with the
calendar), each read only for its own lead (or segment), and static (B, S), the series' fixed
facts. A channel-independent net also takes x (B, L, n_targets), the target columns alone
(RegLSTM.input_columns).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

import torch
from torch import nn

from forecast.config import NetOptions
from forecast.models.backbone import LinearBackbone, blend
from forecast.models.layers import (
    KnownSegments,
    ParallelDecoder,
    SegmentEmbedding,
    SequenceDecoder,
    WindowNorm,
    join_channels,
    pool,
    split_channels,
)
from forecast.models.manual_lstm import ManualLSTM
from forecast.models.options import (
    check_covariates,
    check_shapes,
    net_from_hparams,
    to_hparams,
)

log = logging.getLogger(__name__)

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN, "manual_lstm": ManualLSTM}
STATIC_WIDTH = 16  # the static covariates' encoding, joined to every recurrent step


class RegLSTM(nn.Module):
    """Recurrent encoder over the lookback + a forecasting head.

    decoder="direct" (many-to-one): pool the recurrent outputs (`head`), then
    Linear(D*hidden -> H * n_targets [* n_quantiles]).
    decoder="autoregressive" (many-to-many, per-step): Linear(hidden -> F_in) on every step predicts
    the next input step; a forecast rolls out H steps feeding its own predictions back.
    decoder="parallel": every output segment of `segment` steps from the final state and a
    position embedding, all in one batched recurrent step (forecast.models.layers.ParallelDecoder).
    decoder="seq2seq": a recurrent decoder over the H leads from the encoder's final state, fed
    each lead's known inputs and a lead embedding, a linear head per step.

    Covariates: the direct head reads the flattened known inputs beside the summary, the
    parallel decoder each segment's, the autoregressive decoder each step's (in place of its own
    prediction of those columns); static covariates pass a small encoder (Linear + tanh) whose
    output joins the series embedding on every recurrent step.

    Around them: `window_norm` normalises each window and reverses it on the output;
    `channel_independent` runs each target column as its own univariate series through shared
    weights; `segment` > 0 embeds segments of the lookback; `members` > 1 is an ensemble of that
    many such networks, the forecast their mean, each trained on its own loss.
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
        known_positions: list[int] | None = None,
        n_static: int = 0,
        options: NetOptions | None = None,
    ):
        """The data's shapes, then the network's options (None: NetOptions' defaults).
        known_positions: where the known inputs' columns lie among the F_in inputs (F_known of
        them); n_static: S, the static covariates."""
        super().__init__()
        o = options or NetOptions()
        check_shapes(o, lookback, n_series)
        self.options = o
        self.shapes = {"n_features": n_features, "horizon": horizon, "n_targets": n_targets,
                       "lookback": lookback, "n_series": n_series,
                       "target_positions": list(target_positions or range(n_targets)),
                       "norm_features": norm_features,
                       "known_positions": list(known_positions or []), "n_static": n_static}
        self.known_positions = list(known_positions or [])
        n_known = len(self.known_positions)
        check_covariates(o, n_known)
        self.horizon, self.head, self.decoder = horizon, o.head, o.decoder
        self.residual, self.quantiles = o.residual, list(o.quantiles or [])
        # input columns holding the targets
        self.target_positions = list(target_positions or range(n_targets))
        self.n_inputs = n_features  # F_in of the input array; columns() may hand fewer
        self.channels = len(self.target_positions) if o.channel_independent else 0
        # the backbone reads what the net reads: all inputs, or the target columns of a
        # channel-independent net (backbone_inputs)
        self.backbone = (LinearBackbone(
            (lookback or 0) * (self.channels or n_features) + horizon * n_known + n_static,
            horizon, n_targets, lookback or 0, horizon * n_known)
            if o.backbone != "none" and lookback else None)  # a net for any length has none
        one = dataclasses.replace(o, members=1, backbone="none")  # the ensemble has the backbone
        self.members = (nn.ModuleList(RegLSTM(**self.shapes, options=one)
                                      for _ in range(o.members)) if o.members > 1 else None)
        if self.members is None:  # one network: its layers are its own
            self._build(o, n_features, horizon, n_targets, lookback, n_series, norm_features,
                        n_known, n_static)
        self.aux_loss: torch.Tensor | None = None  # next-step loss of the autoregressive decoder
        self.blend_mode = self.backbone is not None and o.backbone_mode == "blend"
        if self.blend_mode:  # each lead's weight of the backbone, set after training
            self.register_buffer("blend_weight", torch.zeros(horizon, self.backbone.n_targets))
        elif self.backbone is not None:
            for net in self.members if self.members is not None else [self]:
                net._zero_last_layers()

    def _build(self, o: NetOptions, n_features: int, horizon: int, n_targets: int,
               lookback: int | None, n_series: int, norm_features: int | None, n_known: int,
               n_static: int) -> None:
        """The layers of one network: embeddings, recurrent layers, decoder and head."""
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
        self.static_encoder = (nn.Sequential(nn.Linear(n_static, STATIC_WIDTH), nn.Tanh())
                               if n_static else None)
        static_width = STATIC_WIDTH if n_static else 0
        # a parallel decoder reads the channel embedding; otherwise every encoder step does
        step_channel = 0 if o.decoder == "parallel" or not self.channels else o.channel_embedding
        self.segments = (SegmentEmbedding(o.segment, n_features, o.hidden_size)
                         if o.segment else None)
        step_width = o.hidden_size if o.segment else n_features
        self.rnn = CELLS[o.cell](
            input_size=step_width + o.embedding_dim + static_width + step_channel,
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
        # with known inputs the head also reads the last lookback step as it is, so that a lead
        # can follow its known value exactly (a forecast of it) whatever the residual adds
        anchor = n_features if n_known else 0
        self.out = (nn.Linear(width + horizon * n_known + anchor, horizon * n_out)
                    if o.decoder == "direct" else None)
        self.step_out = nn.Linear(width, n_features) if o.decoder == "autoregressive" else None
        self.parallel = self.known_segments = self.sequence = None
        channel_width = o.channel_embedding if self.channels else 0
        if o.decoder == "parallel":
            self.parallel = ParallelDecoder(
                -(-horizon // o.segment), o.segment, self.rnn.input_size,
                channel_width, width, n_out, o.head_dropout)
            if n_known:
                self.known_segments = KnownSegments(o.segment, n_known,
                                                    self.rnn.input_size - channel_width)
        if o.decoder == "seq2seq":
            self.sequence = SequenceDecoder(
                CELLS[o.cell], horizon, n_known,
                o.embedding_dim + static_width + channel_width, o.hidden_size, o.num_layers,
                o.dropout, self.directions, n_out, o.head_dropout, anchor)
        # LSTNet-style highway: a linear map of the whole window added to the recurrent forecast
        self.skip = (nn.Linear(lookback * n_features, horizon * n_targets)
                     if o.linear_skip else None)

    def _zero_last_layers(self) -> None:
        """The layers that write the forecast start at zero, so that before training the net
        adds nothing to the backbone's forecast but what its residual adds."""
        last = [self.out, self.step_out, self.skip,
                self.parallel.out if self.parallel is not None else None,
                self.sequence.out if self.sequence is not None else None]
        for layer in (m for m in last if m is not None):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def backbone_inputs(self, x: torch.Tensor, known: torch.Tensor | None,
                        static: torch.Tensor | None) -> tuple:
        """What the backbone reads of a batch: the flattened regressors (B, L*F_x
        [+ H*F_known] [+ S]) (a channel-independent net's x is its target columns, whichever
        width x has), the target columns (B, L, n_targets) and the known inputs (B, H*F_known)
        or None."""
        if self.channels:
            x = columns = x[:, :, self._channel_positions(x.shape[-1])]
        else:
            columns = x[:, :, self.target_positions]
        flat = None if known is None else known.flatten(1)
        return LinearBackbone.design(x, known, static), columns, flat

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
        """The input columns the net reads, in order; None: all F_in. A channel-independent
        net's batches hold its target columns alone (B, L, n_targets), as gathering the inputs
        it never reads costs time (benchmarks/README.md); forward takes either width."""
        if not self.channels or self.channels == self.n_inputs:
            return None
        return list(self.target_positions)

    def forward(self, x: torch.Tensor, series: torch.Tensor | None = None,
                known: torch.Tensor | None = None, static: torch.Tensor | None = None,
                backbone: bool = True) -> torch.Tensor:
        """x (B, L, F_in) (or (B, L, n_targets), see input_columns), series (B,), known
        (B, H, F_known), static (B, S) -> y_hat (B, H, n_targets), or (B, H, n_targets, Q)
        sorted along Q when the model has quantiles; backbone=False leaves the linear
        backbone's forecast out (what it is fitted to complete)."""
        self._check_covariates(known, static)
        base = self._base(x, known, static) if backbone else None
        if self.members is None:
            return self._finish(self._network(x, series, known, static), base)
        y = torch.stack(self.member_forecasts(x, series, known, static, base=False)).mean(0)
        return self._finish(y, base)

    def member_forecasts(self, x: torch.Tensor, series: torch.Tensor | None = None,
                         known: torch.Tensor | None = None, static: torch.Tensor | None = None,
                         base: bool = True) -> list[torch.Tensor]:
        """Each member's forecast (B, H, n_targets[, Q]) of forward's batch, with `base` as
        forward would give it alone: what each trains on (on the loss of their mean, members
        lean on each other instead of each learning the whole forecast)."""
        start = self._base(x, known, static) if base else None
        members = [self._finish(m(x, series, known, static), start) for m in self.members]
        losses = [m.aux_loss for m in self.members if m.aux_loss is not None]
        self.aux_loss = torch.stack(losses).mean() if self.training and losses else None
        return members

    def _base(self, x, known, static) -> torch.Tensor | None:
        """The backbone's forecast (B, H, n_targets); None without one or in a blending net's
        training step (it trains on its own)."""
        if self.backbone is None or (self.blend_mode and self.training):
            return None
        return self.backbone(*self.backbone_inputs(x, known, static))

    def _finish(self, y: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
        """y with the backbone's forecast added (start) or blended in, quantiles sorted."""
        if base is not None and not self.blend_mode:
            y = y + (base[..., None] if self.quantiles else base).to(y.dtype)
        y = y.sort(dim=-1).values if self.quantiles else y
        if base is not None and self.blend_mode:  # moves the sorted quantiles as a whole
            y = blend(y, base.to(y.dtype), self.blend_weight, self.quantiles)
        return y

    def _network(self, x, series, known, static) -> torch.Tensor:
        """One network's own forecast (B, H, n_targets[, Q]), in the targets' units."""
        x, series, channel, known, static = self._rows(x, series, known, static)
        x, stats = self.norm(x)
        known = self._known(known, stats)
        if self.decoder == "autoregressive":
            y = self._rollout(x, series, channel, known, static)
        else:
            y = self._direct(x, series, channel, known, static)
        y = self.norm.restore(y, stats)
        return join_channels(y, self.channels) if self.channels else y

    def encoder_inputs(self, x: torch.Tensor, series: torch.Tensor | None = None,
                       known: torch.Tensor | None = None, static=None) -> torch.Tensor:
        """What the recurrent layers read of a batch x (B, L, F_in) (or (B, L, n_targets), see
        input_columns): (B', L', input_size)."""
        x, series, channel, _, static = self._rows(x, series, known, static)
        return self._steps(self.norm(x)[0], series, channel, static)

    def _check_covariates(self, known, static) -> None:
        if self.known_positions and known is None:
            raise ValueError("this net reads known inputs over the horizon (data.known): pass "
                             "known (B, H, F_known)")
        if self.shapes["n_static"] and static is None:
            raise ValueError("this net reads static covariates (data.static): pass static "
                             "(B, S)")

    def _rows(self, x: torch.Tensor, series: torch.Tensor | None, known=None, static=None):
        """Under channel independence, one row per (window, target column): x (B*C, L, 1),
        series (B*C,), the channel ids (B*C,), known (B*C, H, F_known), static (B*C, S);
        otherwise as given."""
        self._check_covariates(known, static)
        if not self.channels:
            return x, series, None, known, static
        channel = torch.arange(self.channels, device=x.device).repeat(x.shape[0])
        repeat = (lambda t: None if t is None  # noqa: E731
                  else t.repeat_interleave(self.channels, dim=0))
        return (split_channels(x, self._channel_positions(x.shape[-1])), repeat(series),
                channel, repeat(known), repeat(static))

    def _known(self, known: torch.Tensor | None, stats) -> torch.Tensor | None:
        """The known inputs (B, H, F_known) in the normalised lookback's units (WindowNorm.known);
        None for a net without known inputs."""
        if not self.known_positions:
            return None
        if self.channels:  # channel rows carry the known columns unnormalised
            return known
        return self.norm.known(known, stats, self.known_positions)

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
               channel: torch.Tensor | None, static: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, F) -> the recurrent input (B, L or L/segment, input_size): segment
        embedding, then the series (and channel) embeddings and the static encoding appended
        to every step."""
        steps = self.segments(x) if self.segments is not None else x
        e = self._context(series, channel, static, self.parallel is None)
        if e is None:
            return steps
        return torch.cat([steps, e[:, None, :].expand(-1, steps.shape[1], -1)], dim=2)

    def _context(self, series, channel, static, with_channel: bool) -> torch.Tensor | None:
        """What every step of a row reads besides its values: (B, d) of the series embedding,
        the static encoding [and the channel embedding]; None when there is none."""
        extra = []
        if self.embedding is not None:
            if series is None:
                raise ValueError("a model with model.embedding_dim > 0 needs the series ids")
            extra.append(self.embedding(series))  # (B, d)
        if self.static_encoder is not None:
            extra.append(self.static_encoder(static))  # (B, STATIC_WIDTH)
        if self.channel_embedding is not None and with_channel:
            extra.append(self.channel_embedding(channel))
        return torch.cat(extra, dim=1) if extra else None

    def _direct(self, x: torch.Tensor, series, channel, known=None, static=None) -> torch.Tensor:
        output, state = self.rnn(self._steps(x, series, channel, static))  # (B, L', D*hidden)
        if self.parallel is not None:
            ids = self.channel_embedding(channel) if self.channel_embedding is not None else None
            added = self.known_segments(known) if self.known_segments is not None else None
            y = self.parallel(self.rnn, state, ids, added)[:, : self.horizon]  # (B, H, nt*Q)
        elif self.sequence is not None:
            context = self._context(series, channel, static, True)
            anchor = x[:, -1] if known is not None else None
            y = self.sequence(state, known, context, anchor)  # (B, H, n_targets*Q)
        else:
            summary = self.head_norm(pool(self.head, output, state, self.directions,
                                                 self.attention))  # (B, D*hidden)
            if known is not None:  # each lead's known values beside what the encoder read
                summary = torch.cat([summary, known.flatten(1), x[:, -1]], dim=1)
            y = self.out(self.head_dropout(summary))  # (B, H*n_targets*Q)
        y = y.reshape(x.shape[0], self.horizon, self.n_targets, -1)  # (B, H, n_targets, Q)
        if self.skip is not None:
            y = y + self.skip(x.flatten(1)).view(x.shape[0], self.horizon, self.n_targets, 1)
        if self.residual:  # every lead (and quantile) is a change from the last observed value
            y = y + x[:, -1, self.inner_positions][:, None, :, None]
        return y if self.quantiles else y[..., 0]

    def _rollout(self, x: torch.Tensor, series, channel, known=None, static=None) -> torch.Tensor:
        output, state = self.rnn(self._steps(x, series, channel, static))  # (B, L, hidden)
        steps = self.step_out(output)  # (B, L, F_in): step t predicts input step t+1
        if self.residual:  # ... as a change from step t
            steps = steps + x
        if self.training:
            self.aux_loss = nn.functional.mse_loss(steps[:, :-1], x[:, 1:])
        preds = [steps[:, -1]]
        for lead in range(self.horizon - 1):
            step_in = preds[-1]
            if known is not None:  # the known columns of this lead as they are, not predicted
                step_in = step_in.clone()
                step_in[:, self.known_positions] = known[:, lead]
            step_in = self._steps(step_in[:, None], series, channel, static)  # (B, 1, size)
            out, state = self.rnn(step_in, state)  # (B, 1, hidden)
            step = self.step_out(out[:, -1])  # (B, F_in)
            preds.append(step + step_in[:, 0, :step.shape[1]] if self.residual else step)
        path = torch.stack(preds, dim=1)  # (B, H, F_in)
        return path[:, :, self.inner_positions]
