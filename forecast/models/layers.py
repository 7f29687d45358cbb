"""Building blocks of RegLSTM's long-horizon options: per-window normalisation, channel
independence, segment-wise input embedding and parallel multi-step decoding (the ideas behind
SegRNN, Lin et al. 2023, written from their description).
"""

from __future__ import annotations

import torch
from torch import nn

from forecast.config import WINDOW_NORMS


class WindowNorm(nn.Module):
    """Per-window normalisation of the first `n_norm` input columns, reversed on the output.

    kind="last": subtract each column's last lookback value; "standard": subtract the lookback
    mean and divide by its spread; "revin": "standard" followed by a learned affine map per column
    (Kim et al. 2022), inverted on the output; under channel independence the net sees one
    column at a time, so all columns share one affine pair. Calendar and mask columns after the
    first `n_norm` are left as they are. Only past values (the lookback) are read.
    """

    def __init__(self, kind: str, n_norm: int, target_positions: list[int]):
        super().__init__()
        if kind not in WINDOW_NORMS:
            raise ValueError(f"window norm '{kind}' is unknown; choose one of {WINDOW_NORMS}")
        self.kind, self.n_norm = kind, n_norm
        self.target_positions = list(target_positions)
        self.affine_weight = nn.Parameter(torch.ones(n_norm)) if kind == "revin" else None
        self.affine_bias = nn.Parameter(torch.zeros(n_norm)) if kind == "revin" else None

    def forward(self, x: torch.Tensor):
        """x (B, L, F_in) -> (normalised x, stats); stats feed `restore`."""
        if self.kind == "none":
            return x, None
        k = self.n_norm
        values = x[:, :, :k]
        if self.kind == "last":
            loc, scale = values[:, -1:], None  # (B, 1, k)
            values = values - loc
        else:
            loc = values.mean(dim=1, keepdim=True)  # (B, 1, k)
            scale = values.std(dim=1, keepdim=True) + 1e-3  # (B, 1, k)
            values = (values - loc) / scale
            if self.affine_weight is not None:
                values = values * self.affine_weight + self.affine_bias
        return torch.cat([values, x[:, :, k:]], dim=2), (loc, scale)

    def restore(self, y: torch.Tensor, stats) -> torch.Tensor:
        """y (B, H, n_targets[, Q]) in normalised units -> the units of the inputs."""
        if stats is None:
            return y
        t = self.target_positions
        loc, scale = stats
        extra = (None,) * (y.dim() - 3)  # a quantile axis, when there is one
        if self.affine_weight is not None:
            weight = self.affine_weight[t].view(1, 1, -1, *[1] * len(extra))
            bias = self.affine_bias[t].view(1, 1, -1, *[1] * len(extra))
            y = (y - bias) / (weight + 1e-10)
        if scale is not None:
            y = y * scale[:, :, t][(...,) + extra]
        return y + loc[:, :, t][(...,) + extra]

    def known(self, known: torch.Tensor, stats, positions: list[int]) -> torch.Tensor:
        """Known inputs (B, H, F_known), whose columns lie at `positions` of the inputs, in the
        units the normalised lookback is in: a data column by its own lookback's statistics,
        calendar columns as given."""
        if stats is None:
            return known
        loc, scale = stats  # (B, 1, n_norm)
        columns = [i for i, p in enumerate(positions) if p < self.n_norm]
        if not columns:
            return known
        at = [positions[i] for i in columns]
        values = known[:, :, columns] - loc[:, :, at]
        if scale is not None:
            values = values / scale[:, :, at]
        if self.affine_weight is not None:
            values = values * self.affine_weight[at] + self.affine_bias[at]
        known = known.clone()
        known[:, :, columns] = values
        return known


def pool(head: str, output: torch.Tensor, state, directions: int,
         attention: nn.Module | None = None) -> torch.Tensor:
    """Recurrent outputs (B, L, D*hidden) -> summary (B, D*hidden) that has read it all."""
    if head == "last":
        h_n = state[0] if isinstance(state, tuple) else state  # (layers*D, B, hidden)
        # both directions of the top layer: the forward one has read every step, and so has
        # the backward one (unlike output[:, -1], whose backward half has seen one step)
        top = h_n[-directions:]  # (D, B, hidden)
        return top.transpose(0, 1).reshape(output.shape[0], -1)
    if head == "mean":
        return output.mean(dim=1)
    if head == "max":
        return output.amax(dim=1)
    weights = torch.softmax(attention(output), dim=1)  # (B, L, 1)
    return (weights * output).sum(dim=1)


def split_channels(x: torch.Tensor, positions: list[int]) -> torch.Tensor:
    """x (B, L, F_in) -> (B*C, L, 1): each of the C columns at `positions` its own series."""
    b, steps, _ = x.shape
    channels = x[:, :, positions]  # (B, L, C)
    return channels.permute(0, 2, 1).reshape(b * len(positions), steps, 1)


def join_channels(y: torch.Tensor, n_channels: int) -> torch.Tensor:
    """y (B*C, H, 1[, Q]) -> (B, H, C[, Q])."""
    rows, horizon = y.shape[:2]
    y = y.reshape(rows // n_channels, n_channels, horizon, *y.shape[3:])  # (B, C, H[, Q])
    return y.transpose(1, 2)


class SegmentEmbedding(nn.Module):
    """The lookback cut into segments of `segment` steps, each embedded by Linear + ReLU:
    x (B, L, F) -> (B, L / segment, width), so the recurrent layers take L / segment steps."""

    def __init__(self, segment: int, n_features: int, width: int):
        super().__init__()
        self.segment = segment
        self.linear = nn.Linear(segment * n_features, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(cut_segments(x, self.segment)))  # (B, L/seg, width)


def cut_segments(x: torch.Tensor, segment: int) -> torch.Tensor:
    """x (B, T, F) -> (B, ceil(T / segment), segment * F): consecutive steps side by side, the
    last segment zero-padded when `segment` does not divide T."""
    b, steps, f = x.shape
    pad = -steps % segment
    if pad:
        x = nn.functional.pad(x, (0, 0, 0, pad))
    return x.reshape(b, (steps + pad) // segment, segment * f)


class ParallelDecoder(nn.Module):
    """Every output segment from the encoder's final state and a learned position embedding
    (joined with the channel embedding under channel independence), all segments in one batched
    recurrent step; then dropout and a linear map to the segment's steps.

    state (layers*D, B, hidden) [or an LSTM's (h, c)] -> y (B, n_segments * segment, n_out).
    """

    def __init__(self, n_segments: int, segment: int, input_size: int, channel_dim: int,
                 width: int, n_out: int, dropout: float):
        super().__init__()
        self.n_segments, self.segment, self.n_out = n_segments, segment, n_out
        self.position = nn.Parameter(torch.randn(n_segments, input_size - channel_dim))
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(width, segment * n_out)

    def forward(self, rnn: nn.Module, state, channel: torch.Tensor | None,
                known: torch.Tensor | None = None) -> torch.Tensor:
        """channel: (B, channel_dim) embedding of each row's channel, or None; known: (B, m, P)
        each segment's known inputs, embedded (KnownSegments), added to its position."""
        rows, m = _rows(state), self.n_segments
        steps = self.position[None].expand(rows, -1, -1)  # (B, m, P)
        if known is not None:
            steps = steps + known
        if channel is not None:
            steps = torch.cat([steps, channel[:, None].expand(-1, m, -1)], dim=2)
        steps = steps.reshape(rows * m, 1, -1)  # (B*m, 1, input_size): one step per segment
        state = _repeat_state(state, m)  # (layers*D, B*m, hidden)
        output, _ = rnn(steps, state)  # (B*m, 1, D*hidden)
        y = self.out(self.dropout(output[:, 0]))  # (B*m, segment * n_out)
        return y.view(rows, m * self.segment, self.n_out)


def _rows(state) -> int:
    return (state[0] if isinstance(state, tuple) else state).shape[1]


def _repeat_state(state, m: int):
    if isinstance(state, tuple):
        return tuple(s.repeat_interleave(m, dim=1) for s in state)
    return state.repeat_interleave(m, dim=1)


class KnownSegments(nn.Module):
    """The known inputs of each output segment, embedded for the parallel decoder:
    known (B, H, F_known) -> (B, n_segments, width), zero-padded to whole segments."""

    def __init__(self, segment: int, n_known: int, width: int):
        super().__init__()
        self.segment = segment
        self.linear = nn.Linear(segment * n_known, width)

    def forward(self, known: torch.Tensor) -> torch.Tensor:
        return self.linear(cut_segments(known, self.segment))


class SequenceDecoder(nn.Module):
    """A recurrent decoder over the H leads (the encoder-decoder of seq2seq forecasting): it
    starts from the encoder's final state, reads at lead h that lead's known inputs, a learned
    lead embedding and the row's context (series embedding, static encoding), and maps each
    output to that lead's forecast with one linear head, which also reads the lead's known
    inputs and the last lookback step (`anchor`) as they are.

    state (layers*D, B, hidden) [or an LSTM's (h, c)], known (B, H, F_known) or None, context
    (B, d) or None, anchor (B, F) or None -> y (B, H, n_out). A bidirectional encoder's two
    directions are summed into the decoder's one."""

    def __init__(self, cell: type, horizon: int, n_known: int, context: int, hidden: int,
                 layers: int, dropout: float, directions: int, n_out: int,
                 head_dropout: float, anchor: int = 0):
        super().__init__()
        self.directions, self.layers = directions, layers
        self.lead = nn.Parameter(0.1 * torch.randn(horizon, LEAD_WIDTH))
        self.rnn = cell(input_size=n_known + LEAD_WIDTH + context, hidden_size=hidden,
                        num_layers=layers, dropout=dropout if layers > 1 else 0.0,
                        batch_first=True)
        self.dropout = nn.Dropout(head_dropout)
        self.out = nn.Linear(hidden + n_known + anchor, n_out)

    def forward(self, state, known: torch.Tensor | None, context: torch.Tensor | None,
                anchor: torch.Tensor | None = None) -> torch.Tensor:
        rows = _rows(state)
        steps = [self.lead[None].expand(rows, -1, -1)]  # (B, H, LEAD_WIDTH)
        if known is not None:
            steps.insert(0, known)
        if context is not None:
            steps.append(context[:, None].expand(-1, self.lead.shape[0], -1))
        output, _ = self.rnn(torch.cat(steps, dim=2), self._state(state))  # (B, H, hidden)
        head = [self.dropout(output)]
        if known is not None:
            head.append(known)
        if anchor is not None:
            head.append(anchor[:, None].expand(-1, output.shape[1], -1))
        return self.out(torch.cat(head, dim=2))

    def _state(self, state):
        """The encoder's (layers*D, B, hidden) -> (layers, B, hidden)."""
        def merge(s: torch.Tensor) -> torch.Tensor:
            if self.directions == 1:
                return s.contiguous()
            return s.view(self.layers, self.directions, *s.shape[1:]).sum(dim=1)
        return tuple(merge(s) for s in state) if isinstance(state, tuple) else merge(state)


LEAD_WIDTH = 8  # the seq2seq decoder's learned embedding of each lead
