"""Configs a user did not mean, refused before any data is read (forecast/runs/intent.py): a
data.path beside a built-in data set, a key outside the schema with or without `+` (with the
nearest known key), through forecast-train and forecast.fit alike; experiment=... and
hparams_search=... without `+`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import weather_frame

import forecast
from forecast import api
from forecast.runs import intent

FORECAST_TRAIN = Path(sys.executable).parent / "forecast-train"
SMALL = ["data=synthetic", "trainer=fast"]


def _train(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    assert FORECAST_TRAIN.is_file(), f"{FORECAST_TRAIN} missing: pip install -e ."
    return subprocess.run([str(FORECAST_TRAIN), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def _refused(args: list[str], tmp_path: Path, message: str) -> None:
    """forecast-train exits 2 with `message` and writes no run folder (nor anything else)."""
    run = tmp_path / "run"
    proc = _train([*SMALL, f"hydra.run.dir={run}", *args], tmp_path)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert message in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert not run.exists() and not list(tmp_path.iterdir())


def test_a_path_beside_a_built_in_data_set_is_refused(tmp_path):
    _refused(["data.path=mine.csv"], tmp_path,
             "data.path=mine.csv is a file of your own, but data=synthetic (the built-in data "
             "set) is selected: add data=csv to read the file")


def test_a_sweep_with_a_path_beside_a_built_in_data_set_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    proc = _train(["-m", *SMALL, "data.path=mine.csv", "seed=0,1", f"hydra.sweep.dir={sweep}"],
                  tmp_path)
    assert proc.returncode == 2 and "add data=csv" in proc.stderr, proc.stderr[-3000:]
    assert not sweep.exists()


@pytest.mark.parametrize("override", ["modle.hidden_size=3", "+modle.hidden_size=3",
                                      "+model.hiden_size=3", "model.hiden_size=3"])
def test_a_key_outside_the_schema_is_refused_with_the_nearest_key(tmp_path, override):
    _refused([override], tmp_path, "did you mean model.hidden_size=3?")


@pytest.mark.parametrize(("override", "expected"), [
    ("+modle.hidden_size=3", "did you mean model.hidden_size=3?"),
    ("data.split.trainn=0.5", "did you mean data.split.train=0.5?"),
    ("evaluate.spce=scaled", "did you mean evaluate.space=scaled?"),
    ("~model.hiden_size", "did you mean ~model.hidden_size?"),
    ("xyzzy=1", "the keys of the top level: data, early_stopping_patience"),
])
def test_unknown_names_the_key_and_the_fix(override, expected):
    assert expected in intent.unknown(override)


@pytest.mark.parametrize("override", [
    "+trainer.gradient_clip_val=1", "trainer.max_epochs=2", "+logger.prefix=x",
    "logger.save_dir=x", "hydra.run.dir=x", "hydra/launcher=joblib", "data.units.temp=degC",
    "+data.valid_range.temp=[0,100]", "model=gru", "data=csv", "experiment=ltsf",
    "+experiment=ltsf", "hparams_search=optuna", "lookback=24", "seed=0,1",
    "model.hidden_size=3", "data.split.train=0.6"])
def test_known_keys_and_free_form_ones_pass(override):
    assert intent.unknown(override) is None


def test_recipes_are_chosen_with_or_without_plus(tmp_path):
    for recipe in ("experiment=ltsf", "+experiment=ltsf"):
        proc = _train([recipe, "data.path=mine.csv", "--cfg", "job"], tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "name: segrnn" in proc.stdout and "space: scaled" in proc.stdout
        assert "early_stopping_patience: 10" in proc.stdout  # the recipe wins over train.yaml
    proc = _train(["hparams_search=optuna", "--cfg", "hydra"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OptunaSweeper" in proc.stdout
    assert intent.overrides(["experiment=ltsf", "+hparams_search=optuna", "seed=1"]) == \
        ["+experiment=ltsf", "+hparams_search=optuna", "seed=1"]


def test_check_refuses_only_a_path_given_with_a_built_in_data_set():
    from omegaconf import OmegaConf

    for name in intent.BUILT_IN:
        intent.check(OmegaConf.create({"data": {"name": name, "path": None}}))
        with pytest.raises(ValueError, match=f"data={name} .*add data=csv"):
            intent.check(OmegaConf.create({"data": {"name": name, "path": "mine.csv"}}))
    intent.check(OmegaConf.create({"data": {"name": "csv", "path": "mine.csv"}}))


@pytest.mark.parametrize("override", ["modle.hidden_size=3", "+model.hiden_size=3"])
def test_fit_refuses_a_key_outside_the_schema(tmp_path, override):
    frame = weather_frame(2, 100)
    with pytest.raises(ValueError, match=r"did you mean model\.hidden_size=3\?"):
        forecast.fit(frame, targets="temp", lookback=8, horizon=2, overrides=[override],
                     run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_fit_chooses_a_recipe_without_plus(tmp_path):
    cfg, _ = api._compose(["experiment=ltsf"], tmp_path / "run")
    assert cfg.model.name == "segrnn" and cfg.evaluate.space == "scaled"
