"""The CSV learning log (logs/metrics.csv) of a resumed fit: Lightning's CSV logger starts its
file afresh, so the epochs before the checkpoint are read first and put back in front after."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytorch_lightning as pl

from forecast.models import checkpoints


def _csv_log(trainer: pl.Trainer) -> Path | None:
    logger = trainer.logger
    if isinstance(logger, pl.loggers.CSVLogger):
        return Path(logger.log_dir) / "metrics.csv"
    return None


def earlier_log(trainer: pl.Trainer, ckpt_path: str | None) -> pd.DataFrame | None:
    """On resume, the CSV learning log of the epochs up to the checkpoint's (the logger starts
    its file afresh; rows after the checkpoint are trained again)."""
    path = _csv_log(trainer)
    if not ckpt_path or path is None or not path.is_file():
        return None
    rows, ckpt = pd.read_csv(path), checkpoints.read(ckpt_path)
    if "global_step" in ckpt and "step" in rows:  # a checkpoint may be saved within an epoch
        return rows[rows["step"] < ckpt["global_step"]]
    return rows[rows["epoch"] <= ckpt.get("epoch", -1)]


def continue_log(trainer: pl.Trainer, earlier: pd.DataFrame | None) -> None:
    """Put the epochs before a resume back in front of the resumed run's learning log."""
    path = _csv_log(trainer)
    if earlier is None or path is None or not path.is_file():
        return
    pd.concat([earlier, pd.read_csv(path)], ignore_index=True).to_csv(path, index=False)
