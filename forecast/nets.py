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
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"model.cell='{cell}' is unknown; choose one of {sorted(CELLS)}")
        if head not in HEADS:
            raise ValueError(f"model.head='{head}' is unknown; choose one of {list(HEADS)}")
        self.horizon, self.n_targets, self.head = horizon, n_targets, head
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, F_in) -> y_hat (B, H, n_targets)."""
        summary = self.encode(x)  # (B, D*hidden)
        return self.out(summary).view(-1, self.horizon, self.n_targets)
