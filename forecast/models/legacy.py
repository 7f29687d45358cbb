"""Checkpoints written by earlier versions: the settings they were trained with where today's
defaults differ, so that they load and resume as they were trained."""

from __future__ import annotations

# before model.residual, every lead was forecast directly; before the long-horizon options,
# the net read every step of every column with no window normalisation
NET = {"residual": False, "window_norm": "none", "channel_independent": False,
       "channel_embedding": 0, "segment": 0}
# before model.loss, training used the MSE; before model.schedule, the plateau schedule
TRAINING = {"loss": "mse", "schedule": "plateau", "warmup_steps": 0}


def upgrade(hparams: dict) -> dict:
    """A checkpoint's hyper_parameters {"net": {...}, "lr", ...} with the settings that an older
    version left out filled in as that version trained them."""
    return {**TRAINING, **hparams, "net": {**NET, **dict(hparams.get("net") or {})}}
