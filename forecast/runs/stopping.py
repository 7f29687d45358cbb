"""How a fit ended, and a run stopped by a signal.

`why_stopped` is the one line a run says after its fit: why training stopped (early stopping,
trainer.max_epochs, trainer.max_steps, ...) and which epoch's weights the forecasts use.
`Signals` turns Ctrl-C (SIGINT) and a scheduler's SIGTERM into one path for the length of a
run: the run ends with `Interrupted` (no scores, not complete, its checkpoints kept), whose
message is the command that resumes it.
"""

from __future__ import annotations

import shlex
import signal
import threading
from pathlib import Path

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from forecast.models import checkpoints
from forecast.runs.runfolder import Interrupted

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal, as a shell reports


class FitInterrupted(KeyboardInterrupt):
    """An interrupted fit, raised after Lightning has handled the interruption (Lightning ends
    the fit with sys.exit, or returns with the trainer's status INTERRUPTED)."""


class Signals:
    """For the length of the block, SIGINT and SIGTERM are noted and raise KeyboardInterrupt
    once (a second one while the run stops is ignored); the previous handlers are put back
    after. A signal the process ignores stays ignored; outside the main thread nothing is
    installed."""

    def __init__(self):
        self.signum: int | None = None
        self.finished = False  # set once the run is complete: a late signal changes nothing
        self._previous: dict = {}

    def __enter__(self) -> Signals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            if previous in (signal.SIG_IGN, None):
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._caught)
        return self

    def _caught(self, signum, frame) -> None:
        if self.signum is not None or self.finished:
            return
        self.signum = signum
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raise KeyboardInterrupt if a signal arrived and something swallowed its exception."""
        if self.signum is not None:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> bool:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
        return False


def fit(trainer: pl.Trainer, *args, **kwargs) -> None:
    """trainer.fit, an interrupted fit raised as FitInterrupted whichever way Lightning ends it
    (sys.exit(1) after a KeyboardInterrupt, SIGTERMException, or a normal return)."""
    try:
        trainer.fit(*args, **kwargs)
    except SystemExit:
        if not trainer.interrupted:
            raise
        raise FitInterrupted(_at(trainer)) from None
    if trainer.interrupted:
        raise FitInterrupted(_at(trainer))


def _at(trainer: pl.Trainer) -> str:
    of = f" of {trainer.max_epochs}" if (trainer.max_epochs or -1) > 0 else ""
    return f"in epoch {trainer.current_epoch + 1}{of}"


def why_stopped(trainer: pl.Trainer) -> str:
    """'Training stopped after epoch 5 of 30: early stopping, val/loss had not improved for 3
    epochs; the forecasts use epoch 2's weights (best val/loss 0.1569).' Epochs count from 1;
    trainer.current_epoch after a fit is the number of epochs trained."""
    epochs, most = trainer.current_epoch, trainer.max_epochs
    of = f" of {most}" if most is not None and most > 0 else ""
    return f"Training stopped after epoch {epochs}{of}: {_reason(trainer)}; " \
           f"{_weights(trainer)}."


def _reason(trainer: pl.Trainer) -> str:
    stop = trainer.early_stopping_callback
    if stop is not None and trainer.should_stop and (stop.stopped_epoch > 0 or
                                                     stop.wait_count >= stop.patience):
        if stop.wait_count >= stop.patience:
            unit = "epoch" if _checks_per_epoch(trainer) == 1 else "validation"
            return f"early stopping, {stop.monitor} had not improved for {stop.wait_count} " \
                   f"{unit}{'s' * (stop.wait_count != 1)} (early_stopping_patience=" \
                   f"{stop.patience})"
        return f"early stopping: {getattr(stop, 'stopping_reason_message', None) or 'stopped'}"
    if trainer.max_steps is not None and 0 <= trainer.max_steps <= trainer.global_step:
        return f"reached trainer.max_steps={trainer.max_steps}"
    if trainer.max_epochs is not None and 0 <= trainer.max_epochs <= trainer.current_epoch:
        return f"reached trainer.max_epochs={trainer.max_epochs}"
    timer = next((c for c in trainer.callbacks if isinstance(c, pl.callbacks.Timer)), None)
    if timer is not None and (timer.time_remaining() or 0) <= 0:
        return "reached trainer.max_time"
    if trainer.should_stop:
        return "a callback asked the trainer to stop"
    return "the fit ended"


def _checks_per_epoch(trainer: pl.Trainer) -> float:
    """How many validations an epoch has: trainer.val_check_interval a fraction of an epoch
    (1.0: one at its end) or a count of batches."""
    interval, every = trainer.val_check_interval, trainer.check_val_every_n_epoch or 1
    if isinstance(interval, float):
        return 1.0 / (interval * every)
    return trainer.num_training_batches / interval / every


def _weights(trainer: pl.Trainer) -> str:
    saver = trainer.checkpoint_callback
    best = getattr(saver, "best_model_path", None)
    if not best or not Path(best).is_file():
        return "the forecasts use the last epoch's weights (no validation loss chose others)"
    epoch = checkpoints.read(best).get("epoch")
    which = f"epoch {epoch + 1}'s" if isinstance(epoch, int) else "the best checkpoint's"
    score = saver.best_model_score
    scored = f" (best {saver.monitor} {float(score):.4f})" if score is not None else ""
    return f"the forecasts use {which} weights{scored}"


def interrupted(signum: int | None, error: BaseException, cfg: DictConfig,
                run_dir: Path) -> Interrupted:
    """The Interrupted of a run in run_dir: where it stopped, what it left, how to resume it."""
    name = signal.Signals(signum).name if signum else "an interruption"
    where = f" {error}" if isinstance(error, FitInterrupted) and str(error) else ""
    resumable = [*run_dir.glob("checkpoints/last.ckpt"),
                 *run_dir.glob("folds/*/checkpoints/last.ckpt")]
    if resumable:
        left = "no scores were written and the run is not complete; its checkpoints are kept"
        how = "Resume it with"
    else:
        left = "no epoch had finished, so there is no checkpoint to resume from"
        how = "Start it again with"
    message = (f"Interrupted by {name}{where}: {left}. {how}:\n  "
               f"{resume_command(cfg, run_dir, bool(resumable))}")
    return Interrupted(message, EXIT_CODES.get(signum, 1))


def resume_command(cfg: DictConfig, run_dir: Path, resume: bool = True) -> str:
    """forecast-train's command line that continues the run in run_dir (its own overrides), or
    the Python call for a run started with forecast.fit."""
    tail = ["resume=true"] if resume else []
    if _under_hydra(run_dir):
        task = [o for o in HydraConfig.get().overrides.task
                if o.lstrip("+~").split("=", 1)[0] != "resume"]
        words = ["forecast-train", *task, f"hydra.run.dir={run_dir}", *tail]
        return " ".join(shlex.quote(str(w)) for w in words)
    if cfg.data.path is None:  # a built-in data set, run from Python without forecast.fit
        return f"the same run with resume=true into '{run_dir}'" if resume else \
            f"the same run into '{run_dir}'"
    targets = list(cfg.targets) if not isinstance(cfg.targets, str) else cfg.targets
    extra = ', "resume=true"' if resume else ""
    return (f"forecast.fit({str(cfg.data.path)!r}, targets={targets!r}, "
            f"lookback={cfg.lookback}, horizon={cfg.horizon}, run_dir={str(run_dir)!r}, "
            f"overrides=[<the same overrides>{extra}])")


def _under_hydra(run_dir: Path) -> bool:
    """A run that forecast-train started (its Hydra config set, with this run folder)."""
    if not HydraConfig.initialized():
        return False
    try:
        return Path(HydraConfig.get().runtime.output_dir).resolve() == run_dir.resolve()
    except Exception:  # noqa: BLE001 (a composed config without runtime values)
        return False
