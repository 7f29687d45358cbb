"""RegLSTM and Forecaster on small synthetic data: shapes of every option, the refusals,
causality of every configuration through the real data path, the Bi-LSTM `last` head, training
through Lightning, quantiles and instance normalisation."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from conftest import build_module, build_net, inputs_of, net_kwargs, weather_frame
from torch import nn

from forecast.config import DECODERS, HEADS
from forecast.data.inputs import ModelInputs
from forecast.data.panel import to_panel
from forecast.data.prepared import datamodule, prepare, to_units
from forecast.models.forecaster import Forecaster, pinball
from forecast.models.inference import forecast
from forecast.models.layers import pool
from forecast.models.network import CELLS, RegLSTM

B, L, F, H, NT, N = 5, 7, 4, 3, 2, 3  # batch, lookback, inputs, horizon, targets, series
NORM = 2  # leading data-feature columns; the other F - NORM columns play calendar inputs
Q = [0.1, 0.5, 0.9]
ALL_CELLS = ("lstm", "gru", "rnn", "manual_lstm")

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:.*does not have many workers"),
    pytest.mark.filterwarnings("ignore:.*`self.log\\(\\)` but the `self.trainer`"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec"),
]


def _net(**options) -> RegLSTM:
    torch.manual_seed(0)
    # residual off unless asked for: these tests read the head's own output
    kw = dict(n_features=F, horizon=H, n_targets=NT, hidden_size=4, lookback=L, n_series=N,
              target_positions=[1, 0], norm_features=NORM, residual=False)
    return build_net(**(kw | options)).eval()


def _x(batch: int = B) -> torch.Tensor:
    return torch.randn(batch, L, F, generator=torch.Generator().manual_seed(1))  # (B, L, F)


def _ids(batch: int = B) -> torch.Tensor:
    return torch.arange(batch) % N  # (B,)


# --------------------------------------------------------------------------------------- shapes


def test_every_cell_is_registered():
    assert set(CELLS) == set(ALL_CELLS)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("head", HEADS)
def test_shape_every_head_and_decoder(head, decoder):
    if decoder in ("parallel", "seq2seq") and head != "last":
        pytest.skip(f"the {decoder} decoder starts from the final state (refusal tested)")
    net = _net(head=head, decoder=decoder, segment=L if decoder == "parallel" else 0)
    y = net(_x())
    assert y.shape == (B, H, NT)
    assert torch.isfinite(y).all()
    built = {"direct": net.out, "autoregressive": net.step_out, "parallel": net.parallel,
             "seq2seq": net.sequence}
    assert [d for d, part in built.items() if part is not None] == [decoder]


def _summary(net: RegLSTM, output: torch.Tensor, state) -> torch.Tensor:
    """What the net's direct head reads of its recurrent outputs (B, D*hidden)."""
    return pool(net.head, output, state, net.directions, net.attention)

def test_heads_pool_differently():
    """The head option is wired: the four heads give four different forecasts from the same
    weights of the recurrent layers and the output layer."""
    x = _x()
    reference = _net(head="attention").state_dict()
    outputs = []
    for head in HEADS:
        net = _net(head=head)
        net.load_state_dict(reference, strict=False)  # only attention.* is extra
        outputs.append(net(x))
    for i in range(len(HEADS)):
        for j in range(i + 1, len(HEADS)):
            assert not torch.allclose(outputs[i], outputs[j]), (HEADS[i], HEADS[j])


@pytest.mark.parametrize("head", HEADS)
def test_quantile_shape_and_order(head):
    net = _net(head=head, quantiles=Q)
    y = net(_x(16))
    assert y.shape == (16, H, NT, len(Q))
    # sorted along Q even untrained (raw outputs of a random head cross in about half the cases)
    assert (y[..., :-1] <= y[..., 1:]).all()
    raw = net.out(_summary(net, *net.rnn(_x(16)))).view(16, H, NT, len(Q))
    assert not (raw[..., :-1] <= raw[..., 1:]).all()  # so the order above is the model's doing


def test_embedding_needs_and_uses_series_ids():
    net = _net(embedding_dim=3)
    assert net.embedding.num_embeddings == N and net.embedding.embedding_dim == 3
    assert net.rnn.input_size == F + 3
    x = _x()
    y = net(x, _ids())
    assert y.shape == (B, H, NT)
    with pytest.raises(ValueError, match="series ids"):
        net(x)
    # the same window read as another series gives another forecast
    assert not torch.allclose(net(x, torch.zeros(B, dtype=torch.long)),
                              net(x, torch.ones(B, dtype=torch.long)))
    with pytest.raises(ValueError, match="number of series"):
        _net(embedding_dim=3, n_series=0)


@pytest.mark.parametrize("decoder", DECODERS)
def test_embedding_with_each_decoder(decoder):
    net = _net(embedding_dim=2, decoder=decoder, segment=L if decoder == "parallel" else 0)
    assert net(_x(), _ids()).shape == (B, H, NT)


@pytest.mark.parametrize("options", [{}, {"quantiles": Q}, {"decoder": "autoregressive"},
                                     {"linear_skip": True}], ids=["direct", "q", "ar", "skip"])
def test_instance_norm_shape(options):
    y = _net(window_norm="standard", **options)(_x())
    assert y.shape == ((B, H, NT, len(Q)) if "quantiles" in options else (B, H, NT))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("quantiles", [None, Q])
def test_linear_skip_shape_and_effect(quantiles):
    net = _net(linear_skip=True, quantiles=quantiles)
    assert net.skip.in_features == L * F and net.skip.out_features == H * NT
    x = _x()
    y = net(x)
    assert y.shape == ((B, H, NT, len(Q)) if quantiles else (B, H, NT))
    # the highway is added to the recurrent forecast: silencing it changes the output
    with torch.no_grad():
        net.skip.weight.zero_()
        net.skip.bias.zero_()
    assert not torch.allclose(net(x), y)


@pytest.mark.parametrize("options", [{}, {"quantiles": Q}, {"window_norm": "standard"}],
                         ids=["direct", "q", "instance_norm"])
def test_residual_forecasts_changes_from_the_last_value(options):
    """With the head silenced, a residual net repeats each target's last input value at every
    lead (and quantile); without `residual` it forecasts zero (the window's mean under
    instance_norm)."""
    x = _x()
    last = x[:, -1, [1, 0]][:, None, :].expand(B, H, NT)  # targets are input columns 1 and 0
    standard = options.get("window_norm") == "standard"
    zero = x[:, :, [1, 0]].mean(1, keepdim=True) if standard else 0 * last
    for residual in (True, False):
        net = _net(residual=residual, **options)
        with torch.no_grad():
            net.out.weight.zero_()
            net.out.bias.zero_()
            y = net(x)
        expected = (last if residual else zero).expand(B, H, NT)
        if "quantiles" in options:
            expected = expected[..., None].expand(B, H, NT, len(Q))
        torch.testing.assert_close(y, expected, rtol=0, atol=1e-5)


def test_residual_autoregressive_steps_from_the_last_step():
    """Silenced step head + residual: the rollout carries the last input step forward."""
    x = _x()
    net = _net(decoder="autoregressive", residual=True)
    with torch.no_grad():
        net.step_out.weight.zero_()
        net.step_out.bias.zero_()
        y = net(x)
    torch.testing.assert_close(y, x[:, -1, [1, 0]][:, None, :].expand(B, H, NT))


@pytest.mark.parametrize("cell", ALL_CELLS)
@pytest.mark.parametrize(("bidirectional", "num_layers"), [(False, 1), (True, 2), (False, 3)])
def test_shape_every_cell_bidirectional_multilayer(cell, bidirectional, num_layers):
    net = _net(cell=cell, bidirectional=bidirectional, num_layers=num_layers, dropout=0.2)
    assert isinstance(net.rnn, CELLS[cell])
    assert net.rnn.num_layers == num_layers and net.rnn.bidirectional == bidirectional
    assert net.directions == (2 if bidirectional else 1)
    assert net.out.in_features == net.directions * 4
    assert net(_x()).shape == (B, H, NT)
    net.train()  # dropout between layers must not break shapes either
    assert net(_x()).shape == (B, H, NT)


# ------------------------------------------------------------------------------------- refusals


def test_autoregressive_bidirectional_is_refused():
    with pytest.raises(ValueError) as info:
        _net(decoder="autoregressive", bidirectional=True)
    message = str(info.value)
    assert "model.decoder" in message and "autoregressive" in message
    assert "model.bidirectional" in message
    # each option alone is fine
    _net(decoder="autoregressive")
    _net(bidirectional=True)


@pytest.mark.parametrize(("option", "value"), [("cell", "lstmm"), ("head", "avg"),
                                               ("decoder", "transformer"),
                                               ("backbone", "lasso")])
def test_unknown_option_is_refused(option, value):
    with pytest.raises(ValueError, match=f"model.{option}='{value}' is unknown"):
        _net(**{option: value})


@pytest.mark.parametrize("quantiles", [[0.1, 0.9], [0.25, 0.75], [0.5, 1.2], [0.0, 0.5]])
def test_bad_quantiles_are_refused(quantiles):
    with pytest.raises(ValueError, match=r"model\.quantiles=.*0\.5"):
        _net(quantiles=quantiles)


@pytest.mark.parametrize("option", [{"quantiles": Q}, {"linear_skip": True}])
def test_autoregressive_refuses_quantiles_and_skip(option):
    with pytest.raises(ValueError, match="model.decoder=autoregressive"):
        _net(decoder="autoregressive", **option)


def test_dropout_with_one_layer_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="forecast.models.options"):
        _net(dropout=0.3, num_layers=1)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert "model.dropout" in warned[0].getMessage()
    assert "num_layers=1" in warned[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="forecast.models.options"):
        _net(dropout=0.3, num_layers=2)
        _net(dropout=0.0, num_layers=1)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


# ------------------------------------------------------------------------------------ causality

CL, CH = 24, 6  # lookback and horizon of the causality tests (panel fixture: 300 steps)
CAUSAL = {
    "lstm": {},
    "gru": {"cell": "gru"},
    "rnn": {"cell": "rnn"},
    "manual_lstm": {"cell": "manual_lstm"},
    "head-mean": {"head": "mean"},
    "head-max": {"head": "max"},
    "head-attention": {"head": "attention"},
    "bilstm-2layers": {"bidirectional": True, "num_layers": 2},
    "bigru-mean": {"cell": "gru", "bidirectional": True, "head": "mean"},
    "bi-manual_lstm-attention": {"cell": "manual_lstm", "bidirectional": True,
                                 "head": "attention"},
    "autoregressive": {"decoder": "autoregressive"},
    "autoregressive-gru-2layers": {"decoder": "autoregressive", "cell": "gru", "num_layers": 2},
    "embedding": {"embedding_dim": 3},
    "instance_norm": {"window_norm": "standard"},
    "quantiles": {"quantiles": Q},
    "linear_skip": {"linear_skip": True},
    "residual": {"residual": True},
    "residual-autoregressive": {"decoder": "autoregressive", "residual": True},
    "everything-direct": {"bidirectional": True, "num_layers": 2, "head": "attention",
                          "embedding_dim": 2, "window_norm": "standard", "quantiles": Q,
                          "linear_skip": True, "residual": True},
    "everything-autoregressive": {"decoder": "autoregressive", "embedding_dim": 2,
                                  "window_norm": "standard", "residual": True},
    "window_norm-last": {"window_norm": "last"},
    "window_norm-revin": {"window_norm": "revin", "quantiles": Q},
    "segment": {"segment": 6},
    "channels-direct": {"channel_independent": True, "channel_embedding": 2, "head": "mean"},
    "channels-autoregressive": {"channel_independent": True, "decoder": "autoregressive",
                                "window_norm": "last"},
    **{f"segrnn-{cell}": {"cell": cell, "segment": 6, "decoder": "parallel",
                          "channel_independent": True, "channel_embedding": 2,
                          "window_norm": "last"} for cell in ALL_CELLS},
    "segrnn-bi-2layers-revin": {"cell": "manual_lstm", "bidirectional": True, "num_layers": 2,
                                "segment": 8, "decoder": "parallel", "window_norm": "revin",
                                "embedding_dim": 2, "quantiles": Q, "residual": True},
}


def _prep(panel):
    return prepare(panel, CL, CH, ["a"], calendar=("hour",))


def _module(prep, options: dict) -> Forecaster:
    torch.manual_seed(0)
    return build_module(net_kwargs(prep, {"hidden_size": 4, **options})).eval()


def _test_forecasts(module: Forecaster, prep) -> torch.Tensor:
    """Forecasts (K, H, n_targets[, Q]) of every test window, read through the data module."""
    ds = datamodule(prep).dataset("test")
    with torch.no_grad():
        return module.predict_step(ds[list(range(len(ds)))], 0)


def _with_inputs(prep, inputs: np.ndarray):
    """prep with the whole (N, T, F_in) input array replaced."""
    # every column in the per-series part, no calendar table
    whole = ModelInputs(inputs, np.zeros((inputs.shape[1], 0), np.float32), prep.input_names)
    return dataclasses.replace(prep, model_inputs=whole)


def _perturb_panel_after(long_df: pd.DataFrame, time) -> pd.DataFrame:
    """Every value after `time` changed; some of the non-target `b` blanked."""
    df = long_df.copy()
    later = (df["time"] > time).to_numpy()
    noise = np.random.default_rng(0).normal(size=(int(later.sum()), 2))
    df.loc[later, ["a", "b"]] = df.loc[later, ["a", "b"]].to_numpy() * 3.0 + 500.0 + noise
    df.loc[later & (np.arange(len(df)) % 5 == 0), "b"] = np.nan
    return df


@pytest.mark.parametrize("options", list(CAUSAL.values()), ids=list(CAUSAL))
def test_forecast_reads_nothing_after_its_origin(long_df, panel, options):
    prep = _prep(panel)
    module = _module(prep, options)
    index = prep.indices["test"]
    k = len(index) // 2
    n, s = index[k]
    o = s + CL - 1  # forecast origin: the last input step
    assert o >= prep.bounds["train"][1]  # so changes after o cannot move the scaler
    before_or_at = torch.as_tensor(index[:, 1] + CL - 1 <= o)  # windows that end by o
    base = _test_forecasts(module, prep)

    # 1) every model input after o (all series, all columns, calendar included)
    inputs = inputs_of(prep).copy()
    rng = np.random.default_rng(1)
    inputs[:, o + 1:] = rng.normal(5.0, 10.0, size=inputs[:, o + 1:].shape)
    changed = _test_forecasts(module, _with_inputs(prep, inputs))
    assert torch.equal(changed[k], base[k])
    assert torch.equal(changed[before_or_at], base[before_or_at])
    assert not torch.equal(changed[~before_or_at], base[~before_or_at])  # the change arrived

    # 2) every raw value after o, then the whole preparation again
    other = _prep(to_panel(_perturb_panel_after(long_df, panel.times[o]), "h"))
    np.testing.assert_array_equal(other.indices["test"], index)
    np.testing.assert_array_equal(other.scaler.mean, prep.scaler.mean)
    assert not np.allclose(inputs_of(other)[:, o + 1:], inputs_of(prep)[:, o + 1:])
    changed = _test_forecasts(module, other)
    assert torch.equal(changed[k], base[k])
    assert torch.equal(changed[before_or_at], base[before_or_at])

    # 3) the origin itself does move the forecast (so the checks above can fail) ...
    inputs = inputs_of(prep).copy()
    inputs[n, o, :NORM] += 3.0
    changed = _test_forecasts(module, _with_inputs(prep, inputs))
    assert not torch.equal(changed[k], base[k])
    assert torch.equal(changed[before_or_at & ~_is(index, n, s)],
                       base[before_or_at & ~_is(index, n, s)])
    # ... and every step of the lookback reaches it: non-zero gradients from s to o (a gradient
    # rather than a perturbation, which fades below float precision through 24 steps of a tiny RNN)
    x, _, series = datamodule(prep).dataset("test")[[k]]
    x.requires_grad_(True)
    module(x, series).sum().backward()
    per_step = x.grad.abs().sum(dim=(0, 2))  # (L,)
    assert (per_step > 0).all(), per_step


def _is(index: np.ndarray, n: int, s: int) -> torch.Tensor:
    return torch.as_tensor((index[:, 0] == n) & (index[:, 1] == s))


def test_pipeline_forecast_matches_window_forward(panel):
    """The Trainer's predict path (inference.forecast) gives what the direct forward above gives,
    so the causality checks hold for what a run writes."""
    prep = _prep(panel)
    module = _module(prep, {"embedding_dim": 2, "quantiles": Q})
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    out = forecast(trainer, module, datamodule(prep, batch_size=32))
    assert out.shape == (len(prep.indices["test"]), CH, 1, len(Q))
    np.testing.assert_allclose(out, _test_forecasts(module, prep).numpy(), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- bi-LSTM last head


@pytest.mark.parametrize("cell", ALL_CELLS)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_bidirectional_last_head_reads_h_n_of_both_directions(cell, num_layers):
    hidden = 5
    net = _net(cell=cell, bidirectional=True, num_layers=num_layers, hidden_size=hidden)
    x = _x()
    with torch.no_grad():
        output, state = net.rnn(x)  # (B, L, 2*hidden)
        summary = _summary(net, output, state)  # (B, 2*hidden)
        expected = torch.cat([output[:, -1, :hidden], output[:, 0, hidden:]], dim=1)
        torch.testing.assert_close(summary, expected, rtol=0, atol=1e-6)
        # not the tempting output[:, -1], whose backward half has read one step only
        assert not torch.allclose(summary, output[:, -1])
        # and the forward pass uses exactly this summary
        torch.testing.assert_close(net(x), net.out(expected).view(B, H, NT), rtol=0, atol=1e-6)
        # the backward half has read the first step of the window
        moved = x.clone()
        moved[:, 0] += 1.0
        other = _summary(net, *net.rnn(moved))
        assert not torch.allclose(other[:, hidden:], summary[:, hidden:])


def test_bidirectional_last_head_against_nn_lstm():
    """Against a separately built nn.LSTM with the same weights."""
    hidden = 6
    net = _net(bidirectional=True, num_layers=2, hidden_size=hidden)
    ref = nn.LSTM(F, hidden, num_layers=2, bidirectional=True, batch_first=True)
    ref.load_state_dict(net.rnn.state_dict())
    x = _x()
    with torch.no_grad():
        output, _ = ref(x)
        summary = torch.cat([output[:, -1, :hidden], output[:, 0, hidden:]], dim=1)
        torch.testing.assert_close(net(x), net.out(summary).view(B, H, NT), rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------- training


NOISE = 0.3


@pytest.fixture(scope="module")
def sine_prep():
    """Two hourly daily cycles of different phase + Gaussian noise: stationary and easy."""
    df = weather_frame(2, 600, ("y",), start="2021-01-01", noise=NOISE)
    return prepare(to_panel(df, "h"), 24, 6, ["y"], calendar=("hour",))


def _trainer(epochs: int, batches: int) -> pl.Trainer:
    return pl.Trainer(max_epochs=epochs, limit_train_batches=batches, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")


def _val_loss(trainer: pl.Trainer, module, dm) -> float:
    return trainer.validate(module, datamodule=dm, verbose=False)[0]["val/loss"]


SEGRNN = {"segment": 6, "decoder": "parallel", "channel_independent": True,
          "channel_embedding": 4, "window_norm": "last"}


@pytest.mark.parametrize("options", [{"cell": c} for c in ALL_CELLS]
                         + [{"decoder": "autoregressive"}]
                         + [{**SEGRNN, "cell": c} for c in ("gru", "lstm", "manual_lstm")],
                         ids=[*ALL_CELLS, "autoregressive", "segrnn-gru", "segrnn-lstm",
                              "segrnn-manual_lstm"])
def test_training_lowers_validation_loss(sine_prep, options):
    torch.manual_seed(0)
    dm = datamodule(sine_prep, batch_size=64)
    module = build_module(net_kwargs(sine_prep, {"hidden_size": 8, **options}), lr=1e-2)
    trainer = _trainer(epochs=4, batches=10)
    before = _val_loss(trainer, module, dm)
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 40
    logged = dict(trainer.callback_metrics)
    assert "train/loss_epoch" in logged
    if options.get("decoder") == "autoregressive":
        assert "train/next_step_loss" in logged
        assert torch.isfinite(logged["train/next_step_loss"])
        assert module.net.aux_loss is not None
    else:
        assert "train/next_step_loss" not in logged
        assert module.net.aux_loss is None
    after = _val_loss(trainer, module, dm)
    assert after < 0.6 * before, (before, after)


def test_autoregressive_aux_loss_is_the_next_step_loss_in_training_only():
    net = _net(decoder="autoregressive", num_layers=2)
    x = _x()
    net(x)
    assert net.aux_loss is None  # eval: nothing set
    net.train()
    net(x)
    output, _ = net.rnn(x)
    expected = nn.functional.mse_loss(net.step_out(output)[:, :-1], x[:, 1:])
    torch.testing.assert_close(net.aux_loss, expected)
    assert net.aux_loss.requires_grad
    direct = _net().train()
    direct(x)
    assert direct.aux_loss is None


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_autoregressive_rollout_feeds_its_predictions_back(cell):
    """Step o's output predicts step o+1 of every input; that prediction is the next input, H
    times, carrying the recurrent state; the targets' columns are the forecast."""
    net = _net(decoder="autoregressive", cell=cell, num_layers=2, embedding_dim=2)
    x, ids = _x(), _ids()
    e = net.embedding(ids)[:, None, :]  # (B, 1, 2)
    with torch.no_grad():
        output, state = net.rnn(torch.cat([x, e.expand(-1, L, -1)], dim=2))
        steps = [net.step_out(output[:, -1])]  # (B, F): step o+1
        for _ in range(H - 1):
            out, state = net.rnn(torch.cat([steps[-1][:, None], e], dim=2), state)
            steps.append(net.step_out(out[:, -1]))
        expected = torch.stack(steps, dim=1)[:, :, [1, 0]]  # (B, H, NT): target_positions
        torch.testing.assert_close(net(x, ids), expected, rtol=0, atol=1e-6)


def test_training_step_adds_the_aux_loss():
    torch.manual_seed(0)
    module = build_module({"n_features": F, "horizon": H, "n_targets": 1, "hidden_size": 4,
                         "decoder": "autoregressive"}, loss="mse").train()
    x, y = _x(), torch.randn(B, H, 1)
    loss = module.training_step((x, y, _ids()), 0)
    aux = module.net.aux_loss
    forecast_loss = nn.functional.mse_loss(module(x), y)
    torch.testing.assert_close(loss, forecast_loss + aux)
    assert aux > 0 and loss > forecast_loss


# ---------------------------------------------------------------------------------------- losses


def test_point_losses_by_hand():
    y = torch.tensor([1.0, -2.0, 0.0, 3.0]).view(4, 1, 1)  # (B, H, n_targets)
    y_hat = torch.tensor([0.0, 0.0, 0.5, 0.0]).view(4, 1, 1)  # errors 1, -2, -0.5, 3
    net = {"n_features": F, "horizon": 1, "n_targets": 1}
    expected = {"mse": (1 + 4 + 0.25 + 9) / 4, "mae": (1 + 2 + 0.5 + 3) / 4,
                # quadratic (e^2 / 2) within 1, linear (|e| - 1/2) beyond
                "huber": (0.5 + 1.5 + 0.125 + 2.5) / 4}
    for loss, value in expected.items():
        assert build_module(net, loss=loss).loss(y_hat, y).item() == pytest.approx(value)
    with pytest.raises(ValueError, match="model.loss='l3'.*mse"):
        build_module(net, loss="l3")


def test_training_options_reach_the_optimiser_and_the_checkpoint():
    net = {"n_features": F, "horizon": 1, "n_targets": 1}
    module = build_module(net, lr=0.01, weight_decay=0.5, loss="mae")
    assert (module.hparams.lr, module.hparams.weight_decay, module.hparams.loss) == (0.01, 0.5,
                                                                                    "mae")
    optimiser = module.configure_optimizers()["optimizer"]
    assert optimiser.defaults["lr"] == 0.01 and optimiser.defaults["weight_decay"] == 0.5


# ------------------------------------------------------------------------------------ quantiles


def test_pinball_by_hand():
    y = torch.tensor([1.0, -2.0]).view(2, 1, 1)  # (B, H, n_targets)
    y_hat = torch.tensor([[0.0, 1.5, 3.0], [-2.0, -2.5, 0.0]]).view(2, 1, 1, 3)  # (B, H, nt, Q)
    # errors y - y_hat: [1, -0.5, -2] and [0, 0.5, -2]
    # losses q*e if e >= 0 else (q-1)*e: [0.1, 0.25, 0.2] and [0, 0.25, 0.2]
    expected = (0.1 + 0.25 + 0.2 + 0.0 + 0.25 + 0.2) / 6
    assert pinball(y, y_hat, Q).item() == pytest.approx(expected, abs=1e-7)
    # the median alone is half the absolute error
    assert pinball(y, y_hat[..., 1:2], [0.5]).item() == pytest.approx(0.25, abs=1e-7)
    module = build_module({"n_features": F, "horizon": 1, "n_targets": 1, "quantiles": Q})
    assert module.loss(y_hat, y).item() == pytest.approx(expected, abs=1e-7)
    plain = build_module({"n_features": F, "horizon": 1, "n_targets": 1}, loss="mse")
    assert plain.loss(y_hat[..., 1], y).item() == pytest.approx((0.25 + 0.25) / 2, abs=1e-7)


def test_quantiles_after_training_are_ordered_and_cover(sine_prep):
    torch.manual_seed(0)
    dm = datamodule(sine_prep, batch_size=64)
    module = build_module(net_kwargs(sine_prep, {"hidden_size": 8, "quantiles": Q}), lr=1e-2)
    _trainer(epochs=12, batches=10).fit(module, datamodule=dm)
    module.eval()
    ds = dm.dataset("test")
    x, y, series = ds[list(range(len(ds)))]
    with torch.no_grad():
        q = module(x, series)  # (K, H, 1, 3)
    assert q.shape == (len(ds), 6, 1, 3)
    assert (q[..., 0] <= q[..., 1]).all() and (q[..., 1] <= q[..., 2]).all()
    inside = ((y >= q[..., 0]) & (y <= q[..., 2])).float().mean().item()
    below_median = (y < q[..., 1]).float().mean().item()
    assert 0.6 <= inside <= 0.95, inside
    assert 0.3 <= below_median <= 0.7, below_median
    # the interval is about as wide as the noise makes it, neither collapsed nor everything
    ideal = 2 * 1.2816 * NOISE / sine_prep.scaler.scale[0]
    width = (q[..., 2] - q[..., 0]).mean().item()
    assert 0.5 * ideal < width < 2.0 * ideal, (width, ideal)


# ---------------------------------------------------------------------------- instance norm


EQUIVARIANT = {"direct": {}, "quantiles": {"quantiles": Q}, "skip": {"linear_skip": True},
               "autoregressive": {"decoder": "autoregressive"},
               "bi-attention": {"bidirectional": True, "head": "attention"}}


@pytest.mark.parametrize("options", list(EQUIVARIANT.values()), ids=list(EQUIVARIANT))
def test_instance_norm_is_location_equivariant(options):
    c = torch.tensor([2.5, -1.0])  # one constant per data feature
    shift = c[[1, 0]].view(1, 1, NT)  # the targets are columns 1 and 0
    if "quantiles" in options:
        shift = shift[..., None]
    x = _x()
    moved = x.clone()
    moved[:, :, :NORM] += c
    with torch.no_grad():
        normed = _net(window_norm="standard", **options)
        torch.testing.assert_close(normed(moved) - normed(x), shift.expand_as(normed(x)),
                                   rtol=0, atol=1e-4)
        plain = _net(**options)
        assert not torch.allclose(plain(moved) - plain(x), shift.expand_as(plain(x)), atol=1e-2)
        # calendar columns (after norm_features) are inputs as they are, not normalised away
        calendar = x.clone()
        calendar[:, :, NORM:] += 1.0
        assert not torch.allclose(normed(calendar), normed(x), atol=1e-3)


def test_instance_norm_shifts_forecasts_in_data_units(panel):
    """Adding c (data units) to every data feature of a window moves its forecast by c."""
    prep = _prep(panel)
    module = _module(prep, {"window_norm": "standard"})
    ds = datamodule(prep).dataset("test")
    x, _, series = ds[list(range(len(ds)))]
    c = np.array([40.0, 0.5])  # data units of a and b
    moved = x.clone()
    moved[:, :, :2] += torch.as_tensor(c / prep.scaler.scale, dtype=torch.float32)
    with torch.no_grad():
        before = to_units(prep, module(x, series).numpy())
        after = to_units(prep, module(moved, series).numpy())
    np.testing.assert_allclose(after - before, c[0], rtol=0, atol=5e-3)


def test_head_norm_standardises_the_summary_the_head_reads():
    net = _net(head_norm=True, hidden_size=8)
    read = []
    net.out.register_forward_pre_hook(lambda module, args: read.append(args[0]))
    with torch.no_grad():
        net(_x())
    summary = read[0]  # (B, hidden): the layer's scale 1 and shift 0 as initialised
    torch.testing.assert_close(summary.mean(dim=1), torch.zeros(B), atol=1e-5, rtol=0)
    torch.testing.assert_close(summary.std(dim=1, unbiased=False), torch.ones(B), atol=1e-3,
                               rtol=0)
    assert {"head_norm.weight", "head_norm.bias"} <= net.state_dict().keys()
    assert "head_norm.weight" not in _net().state_dict()  # off: the state dict is as before
    with pytest.raises(ValueError, match="model.head_norm .* model.decoder=direct"):
        _net(head_norm=True, decoder="autoregressive")


def test_head_dropout_acts_in_training_only_and_adds_no_weights():
    plain, dropped = _net(), _net(head_dropout=0.5)
    assert plain.state_dict().keys() == dropped.state_dict().keys()
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(dropped.eval()(x), plain.eval()(x))  # same seed, same weights
        dropped.train()
        torch.manual_seed(1)
        first = dropped(x)
        assert not torch.allclose(first, dropped(x))  # a new mask each training pass
