"""Covariates (data.known, data.static, data.static_path): the windows' known (B, H, F_known)
and static (B, S) inputs, their refusals, causality through every decoder that reads them,
the baselines that see them, the linear backbone and the starting point it gives training,
evaluate.origin_hour, and a synthetic panel whose target is a known column's future value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import build_module, net_kwargs

from forecast.config import DataConfig
from forecast.data import covariates as cv
from forecast.data.panel import to_panel
from forecast.data.prepared import datamodule, prepare
from forecast.evaluation import scoring
from forecast.models.backbone import fit_backbone
from forecast.models.network import RegLSTM
from forecast.runs.starting_point import StartingPoint, validation_loss

L, H, T = 24, 6, 400
SITES = {"A": (10.0, "coast"), "B": (200.0, "inland"), "C": (50.0, "coast")}


def frame(n_steps: int = T, seed: int = 0) -> pd.DataFrame:
    """Three series: `y` a random walk plus a daily cycle, `fc` its value at the same step
    plus a little noise (a perfect day-ahead forecast of y), `wind` noise, and the per-series
    constants `elev` and `terrain` repeated on every row."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01", periods=n_steps, freq="h", tz="UTC")
    frames = []
    for name, (elev, terrain) in SITES.items():
        y = np.cumsum(rng.normal(0, 1, n_steps)) + 5 * np.sin(2 * np.pi * np.arange(n_steps) / 24)
        frames.append(pd.DataFrame({"series": name, "time": times, "y": y,
                                    "fc": y + rng.normal(0, 0.05, n_steps),
                                    "wind": rng.normal(0, 1, n_steps), "elev": elev,
                                    "terrain_coast": float(terrain == "coast")}))
    return pd.concat(frames, ignore_index=True)


def panel_of(df: pd.DataFrame, static=("elev", "terrain")):
    return cv.split_static(to_panel(df), list(static))


def prep_of(df=None, known=("fc",), static=("elev", "terrain"), **options):
    panel = panel_of(frame() if df is None else df, static)
    return prepare(panel, L, H, ["y"], calendar=("hour",), known=list(known), **options)


# ------------------------------------------------------------------------------ data and windows


def test_static_columns_leave_the_time_axis():
    panel = panel_of(frame())
    assert panel.static_names == ["elev", "terrain_coast"]  # a text column by its one-hot name
    assert "elev" not in panel.features and "terrain_coast" not in panel.features
    assert panel.static.tolist() == [[10.0, 1.0], [200.0, 0.0], [50.0, 1.0]]


def test_windows_carry_known_and_static_with_their_shapes():
    prep = prep_of()
    cov = prep.covariates
    assert cov.known_names == ["fc", "hour_sin", "hour_cos"]  # the calendar is known too
    x, y, series, known, static = datamodule(prep).dataset("test")[np.arange(5)]
    assert x.shape == (5, L, len(prep.input_names)) and y.shape == (5, H, 1)
    assert known.shape == (5, H, 3) and static.shape == (5, 2)
    # the known value of lead h is the scaled fc at origin + 1 + h, as it is (not filled)
    index = prep.indices["test"][:5]
    fc = prep.panel.features.index("fc")
    raw = prep.panel.values[index[:, :1], index[:, 1:2] + L + np.arange(H), fc]  # (5, H)
    expected = (raw - prep.scaler.mean[fc]) / prep.scaler.scale[fc]
    np.testing.assert_allclose(known[..., 0].numpy(), expected, rtol=1e-5, atol=1e-5)
    # static: standardised across the series
    np.testing.assert_allclose(static.numpy(), cov.static[index[:, 0]])
    assert np.allclose(cov.static.mean(axis=0), 0.0, atol=1e-6)


def test_a_run_without_covariates_has_the_three_part_batches():
    prep = prepare(to_panel(frame().drop(columns=["elev", "terrain_coast"])), L, H, ["y"])
    assert prep.covariates is None
    assert len(datamodule(prep).dataset("train")[np.arange(3)]) == 3


def test_windows_with_missing_known_values_over_the_horizon_are_dropped_and_counted():
    df = frame()
    gap = (df["series"] == "A") & (df.index % T == 380)  # in the test span [360, 400)
    df.loc[gap, "fc"] = np.nan
    with_gap, full = prep_of(df), prep_of()
    assert with_gap.dropped["test"] == H  # every window whose leads include that step
    assert len(with_gap.indices["test"]) == len(full.indices["test"]) - H


def test_a_pattern_names_every_column_but_the_targets():
    prep = prep_of(known=["*"])
    assert prep.covariates.known_names[:2] == ["fc", "wind"]


@pytest.mark.parametrize(("make", "message"), [
    (lambda: prep_of(known=["y"]), r"data.known \['y'\] are also targets"),
    (lambda: prep_of(known=["rain"]), "data.known: column 'rain' is not among"),
    (lambda: panel_of(frame(), static=("wind",)),
     "data.static column 'wind' varies within series 'A'"),
    (lambda: panel_of(frame(), static=("snow",)), "data.static: column 'snow' is not among"),
])
def test_refusals_name_the_column(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_static_table_gives_one_row_per_series(tmp_path):
    path = tmp_path / "stations.csv"
    pd.DataFrame({"series": ["A", "B", "C"], "lat": [40.1, 40.5, 41.0],
                  "kind": ["x", "y", "x"]}).to_csv(path, index=False)
    table = cv.read_static_table(str(path), "series")
    panel = cv.split_static(to_panel(frame()), ["elev"], table)
    assert panel.static_names == ["elev", "lat", "kind_x", "kind_y"]
    assert panel.static[:, 1].tolist() == pytest.approx([40.1, 40.5, 41.0])
    assert panel.static[:, 2].tolist() == [1.0, 0.0, 1.0]

    pd.DataFrame({"series": ["A", "B"], "lat": [1.0, 2.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"no row for series \['C'\]"):
        cv.split_static(to_panel(frame()), [], cv.read_static_table(str(path), "series"))
    pd.DataFrame({"series": ["A", "A"], "lat": [1.0, 2.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"series \['A'\] have more than one row"):
        cv.read_static_table(str(path), "series")
    pd.DataFrame({"station": ["A"], "lat": [1.0]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="no column 'series'"):
        cv.read_static_table(str(path), "series")


def test_static_and_memmap_are_refused_together():
    data = DataConfig(name="csv", path="x.parquet", static=["elev"], memmap="folder")
    with pytest.raises(ValueError, match="data.memmap"):
        cv.attach(to_panel(frame()), data)


def test_origin_hour_keeps_the_test_windows_whose_first_lead_is_at_that_hour():
    prep = prep_of(origin_hour=0)
    firsts = prep.panel.times[prep.indices["test"][:, 1] + L]
    assert len(firsts) and (firsts.hour == 0).all()
    assert len(prep.indices["val"]) > len(prep.indices["test"])  # training windows unchanged
    with pytest.raises(ValueError, match="evaluate.origin_hour=24"):
        prep_of(origin_hour=24)


# ------------------------------------------------------------------------------------- causality

DECODERS = {
    "direct": {},
    "seq2seq": {"decoder": "seq2seq"},
    "seq2seq-bi-2layers-gru": {"decoder": "seq2seq", "bidirectional": True, "num_layers": 2,
                               "cell": "gru"},
    "autoregressive": {"decoder": "autoregressive", "window_norm": "standard"},
    "parallel-channels": {"decoder": "parallel", "segment": 4, "channel_independent": True,
                          "channel_embedding": 2, "window_norm": "last"},
    "direct-quantiles-backbone": {"quantiles": (0.1, 0.5, 0.9), "backbone": "ridge",
                                  "backbone_mode": "start"},
    "seq2seq-embedding-revin": {"decoder": "seq2seq", "embedding_dim": 2,
                                "window_norm": "revin"},
    "seq2seq-rlinear": {"decoder": "seq2seq", "backbone": "rlinear", "backbone_mode": "start"},
    "parallel-channels-auto": {"decoder": "parallel", "segment": 4, "channel_independent": True,
                               "backbone": "auto", "backbone_mode": "start"},
    "seq2seq-blend": {"decoder": "seq2seq", "backbone": "auto", "backbone_mode": "blend"},
    "members-direct-blend": {"members": 2, "backbone": "ridge", "backbone_mode": "blend"},
    "members-autoregressive": {"members": 2, "decoder": "autoregressive"},
}


def _forecasts(module, prep) -> torch.Tensor:
    ds = datamodule(prep, input_cols=module.net.input_columns).dataset("test")
    with torch.no_grad():
        return module.predict_step(ds[np.arange(len(ds))], 0)


def _module(prep, options):
    torch.manual_seed(0)
    module = build_module(net_kwargs(prep, {"hidden_size": 4, **options}))
    if module.net.backbone is not None:
        dm = datamodule(prep)
        fit_backbone(module.net, dm.dataset("train"), dm.dataset("val"), module.point_loss,
                     module.net.options.backbone)
    if module.net.blend_mode:  # as after training: both parts read
        module.net.blend_weight.fill_(0.5)
    return module.eval()


@pytest.mark.parametrize("options", list(DECODERS.values()), ids=list(DECODERS))
def test_known_values_are_read_for_their_leads_and_nothing_else_after_the_origin(options):
    df = frame()
    prep = prep_of(df)
    module = _module(prep, options)
    base = _forecasts(module, prep)
    index = prep.indices["test"]
    k = len(index) // 2
    series, start = index[k]
    origin = prep.panel.times[start + L - 1]
    horizon_end = prep.panel.times[start + L + H - 1]
    name = prep.panel.ids[series]

    later = df.copy()
    after = (later["time"] > origin).to_numpy()
    past_horizon = (later["time"] > horizon_end).to_numpy()
    later.loc[after, ["y", "wind"]] = later.loc[after, ["y", "wind"]] * 3.0 + 500.0
    later.loc[past_horizon, "fc"] = later.loc[past_horizon, "fc"] * -2.0 + 99.0
    moved = _forecasts(module, prep_of(later))
    torch.testing.assert_close(moved[k], base[k])  # same input, same forecast

    inside = df.copy()
    lead = (inside["series"] == name) & (inside["time"] == prep.panel.times[start + L + 2])
    inside.loc[lead, "fc"] += 25.0
    assert not torch.allclose(_forecasts(module, prep_of(inside))[k], base[k])


def test_static_values_move_the_forecast():
    prep = prep_of()
    module = _module(prep, {"decoder": "seq2seq"})
    x, _, series, known, static = datamodule(prep).dataset("test")[np.arange(4)]
    with torch.no_grad():
        assert not torch.allclose(module(x, series, known, static),
                                  module(x, series, known, static + 1.0))


def test_a_net_with_covariates_refuses_a_batch_without_them():
    prep = prep_of()
    module = _module(prep, {})
    x, _, series, known, static = datamodule(prep).dataset("test")[np.arange(2)]
    with pytest.raises(ValueError, match="known inputs"):
        module(x, series, None, static)
    with pytest.raises(ValueError, match="static covariates"):
        module(x, series, known, None)


def test_autoregressive_channels_cannot_read_known_columns():
    prep = prep_of()
    with pytest.raises(ValueError, match="model.channel_independent=true"):
        _module(prep, {"decoder": "autoregressive", "channel_independent": True})


def test_checkpoint_values_rebuild_the_same_net_with_its_backbone():
    prep = prep_of()
    module = _module(prep, {"decoder": "seq2seq", "backbone": "ridge", "backbone_mode": "start"})
    rebuilt = RegLSTM.from_hparams(module.net.hparams())
    rebuilt.load_state_dict(module.net.state_dict())
    assert rebuilt.shapes["known_positions"] == module.net.known_positions
    assert torch.count_nonzero(rebuilt.backbone.weight) > 0
    x, _, series, known, static = datamodule(prep).dataset("test")[np.arange(4)]
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x, series, known, static),
                                   module.net(x, series, known, static))


def test_checkpoint_values_of_an_earlier_version_read_as_no_covariates_no_backbone():
    prep = prepare(to_panel(frame().drop(columns=["elev", "terrain_coast"])), L, H, ["y"])
    hparams = build_module(net_kwargs(prep, {"hidden_size": 4})).net.hparams()
    for later in ("backbone", "known_positions", "n_static"):
        del hparams[later]
    net = RegLSTM.from_hparams(hparams)
    assert net.backbone is None and net.known_positions == [] and net.static_encoder is None


# ------------------------------------------------------------------- backbone and starting point


def test_the_backbone_is_the_forecast_before_training_and_near_exact_here():
    prep = prep_of()
    module = _module(prep, {"decoder": "seq2seq", "backbone": "ridge", "backbone_mode": "start"})
    ds = datamodule(prep).dataset("test")
    x, y, series, known, static = ds[np.arange(len(ds))]
    with torch.no_grad():
        whole = module(x, series, known, static)
        without = module.net(x, series, known, static, backbone=False)
    # the net's last layers start at zero: it adds only its residual (the last value)
    torch.testing.assert_close(without, x[:, -1:, :1].expand(-1, H, -1))
    # y is fc's value plus noise 0.05: the backbone, reading fc over the horizon, finds it
    assert (whole - y).abs().mean() < 0.02 < (without - y).abs().mean()


def test_the_starting_point_is_kept_when_no_epoch_beats_it(tmp_path):
    import pytorch_lightning as pl

    prep = prep_of()
    module = _module(prep, {"backbone": "ridge", "backbone_mode": "start"}).train()
    dataset = datamodule(prep).dataset("val")
    start = StartingPoint.of(module, dataset)
    with torch.no_grad():  # a fit that went wrong
        module.net.out.weight.add_(1.0)
    worse = validation_loss(module, dataset)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    best = str(tmp_path / "best.ckpt")
    trainer.save_checkpoint(best)  # the fit's best epoch
    path, loss, said = start.keep_if_better(module, best, worse)
    assert loss == pytest.approx(start.val_loss) and loss < worse and "No epoch beat" in said
    saved = torch.load(path, weights_only=False)["state_dict"]
    torch.testing.assert_close(saved["net.out.weight"], start.state["net.out.weight"])
    # an epoch that beat the start keeps its own checkpoint
    assert start.keep_if_better(module, best, start.val_loss / 2)[2] is None


@pytest.mark.parametrize("known", [("fc",), ()])
def test_auto_keeps_the_backbone_with_the_lower_validation_loss(known):
    prep = prep_of(known=known)
    dm = datamodule(prep)
    losses = {}
    for kind in ("ridge", "rlinear", "auto"):  # started from the backbone: its forecast
        module = _module(prep, {"backbone": kind, "backbone_mode": "start"})
        losses[kind] = validation_loss(module, dm.dataset("val"))
        if kind == "auto":
            chosen = module.net.backbone.kind
    assert losses["auto"] == pytest.approx(min(losses["ridge"], losses["rlinear"]))
    assert chosen.startswith("ridge" if losses["ridge"] < losses["rlinear"] else "rlinear")


# ------------------------------------------------------------------------------------- baselines


def test_ridge_and_rlinear_read_the_known_inputs():
    with_known, without = prep_of(), prep_of(known=())
    errors = {}
    for label, prep in (("known", with_known), ("past", without)):
        forecasters = scoring.baseline_forecasters(prep, ["ridge", "rlinear"], 24)
        index = prep.indices["test"]
        actual = prep.panel.values[index[:, :1], index[:, 1:2] + L + np.arange(H), 0]
        errors[label] = {name: float(np.abs(f(index)[..., 0] - actual).mean())
                         for name, f in forecasters.items()}
    # y is fc plus noise 0.05: the leads' fc values make ridge near exact
    assert errors["known"]["ridge"] < 0.1 < errors["past"]["ridge"]
    assert errors["known"]["rlinear"] < 0.1 < errors["past"]["rlinear"]


# --------------------------------------------------------------------------- a run (end to end)


@pytest.mark.slow
def test_a_run_with_the_known_column_forecasts_its_future_and_one_without_cannot(tmp_path):
    import forecast

    df = frame(n_steps=900).drop(columns=["elev", "terrain_coast"])
    maes = {}
    for label, known in (("known", ["fc"]), ("past", None)):
        run = forecast.fit(df, targets=["y"], lookback=L, horizon=H, known=known,
                           overrides=["trainer=fast", "threads=1", "model.decoder=seq2seq",
                                      "model.backbone=ridge", "evaluate.baselines=[ridge]"],
                           run_dir=tmp_path / label)
        maes[label] = run.metrics["model"]["mae"]
    assert maes["known"] < 0.1 < maes["past"]


def test_the_day_of_week_is_seven_indicator_columns_monday_first():
    from forecast.data.panel import calendar

    times = pd.date_range("2024-01-01", periods=24 * 8, freq="h", tz="UTC")  # a Monday
    values, names = calendar(times, ["day_of_week"])
    assert names == [f"dow_{d}" for d in range(7)]
    assert (values.sum(axis=1) == 1).all()
    assert values[0].argmax() == 0 and values[24 * 5].argmax() == 5  # Monday, Saturday
    with_hours, _ = calendar(times, ["hour", "day_of_week"])
    assert with_hours.shape == (len(times), 9)
