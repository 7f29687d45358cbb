"""model.backbone_mode=blend: the network trains on its own, then each lead's forecast is blended
with the linear backbone's by a weight chosen on the validation windows. The blend's arithmetic,
the choice (never worse on validation than either part, the lowest-loss weight per lead), a
causal blended net, a checkpoint that keeps its weights, and a run that writes them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import build_module, net_kwargs, weather_frame

import forecast
from forecast.config import NetOptions
from forecast.data.panel import to_panel
from forecast.data.prepared import datamodule, prepare
from forecast.models.backbone import blend, fit_backbone
from forecast.models.forecaster import LOSSES
from forecast.models.network import RegLSTM
from forecast.runs import blending
from forecast.runs.blending import GRID, choose_blend

pytestmark = pytest.mark.usefixtures("one_thread")

L, H = 24, 6


def _prep(n_steps: int = 600, targets=("temp",)):
    frame = weather_frame(3, n_steps, ("temp", "humid"))
    return prepare(to_panel(frame), L, H, list(targets), calendar=("hour",))


def _module(prep, options=None):
    torch.manual_seed(0)
    module = build_module(net_kwargs(prep, {"hidden_size": 4, "backbone": "auto",
                                            "backbone_mode": "blend", **(options or {})}))
    dm = datamodule(prep)
    fit_backbone(module.net, dm.dataset("train"), dm.dataset("val"), module.point_loss,
                 module.net.options.backbone)
    return module.eval()


def test_the_blend_moves_each_lead_by_its_weight_and_quantiles_as_a_whole():
    y = torch.tensor([[[1.0], [2.0]]])  # (B=1, H=2, C=1)
    base = torch.tensor([[[3.0], [6.0]]])
    weight = torch.tensor([[0.0], [0.25]])  # (H, C)
    torch.testing.assert_close(blend(y, base, weight), torch.tensor([[[1.0], [3.0]]]))
    quantiles = torch.stack([y - 1, y, y + 2], dim=-1)  # (1, 2, 1, Q=3)
    moved = blend(quantiles, base, torch.ones(2, 1), (0.1, 0.5, 0.9))
    torch.testing.assert_close(moved[..., 1], base)  # the median is the backbone's
    torch.testing.assert_close(moved - moved[..., 1:2], quantiles - quantiles[..., 1:2])


def test_a_blending_net_trains_alone_and_starts_at_weight_zero():
    prep = _prep()
    module = _module(prep)
    net = module.net
    assert net.blend_mode and torch.count_nonzero(net.blend_weight) == 0
    # its last layer is not zeroed (it is not started from the backbone)
    assert torch.count_nonzero(net.out.weight) > 0
    x, _, series, *_ = datamodule(prep).dataset("val")[np.arange(8)]
    with torch.no_grad():
        torch.testing.assert_close(net(x, series), net(x, series, backbone=False))


@pytest.mark.parametrize("options", [{}, {"quantiles": (0.1, 0.5, 0.9)},
                                     {"decoder": "parallel", "segment": 4,
                                      "channel_independent": True, "window_norm": "last"}],
                         ids=["direct", "quantiles", "parallel-channels"])
def test_the_chosen_blend_is_the_lowest_loss_weight_of_every_lead(options):
    prep = _prep()
    module = _module(prep, {**options, "blend_shrink": 0.0})
    dataset = datamodule(prep).dataset("val")
    x, y, series, *_ = dataset[np.arange(len(dataset))]
    with torch.no_grad():
        own = module.net(x, series)
        own = own[..., 1] if module.net.quantiles else own
        linear = module.net.backbone(*module.net.backbone_inputs(x, None, None))
    chosen = choose_blend(module, dataset)
    weights = module.net.blend_weight
    assert weights.shape == (H, 1) and torch.equal(weights, torch.from_numpy(chosen.weights))
    assert chosen.blended_loss <= min(chosen.net_loss, chosen.backbone_loss) + 1e-9
    # brute force at each lead: no weight of the grid does better than the one chosen
    for lead in range(H):
        losses = [float(LOSSES["mae"](own[:, lead] + w * (linear[:, lead] - own[:, lead]),
                                      y[:, lead])) for w in GRID]
        assert losses[list(GRID).index(float(weights[lead, 0]))] == pytest.approx(min(losses))
    # the net forecasts with the weights it was given
    with torch.no_grad():
        point = module.net(x, series)
        point = point[..., 1] if module.net.quantiles else point
    torch.testing.assert_close(point, own + weights * (linear - own), atol=1e-5, rtol=1e-5)



def _blend_of(monkeypatch, own, linear, actual, shrink):
    """choose_blend on given validation forecasts (K, H, C) of the network and the backbone."""
    prep = _prep(targets=("temp", "humid")[:actual.shape[-1]])
    module = _module(prep, {"blend_shrink": shrink})
    monkeypatch.setattr(blending, "_forecasts", lambda *_: (own, linear, actual))
    return choose_blend(module, datamodule(prep).dataset("val")), module


def test_the_chosen_weights_move_toward_the_average_by_blend_shrink(monkeypatch):
    rng = np.random.default_rng(0)
    actual = rng.normal(size=(4000, H, 1))
    own = actual + rng.normal(scale=0.5, size=actual.shape)  # the better forecast
    linear = actual + rng.normal(scale=1.0, size=actual.shape)
    chosen, _ = _blend_of(monkeypatch, own, linear, actual, 0.0)
    assert (chosen.weights > 0.05).all() and (chosen.weights < 0.45).all()
    shrunk, module = _blend_of(monkeypatch, own, linear, actual, 0.5)
    np.testing.assert_allclose(shrunk.weights, (chosen.weights + 0.5) / 2, atol=1e-6)
    assert torch.equal(module.net.blend_weight, torch.from_numpy(shrunk.weights))
    assert shrunk.shrink == 0.5 and "moved 0.5 of the way to 0.5" in shrunk.describe("ridge")
    # on validation, a little worse than the chosen weights, better than either part alone
    assert chosen.blended_loss <= shrunk.blended_loss < min(shrunk.net_loss,
                                                             shrunk.backbone_loss)
    equal = actual + rng.normal(scale=0.5, size=actual.shape)  # as good as the network
    average, _ = _blend_of(monkeypatch, own, equal, actual, 1.0)
    assert (average.weights == 0.5).all()


def test_a_target_whose_shrunk_blend_loses_to_a_part_alone_keeps_the_chosen_weights(
        monkeypatch):
    rng = np.random.default_rng(1)
    actual = rng.normal(size=(2000, H, 1))
    own = actual.copy()  # a perfect network: any weight on the backbone costs
    linear = actual + rng.normal(size=actual.shape)
    blend_, _ = _blend_of(monkeypatch, own, linear, actual, 0.5)
    assert (blend_.weights == 0).all() and blend_.kept == 1
    assert blend_.blended_loss <= blend_.net_loss
    assert "(kept as chosen: moved toward 0.5 they lose on validation)" in blend_.describe("ridge")


def test_each_target_keeps_or_shrinks_its_weights_on_its_own(monkeypatch):
    rng = np.random.default_rng(2)
    actual = rng.normal(size=(3000, H, 2))
    noise = rng.normal(size=actual.shape)
    own = actual + noise * np.array([0.5, 0.0])  # target 0 a noisy network, target 1 a perfect one
    linear = actual + rng.normal(size=actual.shape)
    chosen, _ = _blend_of(monkeypatch, own, linear, actual, 0.0)
    shrunk, module = _blend_of(monkeypatch, own, linear, actual, 0.5)
    np.testing.assert_allclose(shrunk.weights[:, 0], (chosen.weights[:, 0] + 0.5) / 2, atol=1e-6)
    np.testing.assert_array_equal(shrunk.weights[:, 1], chosen.weights[:, 1])  # all 0
    assert (shrunk.weights[:, 1] == 0).all() and shrunk.kept == 1
    assert "kept as chosen for 1 of 2 targets" in shrunk.describe("ridge")
    assert torch.equal(module.net.blend_weight, torch.from_numpy(shrunk.weights))

def test_an_untrained_net_leans_on_the_backbone():
    prep = _prep()
    module = _module(prep)
    chosen = choose_blend(module, datamodule(prep).dataset("val"))
    # a net of random weights is far worse than the fitted linear map: the blend is mostly it
    assert chosen.backbone_loss < chosen.net_loss and chosen.weights.mean() > 0.5


def test_a_blended_forecast_reads_nothing_after_the_origin():
    frame = weather_frame(3, 600, ("temp", "humid"))
    prep = prepare(to_panel(frame), L, H, ["temp"], calendar=("hour",))
    module = _module(prep)
    module.net.blend_weight.fill_(0.5)
    index = prep.indices["test"]
    k = len(index) // 2
    series, start = index[k]
    origin = prep.panel.times[start + L - 1]
    later = frame.copy()
    after = (later["time"] > origin).to_numpy()
    later.loc[after, ["temp", "humid"]] = later.loc[after, ["temp", "humid"]] * 3.0 + 50.0

    def forecast_of(df):
        again = prepare(to_panel(df), L, H, ["temp"], calendar=("hour",))
        ds = datamodule(again).dataset("test")
        with torch.no_grad():
            return module.predict_step(ds[np.arange(len(ds))], 0)

    torch.testing.assert_close(forecast_of(later)[k], forecast_of(frame)[k])


def test_checkpoint_values_rebuild_the_blend():
    prep = _prep()
    module = _module(prep)
    choose_blend(module, datamodule(prep).dataset("val"))
    rebuilt = RegLSTM.from_hparams(module.net.hparams())
    rebuilt.load_state_dict(module.net.state_dict())
    torch.testing.assert_close(rebuilt.blend_weight, module.net.blend_weight)
    x, _, series, *_ = datamodule(prep).dataset("test")[np.arange(4)]
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x, series), module.net(x, series))
    earlier = module.net.hparams()
    del earlier["backbone_mode"]  # written before the option: the net started from its backbone
    assert RegLSTM.from_hparams(earlier).options.backbone_mode == "start"


def test_an_unknown_mode_or_a_shrink_outside_0_1_is_refused_by_name():
    with pytest.raises(ValueError, match="model.backbone_mode='mix'"):
        NetOptions(backbone="ridge", backbone_mode="mix")
    with pytest.raises(ValueError, match=r"model.blend_shrink=1.5 must lie in \[0, 1\]"):
        NetOptions(blend_shrink=1.5)


@pytest.mark.slow
def test_a_run_writes_the_blend_into_its_best_checkpoint(tmp_path):
    frame = weather_frame(3, 500, ("temp", "sun", "humid"))
    run = forecast.fit(frame, targets="temp", lookback=L, horizon=H, run_dir=tmp_path / "run",
                       overrides=["trainer=fast", "trainer.max_epochs=2", "model.hidden_size=8",
                                  "model.backbone=ridge", "model.backbone_mode=blend",
                                  "evaluate.plot_days=2"])
    state = torch.load(run.dir / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    weights = state["net.blend_weight"]
    assert weights.shape == (H, 1) and ((weights >= 0) & (weights <= 1)).all()
    assert torch.count_nonzero(weights) > 0  # two epochs of a tiny net: ridge has a say
    log = (run.dir / "train.log").read_text()
    assert "Blended with the backbone (ridge) on validation" in log
    # the forecasts the run scored are the blended net's: load it and forecast again
    again = forecast.load_run(run.dir)
    assert torch.equal(again.model.blend_weight, weights)
    table = run.forecasts
    assert isinstance(table, pd.DataFrame) and np.isfinite(table["forecast"]).all()
