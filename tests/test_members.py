"""model.members=K: an ensemble of K networks of one design, the forecast their mean, each
trained on its own loss, sharing the backbone and its blend. The mean, the independence of the
members' training, their distinct starting weights, a checkpoint that rebuilds them (and one
written before the option), the refusal of a count below one, and a run that trains them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import build_module, net_kwargs, weather_frame

import forecast
from forecast.config import NetOptions
from forecast.data.panel import to_panel
from forecast.data.prepared import datamodule, prepare
from forecast.models.backbone import blend, fit_backbone
from forecast.models.network import RegLSTM
from forecast.runs.blending import choose_blend

pytestmark = pytest.mark.usefixtures("one_thread")

L, H = 24, 6


def _prep():
    frame = weather_frame(3, 600, ("temp", "humid"))
    return prepare(to_panel(frame), L, H, ["temp"], calendar=("hour",))


def _module(prep, **options):
    torch.manual_seed(0)
    module = build_module(net_kwargs(prep, {"hidden_size": 4, "members": 3, **options}))
    if module.net.backbone is not None:
        dm = datamodule(prep)
        fit_backbone(module.net, dm.dataset("train"), dm.dataset("val"), module.point_loss,
                     module.net.options.backbone)
    return module


def _batch(prep, split="train", n=16):
    return datamodule(prep).dataset(split)[np.arange(n)]


def test_the_forecast_is_the_members_mean_blended_with_the_backbone():
    prep = _prep()
    module = _module(prep, backbone="ridge", backbone_mode="blend").eval()
    net = module.net
    assert len(net.members) == 3 and all(m.members is None for m in net.members)
    assert all(m.backbone is None for m in net.members)  # one backbone, the ensemble's
    net.blend_weight.fill_(0.3)
    x, _, series, *_ = _batch(prep, "test")
    with torch.no_grad():
        each = [m(x, series) for m in net.members]
        base = net.backbone(*net.backbone_inputs(x, None, None))
        expected = blend(torch.stack(each).mean(0), base, net.blend_weight)
        torch.testing.assert_close(net(x, series), expected)
        torch.testing.assert_close(net(x, series, backbone=False), torch.stack(each).mean(0))
    # the members start from their own weights: their forecasts differ
    assert not torch.allclose(each[0], each[1])


def test_quantile_members_give_sorted_quantiles():
    prep = _prep()
    net = _module(prep, quantiles=(0.1, 0.5, 0.9), backbone="none").net.eval()
    x, _, series, *_ = _batch(prep, "test")
    with torch.no_grad():
        y = net(x, series)
    assert y.shape == (16, H, 1, 3) and (y.diff(dim=-1) >= 0).all()


@pytest.mark.parametrize("options", [{"backbone": "ridge", "backbone_mode": "blend"},
                                     {"backbone": "ridge", "backbone_mode": "start"},
                                     {"backbone": "none", "decoder": "autoregressive"}],
                         ids=["blend", "start", "autoregressive"])
def test_each_member_learns_from_its_own_loss_alone(options):
    """Member 0's gradient is the one its own loss gives, whatever member 1's weights are: on
    the loss of their mean, an L1 gradient would change with the other members' forecasts."""
    prep = _prep()
    module = _module(prep, **options).train()
    batch = _batch(prep)
    x, y, series = batch[:3]

    def first_gradient():
        module.zero_grad()
        module.training_step(batch, 0).backward()
        return [p.grad.clone() for p in module.net.members[0].parameters()]

    before = first_gradient()
    with torch.no_grad():  # member 1 now forecasts something else entirely
        for p in module.net.members[1].parameters():
            p.add_(torch.randn_like(p))
    after = first_gradient()
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(a, b)
    # and it is what member 0's own loss gives, as if it trained alone (weight decay and
    # clipping then act on it as they would on one network)
    module.zero_grad()
    own = module.net.member_forecasts(x, series)[0]
    loss = module.loss(own, y)
    if module.net.aux_loss is not None:
        loss = loss + module.net.members[0].aux_loss
    loss.backward()
    for a, p in zip(after, module.net.members[0].parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)



@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_gradient_clipping_bounds_each_member_on_its_own(algorithm):
    prep = _prep()
    module = _module(prep, backbone="none").train()
    members = module.net.members

    def clipped(scale_second: float):
        module.zero_grad()
        module.training_step(_batch(prep), 0).backward()
        for p in members[1].parameters():
            p.grad.mul_(scale_second)  # a member whose gradient is far larger than the others'
        module.configure_gradient_clipping(None, 0.01, algorithm)
        return [[p.grad.clone() for p in m.parameters()] for m in members]

    calm, wild = clipped(1.0), clipped(1e4)
    for a, b in zip(calm[0], wild[0], strict=True):  # member 0's step does not shrink
        torch.testing.assert_close(a, b)
    for grads in wild:  # each within the bound on its own
        if algorithm == "norm":
            assert torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(g) for g in grads])) <= 0.01 + 1e-6
        else:
            assert max(g.abs().max() for g in grads) <= 0.01 + 1e-9

def test_the_blend_is_chosen_for_the_members_mean():
    prep = _prep()
    module = _module(prep, backbone="auto", backbone_mode="blend").eval()
    chosen = choose_blend(module, datamodule(prep).dataset("val"))
    assert chosen.blended_loss <= min(chosen.net_loss, chosen.backbone_loss) + 1e-9
    torch.testing.assert_close(module.net.blend_weight, torch.from_numpy(chosen.weights))


def test_checkpoint_values_rebuild_the_ensemble():
    prep = _prep()
    net = _module(prep, backbone="ridge", backbone_mode="blend").net.eval()
    net.blend_weight.fill_(0.4)
    rebuilt = RegLSTM.from_hparams(net.hparams())
    rebuilt.load_state_dict(net.state_dict())
    x, _, series, *_ = _batch(prep, "test")
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x, series), net(x, series))
    assert any(k.startswith("members.2.rnn.") for k in net.state_dict())
    earlier = net.hparams()
    del earlier["members"]  # written before the option: one network
    assert RegLSTM.from_hparams(earlier).members is None


def test_fewer_than_one_member_is_refused_by_name():
    with pytest.raises(ValueError, match="model.members=0"):
        NetOptions(members=0)


# a run of two tiny ManualLSTM members on the fast trainer
RUN = ["trainer=fast", "trainer.max_epochs=2", "model.hidden_size=8", "model.members=2",
       "model.cell=manual_lstm", "evaluate.plot_days=2"]


@pytest.mark.slow
def test_a_run_trains_the_members_and_forecasts_with_them(tmp_path):
    data = weather_frame(3, 500, ("temp", "sun", "humid"))
    run = forecast.fit(data, targets="temp", lookback=L, horizon=H, run_dir=tmp_path / "run",
                       overrides=RUN)
    state = torch.load(run.dir / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    assert {k.split(".")[2] for k in state if k.startswith("net.members.")} == {"0", "1"}
    assert len(forecast.load_run(run.dir).model.members) == 2
    assert np.isfinite(run.forecasts["forecast"]).all()
    assert (run.dir / "plots" / "gates.png").is_file()  # the first member's gates
