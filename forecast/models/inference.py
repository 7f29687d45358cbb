"""A trained Forecaster applied to windows: test forecasts through the Trainer, gate values."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch

from forecast.data.windows import PanelDataModule
from forecast.models.forecaster import Forecaster


def forecast(trainer: pl.Trainer, module: Forecaster, dm: PanelDataModule, ckpt_path=None):
    """Scaled forecasts (K, H, n_targets) for the test windows, in index order."""
    batches = trainer.predict(module, datamodule=dm, ckpt_path=ckpt_path)
    return torch.cat(batches).numpy()


def gate_activations(module: Forecaster, dm: PanelDataModule, max_windows: int = 2000) -> dict:
    """Gate values of a ManualLSTM (an ensemble's first member) over (up to max_windows evenly
    spread) test windows: {"forget", "input", "output"} -> (K, L, hidden) arrays; empty for
    other cells."""
    net = module.net if module.net.members is None else module.net.members[0]  # the first's
    rnn = net.rnn
    if not hasattr(rnn, "record_gates"):
        return {}
    ds = dm.dataset("test")
    pick = np.linspace(0, len(ds) - 1, min(max_windows, len(ds))).astype(np.int64)
    x, _, series, *covariates = ds[pick.tolist()]
    rnn.record_gates, was_training = True, module.training
    module.eval()
    try:
        with torch.no_grad():  # the encoder pass over the lookback only, not a decoder rollout
            rnn(net.encoder_inputs(x, series, *covariates))
        return {k: v.numpy() for k, v in rnn.gates.items() if k != "candidate"}
    finally:
        rnn.record_gates = False
        module.train(was_training)
