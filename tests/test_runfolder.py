"""One owner per run folder: the lock, the refusal of a fresh run over an earlier one, the
complete mark, and forecast-predict's refusal of a run that did not finish."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from forecast import config
from forecast.models import checkpoints
from forecast.models.network import RegLSTM
from forecast.runs import predict, resume, runfolder, train

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["data=synthetic", "trainer=fast", "data.n_steps=500", "lookback=24", "horizon=6",
        "model.hidden_size=8", "targets=[temp]", "trainer.max_epochs=1"]


def _cfg(*overrides: str):
    config.register()
    with initialize_config_module(config_module="forecast.conf", version_base="1.3"):
        return compose("train", overrides=[*FAST, *overrides])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run = tmp_path_factory.mktemp("owned") / "run"
    cfg = _cfg()
    train.run(cfg, run)  # from Python: no Hydra around it to write .hydra/
    return run


def test_a_finished_run_is_marked_and_leaves_no_lock(finished):
    assert (finished / runfolder.COMPLETE).is_file()
    assert not (finished / runfolder.LOCK).exists()
    assert runfolder.is_complete(finished)


def test_a_run_from_python_writes_its_config_and_loads_for_forecasting(finished):
    saved = OmegaConf.load(finished / ".hydra" / "config.yaml")
    assert saved == _cfg()
    trained = predict.load_run(finished)
    assert trained.description["targets"] == ["temp"] and trained.data.name == "synthetic"


def test_a_fresh_run_into_a_folder_with_a_run_is_refused(finished):
    best = finished / "checkpoints" / "best.ckpt"
    before = (best.read_bytes(), (finished / "metrics.json").read_text())
    with pytest.raises(ValueError, match="holds an earlier run .*resume=true.*hydra.run.dir"):
        train.run(_cfg("seed=1"), finished)
    assert (best.read_bytes(), (finished / "metrics.json").read_text()) == before
    assert runfolder.is_complete(finished)  # the refused run took nothing over


def test_a_folder_written_by_a_live_run_is_refused(tmp_path):
    holder = subprocess.Popen(["sleep", "60"])
    try:
        run = tmp_path / "run"
        run.mkdir()
        (run / runfolder.LOCK).write_text(json.dumps(
            {"pid": holder.pid, "host": os.uname().nodename, "started": "now"}))
        with pytest.raises(ValueError, match=f"in use by process {holder.pid}"):
            with runfolder.claim(run, resume=True):
                pass
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale and the folder can be taken
    with runfolder.claim(run, resume=None):
        assert json.loads((run / runfolder.LOCK).read_text())["pid"] == os.getpid()
    assert not (run / runfolder.LOCK).exists()


def test_a_resumed_run_is_incomplete_once_it_trains(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    runfolder.mark_complete(run)
    with runfolder.claim(run, resume=True):
        assert runfolder.is_complete(run)  # nothing changed yet (a refused resume keeps it)
        runfolder.mark_complete(run, False)  # what a resume does before it trains
    assert not runfolder.is_complete(run)
    with pytest.raises(ValueError, match="holds an earlier run"):
        with runfolder.claim(run, resume=False):
            pass


def test_an_impossible_run_folder_is_named(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ValueError, match="cannot create the run folder '.*file/run'"):
        with runfolder.claim(tmp_path / "file" / "run", resume=None):
            pass


def test_forecast_predict_refuses_a_run_that_did_not_finish(finished, tmp_path, caplog):
    killed = tmp_path / "killed"
    shutil.copytree(finished, killed)
    (killed / runfolder.COMPLETE).unlink()
    (killed / runfolder.LOCK).write_text("{}")  # what a killed run leaves behind
    with pytest.raises(ValueError, match="has not finished.*resume=true.*allow_incomplete"):
        predict.load_run(killed)
    with caplog.at_level(logging.WARNING, logger="forecast.runs.predict"):
        trained = predict.load_run(killed, allow_incomplete=True)
    assert trained.checkpoint.is_file()
    assert any("allow_incomplete" in r.getMessage() for r in caplog.records)
    assert predict.load_run(finished).checkpoint.name == "best.ckpt"


class _Payload:
    """Unpickling this would run code of the checkpoint's choosing."""

    def __reduce__(self):
        return (os.system, ("echo owned",))


@pytest.mark.parametrize("damage", ["truncated", "foreign", "hostile"])
def test_resume_refuses_a_broken_or_foreign_checkpoint_by_name(finished, tmp_path, damage):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    last = run / "checkpoints" / "last.ckpt"
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[:2000])
    elif damage == "foreign":
        torch.save({"weights": torch.zeros(3)}, last)
    else:
        torch.save({"hyper_parameters": {"net": {}}, "state_dict": _Payload()}, last)
    with pytest.raises(ValueError, match=f"checkpoint '{last}'") as info:
        train.run(_cfg("resume=true"), run)
    assert "weights_only=False" not in str(info.value)
    assert "truncated or not a forecast-train checkpoint" in str(info.value) or \
        "not a forecast-train checkpoint" in str(info.value)


def test_a_hand_edited_data_json_is_refused(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    data_json = run / "checkpoints" / "data.json"
    description = json.loads(data_json.read_text())
    assert torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)[
        checkpoints.DIGEST] == checkpoints.digest(data_json)
    description["scaler"]["mean"][0] += 50.0
    data_json.write_text(json.dumps(description))
    with pytest.raises(ValueError, match="data.json' has changed since .*best.ckpt"):
        predict.load_run(run)


def test_an_impossible_folder_is_named_before_anything_starts(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    problem = runfolder.unusable(tmp_path / "file" / "runs" / "1")
    assert f"'{tmp_path / 'file'}' is a file" in problem and "hydra.run.dir" in problem
    assert runfolder.unusable(tmp_path / "new" / "run") is None
    assert runfolder.asked_folder(["model=gru", f"hydra.run.dir={tmp_path}"]) == tmp_path
    assert runfolder.asked_folder(["-m", "hydra.run.dir=a", "hydra.sweep.dir=b"]) == Path("b")
    assert runfolder.asked_folder([]) == Path("outputs")


@pytest.mark.slow
def test_forecast_train_into_a_folder_under_a_file_exits_2_with_one_message(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    done = subprocess.run([str(Path(sys.executable).parent / "forecast-train"),
                           f"hydra.run.dir={tmp_path / 'file' / 'run'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"forecast-train: cannot use the run folder '{tmp_path / 'file' / 'run'}': "
        f"'{tmp_path / 'file'}' is a file; choose another with hydra.run.dir=<folder> "
        "(hydra.sweep.dir=<folder> for -m)"]
    assert "Traceback" not in done.stdout + done.stderr


def test_a_resume_that_fails_leaves_the_run_marked_unfinished(finished, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(finished, run)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # killed while training again

    monkeypatch.setattr(pl.Trainer, "fit", crash)
    with pytest.raises(KeyboardInterrupt):
        train.run(_cfg("resume=true", "trainer.max_epochs=2"), run)
    assert not runfolder.is_complete(run) and not (run / runfolder.LOCK).exists()
    with pytest.raises(ValueError, match="has not finished"):
        predict.load_run(run)


def test_a_refused_resume_leaves_the_finished_run_as_it_was(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    with pytest.raises(ValueError, match="trained with other settings"):
        train.run(_cfg("resume=true", "model.loss=mse"), run)
    assert runfolder.is_complete(run)



def test_a_checkpoint_from_before_blend_shrink_resumes_under_the_new_default(finished, tmp_path):
    """model.blend_shrink acts after the fit: an older checkpoint (read as 0) resumes with the
    run's own config, whose default is now 0.5; a change to what training uses is refused."""
    last = tmp_path / "last.ckpt"
    ckpt = torch.load(finished / "checkpoints" / "last.ckpt", weights_only=True)
    now = {**ckpt["hyper_parameters"], "net": dict(ckpt["hyper_parameters"]["net"])}
    assert now["net"]["blend_shrink"] == 0.5
    del ckpt["hyper_parameters"]["net"]["blend_shrink"]
    torch.save(ckpt, last)
    resume.check_resumed(str(last), now)
    with pytest.raises(ValueError, match="trained with other settings"):
        resume.check_resumed(str(last), {**now, "net": {**now["net"], "hidden_size": 99}})

def test_a_checkpoint_from_before_the_long_horizon_options_is_refused(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    last = run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    for key in ("window_norm", "channel_independent", "channel_embedding", "segment"):
        ckpt["hyper_parameters"]["net"].pop(key)
    for key in ("schedule", "warmup_steps"):
        ckpt["hyper_parameters"].pop(key)
    torch.save(ckpt, last)
    with pytest.raises(ValueError, match=r"another version of forecast.*'channel_independent'"):
        train.run(_cfg("resume=true", "trainer.max_epochs=2"), run)


def test_a_channel_independent_run_reads_its_targets_alone_and_forecasts_ahead(tmp_path,
                                                                               monkeypatch):
    widths = []
    forward = RegLSTM.forward

    def recording(self, x, series=None, *covariates, **options):
        widths.append(x.shape[-1])
        return forward(self, x, series, *covariates, **options)

    monkeypatch.setattr(RegLSTM, "forward", recording)
    run = tmp_path / "run"
    train.run(_cfg("model=segrnn", "model.channel_embedding=2"), run)
    # training, validation and the test forecasts: batches of the one target column
    assert len(widths) > 10 and set(widths) == {1}
    trained = predict.load_run(run)
    assert len(trained.description["input_names"]) > 1
    widths.clear()
    table, _ = predict.forecast_run(trained)  # forecast-predict's window holds every input
    assert set(widths) == {len(trained.description["input_names"])}
    assert len(table) == 6 * len(trained.description["ids"]) and table["forecast"].notna().all()


def test_an_unfinished_backtest_is_an_earlier_run(tmp_path):
    run = tmp_path / "run"
    (run / "folds" / "0" / "checkpoints").mkdir(parents=True)
    (run / "folds" / "0" / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert runfolder.holds_a_run(run) == [str(Path("folds/0/checkpoints/last.ckpt"))]
    with pytest.raises(ValueError, match="holds an earlier run"):
        with runfolder.claim(run, resume=None):
            pass


def test_a_lock_of_another_machine_is_respected(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / runfolder.LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere",
                                                  "started": "now"}))
    with pytest.raises(ValueError, match=r"in use by process 1 on elsewhere.*delete"):
        with runfolder.claim(run, resume=True):
            pass
