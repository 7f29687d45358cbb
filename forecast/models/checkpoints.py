"""Reading a run's checkpoints safely: weights only (tensors and plain values, so a checkpoint
from elsewhere cannot run code), a broken or foreign file refused by name, and the checksum of
the run's data.json that each checkpoint records (a hand-edited scaler is caught)."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch

DIGEST = "data_json_sha256"  # the checkpoint key holding data.json's checksum


def read(path: str | Path) -> dict:
    """A forecast-train checkpoint as a dict, read with weights_only=True."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise ValueError(f"cannot load checkpoint '{path}' as weights only ({first}); it is "
                         "truncated or not a forecast-train checkpoint") from None
    if (not isinstance(ckpt, dict) or "hyper_parameters" not in ckpt or "state_dict" not in ckpt
            or "net" not in ckpt["hyper_parameters"]):
        raise ValueError(f"checkpoint '{path}' has no hyper_parameters/state_dict: it is not a "
                         "forecast-train checkpoint")
    return ckpt


def digest(path: Path) -> str:
    """sha256 of a file's bytes (the run's checkpoints/data.json)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_digest(ckpt: dict, ckpt_path: Path, data_json: Path) -> None:
    """Refuse a data.json that differs from the one the checkpoint was trained with. Checkpoints
    written before the checksum existed carry none and are taken as they are."""
    recorded = ckpt.get(DIGEST)
    if recorded is not None and recorded != digest(data_json):
        raise ValueError(
            f"'{data_json}' has changed since '{ckpt_path}' was trained (its sha256 differs "
            "from the one the checkpoint recorded): the scaler and layout would not match the "
            "weights. Restore the run's own data.json, or re-run forecast-train")


def write_weights(path: str | Path, state: dict) -> None:
    """Put `state` (a module's state dict) in place of the weights of the checkpoint at path,
    everything else kept (hyper-parameters, data.json's checksum, the trainer's state); written
    to a temporary file first, so an interrupted write leaves the old checkpoint. Rank 0 calls
    it alone after a DDP fit: unlike Trainer.save_checkpoint, it waits for no other rank."""
    path = Path(path)
    ckpt = read(path)
    ckpt["state_dict"] = {k: v.detach().cpu().clone() for k, v in state.items()}
    partial = path.with_name(path.name + ".partial")
    torch.save(ckpt, partial)
    partial.replace(path)
