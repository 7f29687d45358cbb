"""The long-horizon options of RegLSTM (window_norm, channel_independent, channel_embedding,
segment, decoder=parallel) and the training recipe (schedule, warm-up, windows per epoch)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import pytorch_lightning as pl
import torch
from conftest import build_module, build_net

from forecast import config
from forecast.config import ModelConfig, NetOptions, TrainingOptions
from forecast.data.windows import EpochBatchSampler
from forecast.models.forecaster import LOSSES, warmup_cosine
from forecast.models.layers import WindowNorm, join_channels, split_channels
from forecast.models.network import CELLS, RegLSTM

B, L, F, H, NORM = 6, 12, 5, 7, 3  # batch, lookback, inputs, horizon, data-feature columns
TARGETS = [2, 0]  # input columns holding the two targets
SEGRNN = {"segment": 4, "decoder": "parallel", "channel_independent": True,
          "channel_embedding": 3, "window_norm": "last", "residual": False}

pytestmark = pytest.mark.usefixtures("one_thread")


def _net(**options) -> RegLSTM:
    torch.manual_seed(0)
    kw = dict(n_features=F, horizon=H, n_targets=len(TARGETS), hidden_size=8, lookback=L,
              n_series=3, target_positions=TARGETS, norm_features=NORM, residual=False)
    return build_net(**(kw | options)).eval()


def _x(batch: int = B, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, L, F, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("extra", [{}, {"bidirectional": True, "num_layers": 2},
                                   {"quantiles": [0.1, 0.5, 0.9], "embedding_dim": 2}],
                         ids=["plain", "bi-2layers", "quantiles-embedding"])
def test_segrnn_shapes_with_every_cell(cell, extra):
    net = _net(cell=cell, **SEGRNN, **extra)
    y = net(_x(), torch.arange(B) % 3)
    q = extra.get("quantiles")
    assert y.shape == (B, H, len(TARGETS)) + ((len(q),) if q else ())
    assert torch.isfinite(y).all()
    # the lookback of 12 steps in segments of 4: three recurrent steps per (window, channel)
    steps = net.encoder_inputs(_x(), torch.arange(B) % 3)
    assert steps.shape[:2] == (B * len(TARGETS), L // 4)
    # two output segments of 4 cover the horizon of 7, cut to 7
    assert net.parallel.n_segments == 2


def test_channels_read_only_their_own_column():
    net = _net(**SEGRNN)
    x = _x()
    base = net(x)
    moved = x.clone()
    moved[:, :, 0] += torch.randn(B, L)  # column 0 holds the second target
    moved[:, :, [1, 3, 4]] += 5.0  # inputs that are not targets are not read at all
    y = net(moved)
    torch.testing.assert_close(y[..., 0], base[..., 0])  # the first target (column 2)
    assert not torch.allclose(y[..., 1], base[..., 1])


def test_channels_share_weights_and_the_embedding_tells_them_apart():
    plain = _net(**{**SEGRNN, "channel_embedding": 0})
    named = _net(**SEGRNN)
    x = _x()
    swapped = x.clone()
    swapped[:, :, [0, 2]] = x[:, :, [2, 0]]
    # without an embedding the same weights read each column: swapping columns swaps forecasts
    torch.testing.assert_close(plain(swapped), plain(x).flip(-1))
    assert not torch.allclose(named(swapped), named(x).flip(-1))


def test_split_and_join_channels_are_inverse():
    x = _x()
    rows = split_channels(x, TARGETS)  # (B*C, L, 1)
    assert rows.shape == (B * 2, L, 1)
    torch.testing.assert_close(rows[1, :, 0], x[0, :, 0])  # window 0, second channel
    y = rows[:, :H]  # pretend forecasts (B*C, H, 1)
    joined = join_channels(y, 2)
    assert joined.shape == (B, H, 2)
    torch.testing.assert_close(joined, x[:, :H, TARGETS])


@pytest.mark.parametrize("kind", ["last", "revin"])
@pytest.mark.parametrize("options", [{}, SEGRNN, {"decoder": "autoregressive"},
                                     {"quantiles": [0.1, 0.5, 0.9]}],
                         ids=["direct", "segrnn", "autoregressive", "quantiles"])
def test_window_norm_moves_forecasts_with_their_window(kind, options):
    c = torch.tensor([2.5, -1.0, 4.0])  # one constant per data feature
    x = _x()
    moved = x.clone()
    moved[:, :, :NORM] += c
    net = _net(**{**options, "window_norm": kind})
    with torch.no_grad():
        shift = c[TARGETS].view(1, 1, -1)
        y, y_moved = net(x), net(moved)
        if y.dim() == 4:
            shift = shift[..., None]
        torch.testing.assert_close(y_moved - y, shift.expand_as(y), rtol=0, atol=1e-4)


def test_revin_learns_an_affine_map_that_is_undone_on_the_output():
    norm = WindowNorm("revin", 2, [1, 0])
    with torch.no_grad():
        norm.affine_weight.copy_(torch.tensor([2.0, 0.5]))
        norm.affine_bias.copy_(torch.tensor([1.0, -3.0]))
    x = torch.randn(4, 10, 3)
    z, stats = norm(x)
    torch.testing.assert_close(z[:, :, 2], x[:, :, 2])  # calendar column left alone
    assert z[:, :, 0].mean().item() == pytest.approx(1.0, abs=1e-5)  # the learned shift
    # restoring the normalised lookback itself gives back the inputs of the target columns
    torch.testing.assert_close(norm.restore(z[:, :, [1, 0]], stats), x[:, :, [1, 0]],
                               rtol=0, atol=1e-4)
    assert sorted(n for n, _ in norm.named_parameters()) == ["affine_bias", "affine_weight"]
    assert not list(WindowNorm("last", 2, [0]).parameters())


def test_the_parallel_decoder_forecasts_every_segment_from_the_same_state():
    net = _net(**{**SEGRNN, "cell": "gru"})
    x = _x()
    calls = []
    hook = net.rnn.register_forward_hook(lambda m, inputs, out: calls.append((inputs, out)))
    with torch.no_grad():
        net(x)
    hook.remove()
    # one encoder pass over 3 segments, one decoder pass of a single step for all 2 segments
    assert [c[0][0].shape for c in calls] == [torch.Size([B * 2, 3, 8]),
                                              torch.Size([B * 2 * 2, 1, 8])]
    final = calls[0][1][1]  # the encoder's h_n (1, B*C, hidden)
    start = calls[1][0][1]  # the decoder's initial state (1, B*C*m, hidden)
    torch.testing.assert_close(start, final.repeat_interleave(2, dim=1))
    # the two segments of a row differ only by their position embedding
    steps = calls[1][0][0].view(B * 2, 2, -1)
    assert not torch.equal(steps[:, 0], steps[:, 1])
    torch.testing.assert_close(steps[0, :, -3:], steps[0, :, -3:].flip(0))  # same channel part


@pytest.mark.parametrize(("options", "message"), [
    ({"window_norm": "mean"}, "model.window_norm='mean'"),
    ({"segment": 5}, "divide lookback=12"),
    ({"segment": 4, "decoder": "autoregressive"}, "model.decoder=parallel or direct"),
    ({"decoder": "parallel"}, "set model.segment"),
    ({"segment": 4, "decoder": "parallel", "head": "mean"}, "model.head=mean"),
    ({"segment": 4, "decoder": "parallel", "linear_skip": True}, "model.linear_skip"),
    ({"channel_embedding": 2}, "needs model.channel_independent=true"),
    ({**SEGRNN, "channel_embedding": 8}, "smaller than model.hidden_size=8"),
    ({"window_norm": "revin", "lookback": 1}, "needs lookback >= 2"),
    ({"window_norm": "standard", "lookback": 1}, "needs lookback >= 2"),
])
def test_impossible_combinations_are_refused(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        _net(**options)


def test_instance_norm_is_the_alias_of_window_norm_standard():
    assert ModelConfig(instance_norm=True).net().window_norm == "standard"
    assert ModelConfig(instance_norm=True, window_norm="standard").net().window_norm == "standard"
    with pytest.raises(ValueError, match="keep one"):
        ModelConfig(window_norm="last", instance_norm=True).net()
    assert "instance_norm" not in {f.name for f in dataclasses.fields(NetOptions)}


# ----------------------------------------------------------------------------- training recipe


def test_warmup_then_cosine():
    factor = warmup_cosine(4, 14)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(9) == pytest.approx(0.5)  # half way through the cosine
    assert factor(14) == pytest.approx(0.0, abs=1e-12) and factor(20) == pytest.approx(0.0)
    assert warmup_cosine(0, None)(100) == 1.0 and warmup_cosine(2, None)(0) == 0.5


@pytest.mark.parametrize(("schedule", "warmup", "message"), [
    ("linear", 0, "model.schedule='linear'"),
    ("plateau", 10, "model.warmup_steps needs model.schedule=cosine"),
    ("cosine", -1, "model.warmup_steps=-1"),
])
def test_bad_schedules_are_refused(schedule, warmup, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        TrainingOptions(schedule=schedule, warmup_steps=warmup)


def _loader(n: int = 64) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(n, L, F, generator=g),
                                          torch.randn(n, H, 2, generator=g),
                                          torch.zeros(n, dtype=torch.long))
    return torch.utils.data.DataLoader(data, batch_size=16)


# the net of the fits on _loader's batches: x (B, L, F), y (B, H, 2)
_LOADER_NET = {"n_features": F, "horizon": H, "n_targets": 2, "hidden_size": 4, "lookback": L,
               "target_positions": TARGETS, "norm_features": NORM}


class _LearningRates(pl.Callback):
    def __init__(self):
        self.rates = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_cosine_schedule_with_warmup_steps_the_rate_every_batch():
    module = build_module(_LOADER_NET, lr=0.1, schedule="cosine", warmup_steps=2)
    rates = _LearningRates()
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", callbacks=[rates], num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=_loader(), val_dataloaders=_loader(16))
    expected = [0.1 * warmup_cosine(2, 8)(s) for s in range(8)]
    assert rates.rates == pytest.approx(expected)
    assert math.isclose(rates.rates[1], 0.1) and rates.rates[-1] < 0.01


def test_the_train_loss_is_logged_on_the_steps_the_logger_writes():
    """train/loss_step goes through self.log only on the steps trainer.log_every_n_steps writes;
    the epoch mean is logged once an epoch."""
    module, logged = build_module(_LOADER_NET, lr=0.01, schedule="constant"), []
    log = module.log

    def recording(name, value, *args, **kwargs):
        logged.append((module.global_step, name))
        return log(name, value, *args, **kwargs)

    module.log = recording
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", log_every_n_steps=2)
    trainer.fit(module, train_dataloaders=_loader())  # 4 steps: written after steps 2 and 4
    assert [step for step, name in logged if name == "train/loss_step"] == [1, 3]
    assert [name for _, name in logged].count("train/loss_epoch") == 1


def test_an_epoch_of_capped_windows_is_a_fresh_draw_each_epoch():
    sampler = EpochBatchSampler(100, 8, shuffle=True, seed=0, limit=30)
    assert len(sampler) == 4
    first = [i for batch in sampler for i in batch]
    sampler.set_epoch(1)
    second = [i for batch in sampler for i in batch]
    assert len(first) == len(set(first)) == 30 and len(second) == 30
    assert set(first) != set(second)
    assert len(EpochBatchSampler(100, 8, shuffle=True, limit=None)) == 13
    assert len(EpochBatchSampler(20, 8, shuffle=True, limit=500)) == 3


@pytest.mark.parametrize("options", [
    SEGRNN,
    {"channel_independent": True, "decoder": "autoregressive", "window_norm": "last"},
    {"channel_independent": True, "channel_embedding": 2, "linear_skip": True},
], ids=["segrnn", "autoregressive", "direct-skip"])
def test_a_channel_independent_net_reads_batches_of_its_target_columns_alone(options):
    net = _net(**options)
    assert net.input_columns == TARGETS  # in the targets' order, not the columns'
    x, series = _x(), torch.arange(B) % 3
    with torch.no_grad():
        torch.testing.assert_close(net(x[..., TARGETS], series), net(x, series), rtol=0, atol=0)
        torch.testing.assert_close(net.encoder_inputs(x[..., TARGETS], series),
                                   net.encoder_inputs(x, series), rtol=0, atol=0)
        with pytest.raises(ValueError, match=r"batch of 3 input columns.*all 5 inputs or its 2"):
            net(x[..., :3], series)


def test_nets_that_read_every_input_ask_for_all_columns():
    assert _net().input_columns is None  # every column feeds the recurrent layers
    # every input a target, in another order: the batch is the whole input array as it is
    both = {"n_features": 2, "norm_features": 2}
    net = _net(**SEGRNN, **both, target_positions=[1, 0])
    in_order = _net(**SEGRNN, **both, target_positions=[0, 1])  # the same weights
    assert net.input_columns is None
    x = torch.randn(B, L, 2)
    with torch.no_grad():  # target 0, with its channel embedding, is column 1
        torch.testing.assert_close(net(x), in_order(x.flip(-1)), rtol=0, atol=0)
        assert not torch.allclose(net(x), in_order(x))


def test_the_option_names_are_the_classes_and_losses_built():
    assert tuple(CELLS) == config.CELL_NAMES
    assert tuple(LOSSES) == config.LOSS_NAMES
    for kind in config.WINDOW_NORMS:
        WindowNorm(kind, 2, [0])
    with pytest.raises(ValueError, match="'mean' is unknown"):
        WindowNorm("mean", 2, [0])
