"""RegLSTM: recurrent layers that read the whole lookback, then a linear head to every lead.

Direct multi-horizon forecasting: one forward pass maps x (B, L, F_in) to y_hat (B, H, n_targets)
from a summary of the recurrent states that have read all L input steps.
"""

from __future__ import annotations

import torch
from torch import nn

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
HEADS = ("last", "mean", "max", "attention")


class RegLSTM(nn.Module):
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
        instance_norm: bool = False,
        target_positions: list[int] | None = None,
        norm_features: int | None = None,
        linear_skip: bool = False,
        lookback: int | None = None,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"model.cell='{cell}' is unknown; choose one of {sorted(CELLS)}")
        if head not in HEADS:
            raise ValueError(f"model.head='{head}' is unknown; choose one of {list(HEADS)}")
        self.horizon, self.n_targets, self.head = horizon, n_targets, head
        self.instance_norm = instance_norm
        # which input columns hold the targets, and how many leading columns are data features
        # (calendar and mask columns after them are left as they are)
        self.target_positions = list(target_positions or range(n_targets))
        self.norm_features = norm_features or n_features
        self.rnn = CELLS[cell](
            input_size=n_features,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
            batch_first=True,
        )
        self.directions = 2 if bidirectional else 1
        width = self.directions * hidden_size
        self.attention = nn.Linear(width, 1) if head == "attention" else None
        self.out = nn.Linear(width, horizon * n_targets)
        # LSTNet-style highway: a linear map of the whole window added to the recurrent forecast
        self.skip = None
        if linear_skip:
            if not lookback:
                raise ValueError("model.linear_skip needs the lookback")
            self.skip = nn.Linear(lookback * n_features, horizon * n_targets)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, F_in) -> summary (B, D*hidden) of the states that have read the lookback."""
        output, state = self.rnn(x)  # output (B, L, D*hidden)
        if self.head == "last":
            h_n = state[0] if isinstance(state, tuple) else state  # (layers*D, B, hidden)
            # both directions of the top layer: the forward one has read every step, and so has
            # the backward one (unlike output[:, -1], whose backward half has seen one step)
            top = h_n[-self.directions :]  # (D, B, hidden)
            return top.transpose(0, 1).reshape(x.shape[0], -1)
        if self.head == "mean":
            return output.mean(dim=1)
        if self.head == "max":
            return output.amax(dim=1)
        weights = torch.softmax(self.attention(output), dim=1)  # (B, L, 1)
        return (weights * output).sum(dim=1)

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        y = self.out(self.encode(x))  # (B, H*n_targets)
        if self.skip is not None:
            y = y + self.skip(x.flatten(1))
        return y.view(-1, self.horizon, self.n_targets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, F_in) -> y_hat (B, H, n_targets)."""
        if not self.instance_norm:
            return self._predict(x)
        k = self.norm_features
        loc = x[:, :, :k].mean(dim=1, keepdim=True)  # (B, 1, k)
        scale = x[:, :, :k].std(dim=1, keepdim=True) + 1e-3  # (B, 1, k)
        x = torch.cat([(x[:, :, :k] - loc) / scale, x[:, :, k:]], dim=2)
        y = self._predict(x)  # (B, H, n_targets)
        t = self.target_positions
        return y * scale[:, :, t] + loc[:, :, t]
