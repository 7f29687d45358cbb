"""Resuming an interrupted run: the checkpoint `resume=` points at, and the check that it
trained the model this run builds."""

from __future__ import annotations

import logging
from pathlib import Path

from forecast.models import checkpoints, options

log = logging.getLogger("forecast.runs.train")


def checkpoint_path(resume, run_dir: Path) -> str | None:
    """The checkpoint `resume` points at: None, true (this run's last.ckpt) or a path."""
    if resume in (None, False):
        return None
    path = run_dir / "checkpoints" / "last.ckpt" if resume is True else Path(str(resume))
    if not path.is_file():
        raise FileNotFoundError(
            f"resume={resume}: no checkpoint at '{path}'. Resume an interrupted run with "
            "hydra.run.dir=<its run folder> resume=true, or give resume=<path to a .ckpt>"
        )
    log.info("resuming from %s", path)
    return str(path)


AFTER_FIT = ("blend_shrink",)  # network options that act only after training


def check_resumed(path: str, hparams: dict) -> None:
    """A resumed run must build the model its checkpoint trained: the same network arguments,
    lr, weight decay and loss. Otherwise the weights would load into a model that differs only in
    meaning (e.g. residual or loss), and the run would silently mix two models."""
    saved = checkpoints.read(path)["hyper_parameters"]
    # as this version stores them (an option's alias resolved); another version's is refused
    source = f"resume: the checkpoint '{path}'"
    net_shapes, net = options.net_from_hparams(saved["net"], source)
    training = options.training_from_hparams(saved, source)
    saved = {"net": {**net_shapes, **options.to_hparams(net)}, **options.to_hparams(training)}
    now = {**hparams, "net": dict(hparams["net"])}
    for name in AFTER_FIT:  # used once the fit is over: the resumed run's own value holds
        saved["net"].pop(name, None)
        now["net"].pop(name, None)
    changed = _differences(saved, now)
    if changed:
        raise ValueError(
            f"resume: the checkpoint '{path}' was trained with other settings (checkpoint vs "
            f"now: {changed}); resume with the run's own config (drop the overrides that "
            "changed) or start a new run"
        )


def _differences(old: dict, new: dict, prefix: str = "") -> dict:
    """{dotted key: (old, new)} wherever two nested dicts differ."""
    out = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out |= _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out[f"{prefix}{key}"] = (a, b)
    return out
