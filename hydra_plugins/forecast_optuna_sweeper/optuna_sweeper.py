"""The Sweeper plugin Hydra finds; the sweep itself (and Optuna's import) is in `_impl`."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    """`hydra/sweeper=optuna`: conf/hparams_search/optuna.yaml and docs/sweeps.md."""

    def __init__(self, sampler: Any, pruner: Any, direction: Any, storage: Any,
                 study_name: str | None, n_trials: int, n_jobs: int, max_failure_rate: float,
                 params: DictConfig | None) -> None:
        from ._impl import OptunaSweeperImpl

        self.sweeper = OptunaSweeperImpl(sampler, pruner, direction, storage, study_name,
                                         n_trials, n_jobs, max_failure_rate, params)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function,
                           config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
