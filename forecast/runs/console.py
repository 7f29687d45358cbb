"""A quiet console: the lines of the libraries that a user of forecast-train cannot act on are
kept out of it (and out of train.log); everything of this package's own is kept."""

from __future__ import annotations

import logging
import warnings

# Lightning's info lines (the accelerator summary, a product tip, "Restoring states from the
# checkpoint", "Seed set to") say nothing a run's own log does not
LIGHTNING_INFO = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.seed",
                  "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.seed")
WARNINGS = (
    # data.json sits in checkpoints/ before the first checkpoint; the run owns the folder
    r"Checkpoint directory .* exists and is not empty",
    # a deprecation inside Lightning, not in this package
    r".*isinstance\(treespec, LeafSpec\)",
    r"The '\w+_dataloader' does not have many workers",
)


def quiet() -> None:
    for name in LIGHTNING_INFO:
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in WARNINGS:
        warnings.filterwarnings("ignore", message=message)
