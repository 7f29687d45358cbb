"""ManualLSTM against nn.LSTM with the same weights: outputs, states, gradients, state dicts;
gate recording; as RegLSTM's cell; the gate plot."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import build_net
from matplotlib.figure import Figure
from torch import nn

from forecast.models.manual_lstm import ManualLSTM
from forecast.models.network import CELLS
from forecast.report.plots import gate_distributions

B, L, F, H = 3, 6, 5, 7
ATOL = 1e-5
CASES = list(itertools.product((False, True), (1, 2), (False, True), (True, False)))
IDS = [f"bi={bi}-layers={n}-h0={h0}-batch_first={bf}" for bi, n, h0, bf in CASES]


def _pair(bidirectional: bool, num_layers: int, batch_first: bool, **kw):
    """An nn.LSTM and a ManualLSTM holding the same (random) weights."""
    torch.manual_seed(0)
    ref = nn.LSTM(F, H, num_layers, batch_first=batch_first, bidirectional=bidirectional, **kw)
    manual = ManualLSTM(F, H, num_layers, batch_first=batch_first, bidirectional=bidirectional,
                        **kw)
    manual.load_state_dict(ref.state_dict())
    return ref, manual


def _inputs(bidirectional: bool, num_layers: int, initial: bool, batch_first: bool):
    """x (B, L, F) or (L, B, F), and hx = (h_0, c_0) each (layers*D, B, H) or None."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn((B, L, F) if batch_first else (L, B, F), generator=g)
    if not initial:
        return x, None
    shape = (num_layers * (2 if bidirectional else 1), B, H)
    return x, (torch.randn(shape, generator=g), torch.randn(shape, generator=g))


@pytest.mark.parametrize(("bidirectional", "num_layers", "initial", "batch_first"), CASES, ids=IDS)
def test_forward_equals_nn_lstm(bidirectional, num_layers, initial, batch_first):
    ref, manual = _pair(bidirectional, num_layers, batch_first)
    x, hx = _inputs(bidirectional, num_layers, initial, batch_first)
    out_ref, (h_ref, c_ref) = ref(x, hx)
    out, (h, c) = manual(x, hx)
    assert out.shape == out_ref.shape and h.shape == h_ref.shape and c.shape == c_ref.shape
    torch.testing.assert_close(out, out_ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(h, h_ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(c, c_ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize(("bidirectional", "num_layers", "initial", "batch_first"), CASES, ids=IDS)
def test_gradients_equal_nn_lstm(bidirectional, num_layers, initial, batch_first):
    ref, manual = _pair(bidirectional, num_layers, batch_first)
    x, hx = _inputs(bidirectional, num_layers, initial, batch_first)
    grads = {}
    for name, model in (("ref", ref), ("manual", manual)):
        xi = x.clone().requires_grad_(True)
        hxi = None if hx is None else tuple(s.clone().requires_grad_(True) for s in hx)
        out, (h, c) = model(xi, hxi)
        # random weights on every output so that no path's gradient can hide behind a sum
        loss = sum((t * torch.randn(t.shape, generator=torch.Generator().manual_seed(k))).sum()
                   for k, t in enumerate((out, h, c)))
        loss.backward()
        grads[name] = {"x": xi.grad, **{n: p.grad for n, p in model.named_parameters()}}
        if hxi is not None:
            grads[name] |= {"h_0": hxi[0].grad, "c_0": hxi[1].grad}
    assert grads["ref"].keys() == grads["manual"].keys()
    for key, expected in grads["ref"].items():
        torch.testing.assert_close(grads["manual"][key], expected, atol=ATOL, rtol=0,
                                   msg=lambda m, key=key: f"gradient of {key}: {m}")


@pytest.mark.parametrize(("bidirectional", "num_layers", "bias"),
                         [(False, 1, True), (True, 2, True), (True, 2, False)])
def test_state_dict_loads_both_ways(bidirectional, num_layers, bias):
    ref = nn.LSTM(F, H, num_layers, bias=bias, bidirectional=bidirectional, batch_first=True)
    manual = ManualLSTM(F, H, num_layers, bias=bias, bidirectional=bidirectional)
    expected = {k: v.shape for k, v in ref.state_dict().items()}
    assert {k: v.shape for k, v in manual.state_dict().items()} == expected
    assert list(manual.state_dict()) == list(ref.state_dict())  # same order too
    x = torch.randn(B, L, F)
    manual.load_state_dict(ref.state_dict())  # nn.LSTM -> ManualLSTM
    torch.testing.assert_close(manual(x)[0], ref(x)[0], atol=ATOL, rtol=0)
    manual.reset_parameters()
    ref.load_state_dict(manual.state_dict())  # ManualLSTM -> nn.LSTM
    torch.testing.assert_close(ref(x)[0], manual(x)[0], atol=ATOL, rtol=0)


def test_initialisation_range():
    manual = ManualLSTM(F, 16, num_layers=2, bidirectional=True)
    bound = 16**-0.5
    for name, p in manual.named_parameters():
        assert p.abs().max() <= bound, name
        assert p.std() > bound / 4, name  # filled, not left at zeros


def test_unbatched_input_equals_nn_lstm():
    ref, manual = _pair(True, 2, batch_first=True)
    x = torch.randn(L, F)  # (L, F)
    out_ref, (h_ref, _) = ref(x)
    out, (h, _) = manual(x)
    assert out.shape == (L, 2 * H) and h.shape == (4, H)
    torch.testing.assert_close(out, out_ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(h, h_ref, atol=ATOL, rtol=0)


def test_dropout_only_between_layers_in_training():
    ref, manual = _pair(False, 2, batch_first=True, dropout=0.5)
    x = torch.randn(B, L, F)
    manual.eval()
    ref.eval()
    torch.testing.assert_close(manual(x)[0], ref(x)[0], atol=ATOL, rtol=0)
    manual.train()
    torch.manual_seed(0)
    first = manual(x)[0]
    assert not torch.allclose(first, manual(x)[0])  # a fresh mask each pass
    one_layer, _ = _pair(False, 1, batch_first=True)  # no layer above: nothing to drop
    one_layer.dropout = 0.5
    torch.testing.assert_close(one_layer(x)[0], one_layer(x)[0])


def test_gate_recording_shapes_and_range():
    _, manual = _pair(True, 2, batch_first=True)
    x = torch.randn(B, L, F)
    manual(x)
    assert manual.gates == {}  # off by default: no cost, nothing kept
    manual.record_gates = True
    manual(x)
    assert set(manual.gates) == {"input", "forget", "candidate", "output"}
    for name, values in manual.gates.items():
        assert values.shape == (B, L, H), name
        assert not values.requires_grad, name
        low = -1.0 if name == "candidate" else 0.0
        assert values.min() >= low and values.max() <= 1.0, name
    # the top layer's forward direction: its output gate times tanh(c) is the output's first half
    out, _ = manual(x)
    forward_half = out[..., :H]
    assert (forward_half.abs() <= manual.gates["output"] + 1e-6).all()
    # a new pass replaces the record
    manual(torch.randn(B + 2, L + 1, F))
    assert manual.gates["forget"].shape == (B + 2, L + 1, H)


def test_registered_as_cell():
    assert CELLS["manual_lstm"] is ManualLSTM


@pytest.mark.parametrize(("bidirectional", "num_layers"), [(False, 1), (True, 2)])
def test_reg_lstm_with_manual_cell_forward(bidirectional, num_layers):
    model = build_net(n_features=5, horizon=3, n_targets=1, cell="manual_lstm",
                    bidirectional=bidirectional, num_layers=num_layers, dropout=0.1)
    assert isinstance(model.rnn, ManualLSTM)
    assert model(torch.randn(4, 10, 5)).shape == (4, 3, 1)


def test_reg_lstm_with_manual_cell_trains():
    torch.manual_seed(0)
    # toy problem: continue noisy sine waves of random phase
    t = torch.arange(13, dtype=torch.float32)
    phase = torch.rand(64, 1) * 6.28
    series = torch.sin(0.5 * t + phase) + 0.05 * torch.randn(64, 13)  # (B, 13)
    x, y = series[:, :10, None], series[:, 10:, None]  # (B, 10, 1), (B, 3, 1)
    model = build_net(n_features=1, horizon=3, n_targets=1, hidden_size=16, cell="manual_lstm")
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimiser.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_gate_distributions_figure():
    _, manual = _pair(False, 1, batch_first=True)
    manual.record_gates = True
    manual(torch.randn(B, L, F))
    fig = gate_distributions({k: v.numpy() for k, v in manual.gates.items()})
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    assert [ax.get_title().split()[0] for ax in fig.axes] == ["forget", "input", "output"]
    with pytest.raises(ValueError, match="record_gates"):
        gate_distributions({})
