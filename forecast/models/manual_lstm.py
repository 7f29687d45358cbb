"""ManualLSTM: the LSTM written from its gate equations, a drop-in for `nn.LSTM` whose gates can
be recorded (the `model.cell=manual_lstm` option and `plots/gates.png`).
"""

from __future__ import annotations

import torch
from torch import nn


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
