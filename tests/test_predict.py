"""forecast-predict: forecasting past the end of the data with a trained run folder.

One tiny synthetic run is trained once for the module; the unit tests call forecast.runs.predict's
functions on it, the error tests damage copies of it, and the slow test runs the console script.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import build_net, inputs_of, net_kwargs
from omegaconf import OmegaConf

from forecast.data import prepared, sources
from forecast.data.panel import to_panel
from forecast.models.forecaster import Forecaster
from forecast.models.network import RegLSTM
from forecast.models.options import training_from_hparams
from forecast.runs import predict, predict_data

BIN = Path(sys.executable).parent
LOOKBACK, HORIZON, N_STEPS = 24, 6, 600
TARGETS = ["temp", "humid"]
TRAIN_ARGS = ["data=synthetic", "trainer=fast", f"data.n_steps={N_STEPS}", f"lookback={LOOKBACK}",
              f"horizon={HORIZON}", f"targets=[{','.join(TARGETS)}]", "model.hidden_size=16",
              "trainer.max_epochs=1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    train = BIN / "forecast-train"
    assert train.is_file(), f"{train} missing: pip install -e ."
    base = tmp_path_factory.mktemp("predict")
    out = base / "run"
    proc = subprocess.run([str(train), *TRAIN_ARGS, f"hydra.run.dir={out}"], cwd=base,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"forecast-train failed:\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-5000:]}"
    return out


@pytest.fixture(scope="module")
def trained(run_dir) -> predict.TrainedRun:
    return predict.load_run(run_dir)


@pytest.fixture(scope="module")
def data_df() -> pd.DataFrame:
    """The run's data as a user's long table [series, time, temp, sun, humid]."""
    return sources.load_synthetic(n_series=3, n_steps=N_STEPS, seed=0)


def _write(df: pd.DataFrame, path: Path) -> Path:
    df.to_parquet(path, index=False) if path.suffix == ".parquet" else df.to_csv(path, index=False)
    return path


# (a) what it forecasts -------------------------------------------------------------------------

def test_future_times_are_last_time_plus_k_steps(trained, data_df):
    table, _ = predict.forecast_run(trained)
    last = data_df["time"].max()
    want = [last + k * pd.Timedelta(hours=1) for k in range(1, HORIZON + 1)]
    for _, one in table.groupby(["series", "target"]):
        assert list(one["time"]) == want
    assert str(table["time"].dt.tz) == "UTC"


def test_future_times_keep_the_timezone():
    last = pd.Timestamp("2021-03-27 22:00", tz="Europe/Paris")  # DST starts that night
    times = predict.future_times(last, "h", 4)
    assert str(times.tz) == "Europe/Paris"
    assert list(times) == [last + pd.Timedelta(hours=k) for k in range(1, 5)]
    assert list(predict.future_times(pd.Timestamp("2020-01-31"), "D", 2)) == \
        [pd.Timestamp("2020-02-01"), pd.Timestamp("2020-02-02")]


def test_one_row_per_series_step_and_target(trained):
    table, history = predict.forecast_run(trained)
    assert list(table.columns) == predict.COLUMNS
    assert len(table) == 3 * HORIZON * len(TARGETS)
    assert sorted(table["series"].unique()) == ["S0", "S1", "S2"]
    assert set(table["target"]) == set(TARGETS)
    assert not table.duplicated(["series", "time", "target"]).any()
    assert table["forecast"].notna().all()
    assert history["time"].max() < table["time"].min()


def test_forecasts_equal_a_forward_pass_on_the_last_window(run_dir, trained, data_df):
    # rebuild the inputs the way training did (prepared.prepare refits the same scaler) and load
    # the weights independently of forecast.runs.predict
    prep = prepared.prepare(to_panel(data_df, "h"), LOOKBACK, HORIZON, TARGETS)
    np.testing.assert_allclose(prep.scaler.mean, trained.description["scaler"]["mean"])
    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    hparams = ckpt["hyper_parameters"]
    model = Forecaster(RegLSTM.from_hparams(hparams["net"]), training_from_hparams(hparams))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    with torch.no_grad():
        scaled = model(torch.from_numpy(inputs_of(prep)[:, -LOOKBACK:])).numpy()  # (N, H, nt)
    want = prep.scaler.inverse(scaled, prep.target_cols)

    table, _ = predict.forecast_run(trained)
    got = table.pivot_table(index=["series", "time"], columns="target", values="forecast")
    got = got[TARGETS].to_numpy().reshape(3, HORIZON, len(TARGETS))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_series_embedding_and_quantiles(trained, data_df, tmp_path):
    # an untrained model with both options: the series ids and the quantile axis must travel
    description = trained.description
    prep = prepared.prepare(to_panel(data_df, "h"), LOOKBACK, HORIZON, TARGETS)
    quantiles = [0.1, 0.5, 0.9]
    model = build_net(**net_kwargs(prep, {"hidden_size": 8, "embedding_dim": 3,
                                                "quantiles": quantiles}))
    frame = predict_data.load_frame(predict_data.data_settings(trained.data),
                                    description["features"])
    panel = predict_data.build_panel(frame, description, "test")
    table = predict.forecast_ahead(model, panel, description, ["hour", "day_of_year"])
    assert list(table.columns) == [*predict.COLUMNS, "q0.1", "q0.5", "q0.9"]
    with torch.no_grad():
        scaled = model(torch.from_numpy(inputs_of(prep)[:, -LOOKBACK:]), torch.arange(3)).numpy()
    want = prepared.to_units(prep, scaled)  # (N, H, nt, Q)
    for j, q in enumerate(quantiles):
        got = table[f"q{q:g}"].to_numpy().reshape(3, HORIZON, len(TARGETS))
        np.testing.assert_allclose(got, want[..., j], rtol=1e-5, atol=1e-4)
    assert (table["forecast"] == table["q0.5"]).all()
    assert (table["q0.1"] <= table["q0.9"]).all()
    predict.write_outputs(table, predict.history_table(panel, TARGETS, 48), tmp_path)
    assert (tmp_path / "plots" / "forecast_temp.png").stat().st_size > 0


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_new_file_with_the_runs_data_gives_the_same_forecast(trained, data_df, tmp_path,
                                                               suffix):
    path = _write(data_df, tmp_path / f"new{suffix}")
    own, _ = predict.forecast_run(trained)
    new, _ = predict.forecast_run(trained, {"path": str(path)})
    pd.testing.assert_frame_equal(new, own, rtol=1e-4)


def test_a_shorter_new_file_forecasts_after_its_own_end(trained, data_df, tmp_path):
    cut = data_df["time"].max() - pd.Timedelta(hours=10)
    extra = data_df.assign(wind=1.0)  # extra columns are ignored
    path = _write(extra[extra["time"] <= cut], tmp_path / "short.parquet")
    table, _ = predict.forecast_run(trained, {"path": str(path)})
    assert table["time"].min() == cut + pd.Timedelta(hours=1)
    assert table["time"].max() == cut + pd.Timedelta(hours=HORIZON)


def test_write_outputs(trained, tmp_path):
    table, history = predict.forecast_run(trained)
    paths = predict.write_outputs(table, history, tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in paths} == {
        "forecast.csv", "forecast.parquet", "plots/forecast_temp.png", "plots/forecast_humid.png"}
    back = pd.read_parquet(tmp_path / "forecast.parquet")
    pd.testing.assert_frame_equal(back, table)
    csv = pd.read_csv(tmp_path / "forecast.csv", parse_dates=["time"])
    assert list(csv.columns) == predict.COLUMNS and len(csv) == len(table)


def test_the_network_is_the_checkpoints_reglstm(run_dir, trained):
    ckpt = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert isinstance(trained.module, RegLSTM) and not trained.module.training
    weights = trained.module.state_dict()
    assert {f"net.{k}" for k in weights} == set(ckpt["state_dict"])
    for key, value in weights.items():
        torch.testing.assert_close(value, ckpt["state_dict"][f"net.{key}"], rtol=0, atol=0)


def test_predict_never_imports_lightning(run_dir, tmp_path):
    # Lightning takes seconds to import; forecast-predict only needs the bare network, on import
    # and through a whole forecast
    code = f"""
import sys
from pathlib import Path
from forecast.runs import predict, predict_data
lightning = ("pytorch_lightning", "lightning", "lightning_fabric")
loaded = lambda: sorted(m for m in sys.modules if m.split(".")[0] in lightning)
assert not loaded(), ("on import", loaded())
table, history = predict.forecast_run(predict.load_run({str(run_dir)!r}))
predict.write_outputs(table, history, Path({str(tmp_path)!r}))
assert not loaded(), ("after a forecast", loaded())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "forecast.csv").is_file()


# (b) errors that say what is wrong -------------------------------------------------------------

def test_missing_run_folder(tmp_path):
    missing = tmp_path / "no_such_run"
    with pytest.raises(FileNotFoundError, match="does not exist") as err:
        predict.load_run(missing)
    assert str(missing) in str(err.value)


@pytest.mark.parametrize("remove, named", [
    (["checkpoints/best.ckpt", "checkpoints/last.ckpt"], "best.ckpt or checkpoints/last.ckpt"),
    ([".hydra/config.yaml"], ".hydra/config.yaml"),
    (["checkpoints/data.json"], "checkpoints/data.json"),
])
def test_incomplete_run_folder(run_dir, tmp_path, remove, named):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    for name in remove:
        (copy / name).unlink()
    with pytest.raises(FileNotFoundError, match="incomplete") as err:
        predict.load_run(copy)
    assert named in str(err.value) and str(copy) in str(err.value)


def test_best_falls_back_to_last(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "checkpoints" / "best.ckpt").unlink()
    assert predict.load_run(copy).checkpoint.name == "last.ckpt"


def test_backtest_run_uses_its_last_fold(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    for fold in ("0", "1"):  # evaluate.folds=2 leaves <run>/folds/<i>/checkpoints
        shutil.copytree(copy / "checkpoints", copy / "folds" / fold / "checkpoints")
    shutil.rmtree(copy / "checkpoints")
    loaded = predict.load_run(copy)
    assert loaded.checkpoint == copy / "folds" / "1" / "checkpoints" / "best.ckpt"


def _damage_checkpoint(run_dir: Path, tmp_path: Path, change) -> Path:
    """A copy of the run whose checkpoints went through change(ckpt)."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    for name in ("best.ckpt", "last.ckpt"):
        path = copy / "checkpoints" / name
        ckpt = torch.load(path, weights_only=True)
        change(ckpt)
        torch.save(ckpt, path)
    return copy


OTHER_RUN = "does not match its data.json"


@pytest.mark.parametrize(("change", "message", "shown"), [
    ({"horizon": 7}, OTHER_RUN, "'horizon': (7, 6)"),
    # same sizes, other meaning: refused rather than forecast from the wrong columns
    ({"target_positions": [2, 0]}, OTHER_RUN, "'target_positions': ([2, 0], [0, 2])"),
    ({"lookback": 5}, OTHER_RUN, "'lookback': (5, "),
    ({"norm_features": 1}, OTHER_RUN, "'norm_features': (1, "),
    ({"warp": 2}, "another version of forecast", "'warp'"),
], ids=["other horizon", "other target", "other lookback", "other features", "unknown argument"])
def test_checkpoint_whose_network_arguments_do_not_fit_the_run(run_dir, tmp_path, change,
                                                               message, shown):
    copy = _damage_checkpoint(run_dir, tmp_path,
                              lambda ckpt: ckpt["hyper_parameters"]["net"].update(change))
    with pytest.raises(ValueError, match=message) as err:
        predict.load_run(copy)
    assert shown in str(err.value)


def test_checkpoint_of_an_older_version_is_refused_by_name(run_dir, tmp_path):
    """A checkpoint written before model.residual existed cannot be rebuilt as it was trained:
    one refusal that names the missing option and says to train again, never today's default."""
    copy = _damage_checkpoint(run_dir, tmp_path,
                              lambda ckpt: ckpt["hyper_parameters"]["net"].pop("residual"))
    with pytest.raises(ValueError, match=r"another version of forecast.*'residual'.*train"):
        predict.load_run(copy)
    assert predict.load_run(run_dir).module.residual is True  # the run itself loads


def test_checkpoint_with_the_instance_norm_alias_loads_as_window_norm_standard(run_dir,
                                                                               tmp_path):
    def aliased(ckpt):
        net = ckpt["hyper_parameters"]["net"]
        net["instance_norm"] = net.pop("window_norm") == "none"  # as 0.1.0 stored it

    copy = _damage_checkpoint(run_dir, tmp_path, aliased)
    assert predict.load_run(copy).module.norm.kind == "standard"


def test_checkpoint_without_network_arguments(run_dir, tmp_path):
    copy = _damage_checkpoint(run_dir, tmp_path, lambda ckpt: ckpt["hyper_parameters"].pop("net"))
    with pytest.raises(ValueError, match="has no hyper_parameters/state_dict"):
        predict.load_run(copy)


def test_checkpoint_whose_weights_do_not_fit(run_dir, tmp_path):
    copy = _damage_checkpoint(run_dir, tmp_path,
                              lambda ckpt: ckpt["state_dict"].pop("net.out.bias"))
    with pytest.raises(ValueError, match="weights do not fit") as err:
        predict.load_run(copy)
    assert "out.bias" in str(err.value)


def test_checkpoint_that_is_not_weights_only(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    for name in ("best.ckpt", "last.ckpt"):
        torch.save({"hyper_parameters": {"net": object()}}, copy / "checkpoints" / name)
    with pytest.raises(ValueError, match="as weights only"):
        predict.load_run(copy)


def test_new_file_with_a_missing_column(trained, data_df, tmp_path):
    path = _write(data_df.drop(columns=["humid", "sun"]), tmp_path / "new.csv")
    with pytest.raises(ValueError, match="run's features") as err:
        predict.forecast_run(trained, {"path": str(path)})
    assert "['sun', 'humid']" in str(err.value)  # the missing ones, listed


def test_new_file_with_another_frequency(trained, data_df, tmp_path):
    every_other = data_df[data_df["time"].dt.hour % 2 == 0]
    path = _write(every_other, tmp_path / "new.csv")
    with pytest.raises(ValueError, match="frequency expected 'h', found '2h'"):
        predict.forecast_run(trained, {"path": str(path)})


def test_new_file_with_unknown_series(trained, data_df, tmp_path):
    renamed = data_df.replace({"series": {"S0": "X9"}})
    path = _write(renamed, tmp_path / "new.parquet")
    with pytest.raises(ValueError, match=r"unknown series \['X9'\], missing series \['S0'\]"):
        predict.forecast_run(trained, {"path": str(path)})


def test_rows_past_the_last_observed_target_are_refused_not_shifted(trained, data_df, tmp_path):
    """The next day's rows appended to the history (targets empty, other columns known): the
    forecast would start after them; refused, naming the rows and where the forecast starts."""
    last = data_df["time"].max()
    future = data_df[data_df["time"] > last - pd.Timedelta(hours=3)].copy()
    future["time"] += pd.Timedelta(hours=3)
    future[TARGETS] = np.nan
    path = _write(pd.concat([data_df, future]), tmp_path / "with_future.parquet")
    first = last + pd.Timedelta(hours=1)
    with pytest.raises(ValueError, match=r"3 time step\(s\) after the last observed") as err:
        predict.forecast_run(trained, {"path": str(path)})
    assert f"from {first} to {last + pd.Timedelta(hours=3)}" in str(err.value)
    assert f"starts at {first}" in str(err.value)
    table, _ = predict.forecast_run(trained, {"path": str(_write(data_df, tmp_path / "a.csv"))})
    assert table["time"].min() == first  # without them: the step after the last target


def test_new_file_shorter_than_the_lookback(trained, data_df, tmp_path):
    path = _write(data_df.groupby("series").head(LOOKBACK - 1), tmp_path / "new.csv")
    with pytest.raises(ValueError, match=f"lookback={LOOKBACK}"):
        predict.forecast_run(trained, {"path": str(path)})


def test_missing_new_file_and_unknown_data_setting(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        predict.forecast_run(trained, {"path": str(tmp_path / "nope.csv")})
    with pytest.raises(ValueError, match="data.pth"):
        predict.forecast_run(trained, {"pth": "x.csv"})


# (c) the console script ----------------------------------------------------------------------

@pytest.mark.slow
def test_forecast_predict_end_to_end(run_dir, tmp_path):
    out = tmp_path / "predict"
    proc = subprocess.run([str(BIN / "forecast-predict"), f"run={run_dir}",
                           f"hydra.run.dir={out}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("forecast.csv", "forecast.parquet", "plots/forecast_temp.png",
                 "plots/forecast_humid.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "plots/forecast_temp.png").read_bytes()[:4] == b"\x89PNG"
    assert len(pd.read_parquet(out / "forecast.parquet")) == 3 * HORIZON * len(TARGETS)
    assert f"Files: {out / 'forecast.csv'}" in proc.stdout


@pytest.mark.slow
def test_forecast_predict_bad_run_exits_2_with_one_message(tmp_path):
    proc = subprocess.run([str(BIN / "forecast-predict"), f"run={tmp_path / 'nope'}",
                           f"hydra.run.dir={tmp_path / 'out'}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    output = proc.stdout + proc.stderr
    assert f"run folder '{tmp_path / 'nope'}' does not exist" in output
    assert "Traceback" not in output


@pytest.mark.slow
def test_a_segment_recurrent_run_trains_and_forecasts_ahead(tmp_path):
    """model=segrnn (with the LSTM cell) through forecast-train on the fast trainer, then
    forecast-predict from its folder: the long-horizon options survive the checkpoint."""
    run = tmp_path / "run"
    args = [a for a in TRAIN_ARGS if not a.startswith("model.")]
    proc = subprocess.run([str(BIN / "forecast-train"), *args, "model=segrnn", "model.cell=lstm",
                           "model.hidden_size=16", "model.channel_embedding=4",
                           "model.segment=12", f"hydra.run.dir={run}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trained = predict.load_run(run)
    net = trained.module
    assert net.parallel is not None and net.channels == len(TARGETS)
    assert net.segments.segment == 12 and isinstance(net.rnn, torch.nn.LSTM)
    out = tmp_path / "predict"
    proc = subprocess.run([str(BIN / "forecast-predict"), f"run={run}", f"hydra.run.dir={out}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = pd.read_parquet(out / "forecast.parquet")
    assert len(table) == 3 * HORIZON * len(TARGETS) and table["forecast"].notna().all()


@pytest.mark.slow
def test_a_folder_from_python_is_the_folder_forecast_train_writes(run_dir, data_df, tmp_path):
    """forecast.fit with the options of this module's forecast-train run: the same files, the
    same config but for the data, and both load through the API as through forecast-predict."""
    import forecast

    options = [a for a in TRAIN_ARGS if a.split("=")[0] not in
               ("data", "data.n_steps", "lookback", "horizon", "targets")]
    fitted = forecast.fit(data_df, targets=TARGETS, lookback=LOOKBACK, horizon=HORIZON,
                          overrides=options, run_dir=tmp_path / "run")

    def files(folder: Path) -> set[str]:
        return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}

    hydra_own = {".hydra/hydra.yaml", ".hydra/overrides.yaml"}
    assert files(fitted.dir) - {"input.parquet"} == files(run_dir) - hydra_own
    ours, theirs = (OmegaConf.load(f / ".hydra/config.yaml") for f in (fitted.dir, run_dir))
    assert {k: v for k, v in ours.items() if k != "data"} == \
        {k: v for k, v in theirs.items() if k != "data"}
    for folder in (fitted.dir, run_dir):
        expected, _ = predict.forecast_run(predict.load_run(folder))
        pd.testing.assert_frame_equal(forecast.load_run(folder).predict(), expected)
