"""How training ended, said after the fit; an interrupted run (Ctrl-C, SIGTERM) neither scores
nor marks itself complete, releases its folder, exits non-zero and says how to resume."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from forecast import config
from forecast.runs import runfolder, stopping, train

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN = str(Path(sys.executable).parent / "forecast-train")
FAST = ["data=synthetic", "trainer=fast", "data.n_steps=500", "lookback=24", "horizon=6",
        "model.hidden_size=8", "targets=[temp]"]
# long enough to be still training when the signal comes: many short epochs, no early stop
LONG = ["threads=1", "data=synthetic", "trainer=fast", "data.n_steps=800",
        "model.hidden_size=8", "trainer.max_epochs=100", "early_stopping_patience=1000"]


def _cfg(*overrides: str):
    config.register()
    with initialize_config_module(config_module="forecast.conf", version_base="1.3"):
        return compose("train", overrides=[*FAST, *overrides])


def _stopped_line(caplog) -> str:
    lines = [r.getMessage() for r in caplog.records if r.name == "forecast.scores"
             and r.getMessage().startswith("Training stopped")]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    return lines[0]


# ---- why training stopped ---------------------------------------------------------------------

def test_the_stop_line_names_max_epochs_and_the_epoch_whose_weights_are_used(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    train.run(_cfg("trainer.max_epochs=2"), tmp_path / "run")
    line = _stopped_line(caplog)
    assert line.startswith("Training stopped after epoch 2 of 2: reached trainer.max_epochs=2;")
    assert "the forecasts use epoch " in line and "'s weights (best val/loss " in line


def test_the_stop_line_names_early_stopping_and_its_patience(tmp_path, caplog):
    """patience=0: the first epoch without a better val/loss stops the run; the best epoch is
    then the one before."""
    caplog.set_level(logging.INFO)
    train.run(_cfg("trainer.max_epochs=50", "early_stopping_patience=0"), tmp_path / "run")
    line = _stopped_line(caplog)
    epoch = int(line.split("after epoch ")[1].split(" ")[0])
    assert 1 < epoch < 50, line
    assert f"after epoch {epoch} of 50: early stopping, val/loss had not improved for 1 epoch " \
           "(early_stopping_patience=0)" in line, line
    assert f"the forecasts use epoch {epoch - 1}'s weights" in line, line



def test_patience_counts_validations_when_an_epoch_has_several(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    train.run(_cfg("trainer.max_epochs=50", "early_stopping_patience=1",
                   "+trainer.val_check_interval=0.5"), tmp_path / "run")
    line = _stopped_line(caplog)
    assert "early stopping, val/loss had not improved for 1 validation " \
           "(early_stopping_patience=1)" in line, line

# ---- an interruption --------------------------------------------------------------------------

def test_signals_raise_once_and_put_the_previous_handlers_back():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with stopping.Signals() as signals:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGINT)  # a second one while stopping: noted, ignored
        assert signals.signum == signal.SIGTERM
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_an_interruption_after_the_fit_scores_nothing_and_says_the_python_call(
        tmp_path, monkeypatch):
    """A KeyboardInterrupt while the test windows are scored (the signal can land anywhere):
    no metrics.json, no complete.json, the lock released; from Python, the call that resumes."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "evaluate", interrupted)
    run = tmp_path / "run"
    with pytest.raises(train.Interrupted) as stop:
        train.run(_cfg("trainer.max_epochs=1"), run)
    assert stop.value.code == 1  # no signal was seen: a KeyboardInterrupt raised in the code
    assert (run / "checkpoints" / "last.ckpt").is_file()
    for left_out in ("metrics.json", runfolder.COMPLETE, runfolder.LOCK):
        assert not (run / left_out).exists(), left_out
    assert f"resume=true into '{run}'" in str(stop.value)
    assert isinstance(stop.value, KeyboardInterrupt)  # a caller's `except Exception` stops too
    monkeypatch.undo()
    train.run(_cfg("trainer.max_epochs=1", "resume=true"), run)  # the folder is free again
    assert runfolder.is_complete(run)


def test_a_backtest_resumes_with_folds_it_had_not_reached(tmp_path):
    """Interrupted in its first fold, a backtest has no checkpoint in the later ones: resume=true
    continues the folds that have one and fits the others afresh."""
    run = tmp_path / "run"
    backtest = ("trainer.max_epochs=1", "evaluate.folds=2", "evaluate.baselines=[persistence]")
    train.run(_cfg(*backtest), run)
    (run / "folds" / "1" / "checkpoints" / "last.ckpt").unlink()
    (run / runfolder.COMPLETE).unlink()
    train.run(_cfg(*backtest, "resume=true"), run)
    assert runfolder.is_complete(run)
    assert (run / "folds" / "1" / "checkpoints" / "last.ckpt").is_file()


def test_from_python_the_resume_command_is_the_fit_call(tmp_path):
    cfg = _cfg()
    cfg.data.path = str(tmp_path / "input.parquet")
    said = stopping.resume_command(cfg, tmp_path / "run")
    assert said == (f"forecast.fit({cfg.data.path!r}, targets=['temp'], lookback=24, horizon=6, "
                    f"run_dir={str(tmp_path / 'run')!r}, "
                    'overrides=[<the same overrides>, "resume=true"])')


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(run: Path, signum: int) -> tuple[int, str]:
    """forecast-train in its own process group, sent `signum` once an epoch has been saved."""
    # started as from a terminal: a test run in the background of a non-interactive shell (a CI
    # script's `&`) inherits SIGINT ignored, and forecast-train rightly leaves ignored ones be
    proc = subprocess.Popen([TRAIN, *LONG, f"hydra.run.dir={run}"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=_default_signals)
    try:
        clock = time.monotonic()
        while not (run / "checkpoints" / "last.ckpt").is_file():
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() - clock < 300, "no checkpoint after 300 s"
            time.sleep(0.2)
        time.sleep(0.2)
        os.killpg(proc.pid, signum)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_stops_and_resumes_with_the_command_it_prints(tmp_path, signum,
                                                                         code):
    run = tmp_path / "run"
    returncode, out = _interrupt(run, signum)
    assert returncode == code, out[-3000:]
    assert f"Interrupted by {signal.Signals(signum).name}" in out, out[-3000:]
    for left_out in ("metrics.json", runfolder.COMPLETE, runfolder.LOCK):
        assert not (run / left_out).exists(), left_out
    assert (run / "checkpoints" / "last.ckpt").is_file()
    command = next(line.strip() for line in out.splitlines()
                   if line.strip().startswith("forecast-train "))
    words = shlex.split(command)
    assert words[-2:] == [f"hydra.run.dir={run}", "resume=true"]
    assert words[1:-2] == LONG  # the run's own overrides
    # the printed command resumes the run and completes it
    resumed = subprocess.run([TRAIN, *words[1:]], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout + resumed.stderr
    assert runfolder.is_complete(run) and (run / "metrics.json").is_file()
