"""RegLSTM: recurrent layers that read the whole lookback, then a head to every lead.

One forward pass maps x (B, L, F_in) to y_hat (B, H, n_targets) from recurrent states that have
read all L input steps; nothing after the forecast origin is ever an input.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

# "manual_lstm" is added at the end of the file, once ManualLSTM is defined
CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
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
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        cell: str = "lstm",
        head: str = "last",
        decoder: str = "direct",
        embedding_dim: int = 0,
        n_series: int = 0,
        instance_norm: bool = False,
        quantiles: list[float] | None = None,
        linear_skip: bool = False,
        residual: bool = False,  # False: checkpoints saved before the option load unchanged
        lookback: int | None = None,
        target_positions: list[int] | None = None,
        norm_features: int | None = None,
    ):
        super().__init__()
        check_options(cell, head, decoder, bidirectional, num_layers, dropout, quantiles,
                      linear_skip, embedding_dim, n_series, instance_norm, lookback)
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
        y = self.out(self._pool(output, state))  # (B, H*n_targets*Q)
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


def check_options(cell, head, decoder, bidirectional, num_layers, dropout, quantiles,
                  linear_skip, embedding_dim, n_series, instance_norm=False, lookback=None) -> None:
    """Refuse combinations that cannot work, at start-up, with the option names and the fix."""
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
    if embedding_dim and n_series < 1:
        raise ValueError("model.embedding_dim > 0 needs the number of series")
    if dropout and num_layers == 1:
        log.warning("model.dropout=%s has no effect with model.num_layers=1: dropout acts "
                    "between stacked recurrent layers", dropout)


class ManualLSTM(nn.Module):
    """LSTM written out from the gate equations, a drop-in for `nn.LSTM` that exposes its gates.

    For every layer and direction, with sigma the logistic function and * elementwise:
        i_t = sigma(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)      input gate
        f_t = sigma(W_if x_t + b_if + W_hf h_{t-1} + b_hf)      forget gate
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)       candidate cell
        o_t = sigma(W_io x_t + b_io + W_ho h_{t-1} + b_ho)      output gate
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(c_t)
    Parameters carry the names, shapes and gate order (i, f, g, o) of `nn.LSTM`, e.g.
    `weight_ih_l0` (4H, F), `weight_hh_l0` (4H, H), `bias_ih_l0` / `bias_hh_l0` (4H,), suffix
    `_reverse` for the backward direction, and layers above the first read D*H inputs; so state
    dicts load both ways. `proj_size` and packed sequences are not supported.

    With `record_gates = True`, each forward stores in `self.gates` the activations of the top
    layer's forward direction, detached: {"input", "forget", "candidate", "output"}, each (B, L, H)
    ((1, L, H) for unbatched input).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ):
        super().__init__()
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout={dropout} must be in [0, 1]")
        if hidden_size < 1 or num_layers < 1:
            raise ValueError(f"hidden_size={hidden_size} and num_layers={num_layers} must be >= 1")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        self.directions = 2 if bidirectional else 1
        self.record_gates = False
        self.gates: dict[str, torch.Tensor] = {}
        # registered on the module itself (not in sub-modules) so the keys are nn.LSTM's, in the
        # same order: per layer, per direction, w_ih, w_hh, b_ih, b_hh
        self._names: list[list[tuple[str, ...]]] = []
        for layer in range(num_layers):
            width = input_size if layer == 0 else self.directions * hidden_size
            names = []
            for direction in range(self.directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = {f"weight_ih{sfx}": (4 * hidden_size, width),
                          f"weight_hh{sfx}": (4 * hidden_size, hidden_size)}
                if bias:
                    shapes |= {f"bias_ih{sfx}": (4 * hidden_size,),
                               f"bias_hh{sfx}": (4 * hidden_size,)}
                for name, shape in shapes.items():
                    self.register_parameter(name, nn.Parameter(torch.empty(shape)))
                names.append(tuple(shapes))
            self._names.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every weight and bias, as `nn.LSTM` does."""
        bound = self.hidden_size**-0.5
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bias={self.bias}, batch_first={self.batch_first}, dropout={self.dropout}, "
                f"bidirectional={self.bidirectional}")

    def forward(
        self, x: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, L, F) if batch_first else (L, B, F), or unbatched (L, F); hx = (h_0, c_0), each
        (num_layers*D, B, H) ((num_layers*D, H) unbatched), zeros when None.

        Returns output (B, L, D*H) (time-major if not batch_first) of the top layer, forward and
        backward halves concatenated, and (h_n, c_n) each (num_layers*D, B, H), as `nn.LSTM`.
        """
        batched = x.dim() == 3
        if not batched:
            if x.dim() != 2:
                raise ValueError(f"ManualLSTM expects x of 2 or 3 dims, got shape {tuple(x.shape)}")
            x = x.unsqueeze(1)  # (L, 1, F)
            hx = None if hx is None else (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
        elif self.batch_first:
            x = x.transpose(0, 1)  # (L, B, F): time-major so each step is one contiguous slice
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x has {x.shape[-1]} features; ManualLSTM expects {self.input_size}")
        n_states = self.num_layers * self.directions
        shape = (n_states, x.shape[1], self.hidden_size)
        if hx is None:
            h_0 = c_0 = x.new_zeros(shape)
        else:
            h_0, c_0 = hx
            if tuple(h_0.shape) != shape or tuple(c_0.shape) != shape:
                raise ValueError(f"h_0 {tuple(h_0.shape)} and c_0 {tuple(c_0.shape)} must both "
                                 f"be (num_layers*D, B, H) = {shape}")
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:
                x = nn.functional.dropout(x, self.dropout, training=True)
            states = slice(layer * self.directions, (layer + 1) * self.directions)
            record = self.record_gates and layer == self.num_layers - 1
            x, h, c = self._layer(x, layer, h_0[states], c_0[states], record)
            h_n.append(h)
            c_n.append(c)
        output = x  # (L, B, D*H)
        h_n, c_n = torch.cat(h_n), torch.cat(c_n)  # (num_layers*D, B, H)
        if not batched:
            return output.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
        if self.batch_first:
            output = output.transpose(0, 1)
        return output, (h_n, c_n)

    def _layer(
        self, x: torch.Tensor, layer: int, h: torch.Tensor, c: torch.Tensor, record: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One layer, both directions stepped together: x (L, B, F_l), h and c (D, B, H) ->
        output (L, B, D*H), h_n and c_n (D, B, H)."""
        hidden = self.hidden_size
        projections, recurrent = [], []
        for direction, names in enumerate(self._names[layer]):
            w_ih, w_hh, *biases = (getattr(self, name) for name in names)
            bias = biases[0] + biases[1] if biases else None
            # the input part of every gate does not depend on h: one matmul for all L steps
            xp = nn.functional.linear(x, w_ih, bias)  # (L, B, 4H)
            projections.append(xp.flip(0) if direction else xp)
            recurrent.append(w_hh.t())  # (H, 4H)
        xp = torch.stack(projections, dim=1)  # (L, D, B, 4H)
        w_hh = torch.stack(recurrent)  # (D, H, 4H)
        steps, records = [], []
        # unbind, not xp[t]: the backward of L separate index ops would scatter each step's
        # gradient into its own zeroed (L, D, B, 4H) buffer and sum them, O(L^2) work
        for xp_t in xp.unbind(0):
            z = torch.baddbmm(xp_t, h, w_hh)  # (D, B, 4H)
            i, f, g, o = z.split(hidden, dim=-1)  # each (D, B, H)
            i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
            c = torch.addcmul(f * c, i, g)
            h = o * c.tanh()
            steps.append(h)
            if record:
                records.append(torch.stack([i[0], f[0], g[0], o[0]]).detach())  # (4, B, H)
        hs = torch.stack(steps)  # (L, D, B, H)
        halves = [hs[:, 0]] + ([hs[:, 1].flip(0)] if self.directions == 2 else [])
        if record:
            gates = torch.stack(records, dim=2)  # (4, B, L, H)
            self.gates = dict(zip(("input", "forget", "candidate", "output"), gates, strict=True))
        return torch.cat(halves, dim=-1), h, c


CELLS["manual_lstm"] = ManualLSTM
