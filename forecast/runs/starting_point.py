"""A net with a linear backbone (`model.backbone=ridge`) starts from the backbone's forecast;
training keeps the epoch with the lowest validation loss, and this keeps the starting point
when no epoch beat it: the recurrent part then adds nothing, and the run says so. So the model
is never worse on validation than the linear map it started from."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from forecast.models import checkpoints
from forecast.models.forecaster import Forecaster


@dataclass
class StartingPoint:
    """The untrained net's weights (the backbone's forecast) and its validation loss."""

    state: dict
    val_loss: float

    @classmethod
    def of(cls, module: Forecaster, dataset, batch_size: int = 1024) -> StartingPoint:
        return cls(copy.deepcopy(module.state_dict()), validation_loss(module, dataset,
                                                                       batch_size))

    def keep_if_better(self, module: Forecaster, best: str | None,
                       best_loss: float) -> tuple[str | None, float, str | None]:
        """After the fit: when no epoch's validation loss beat the start, best.ckpt gets the
        starting weights. -> (best checkpoint, its validation loss, the line that says so or
        None)."""
        if best is None or not best_loss > self.val_loss:
            return best, best_loss, None
        module.load_state_dict(self.state)
        checkpoints.write_weights(best, module.state_dict())
        return best, self.val_loss, (
            f"No epoch beat the linear backbone on validation (val/loss {self.val_loss:.4g} "
            f"before training, {best_loss:.4g} at best after): the forecasts are the "
            "backbone's, the recurrent part adds nothing.")


def validation_loss(module: Forecaster, dataset, batch_size: int = 1024) -> float:
    """The module's loss over the windows of `dataset`, weighted by batch size as Lightning
    averages val/loss."""
    was_training = module.training
    module.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                x, y, *rest = dataset[np.arange(start, min(start + batch_size, len(dataset)))]
                loss = module.loss(module(x, *rest), y)
                total, count = total + float(loss) * len(x), count + len(x)
    finally:
        module.train(was_training)
    return total / max(count, 1)
