"""The sweeper's structured configs, registered in Hydra's ConfigStore when Hydra scans its
plugins: `hydra/sweeper=optuna`, its samplers (`hydra/sweeper/sampler=tpe|gp|cmaes|random|grid|
qmc|bruteforce`) and pruners (`hydra/sweeper/pruner=median|threshold|nop`)."""

# no `from __future__ import annotations`: Hydra imports plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

PROVIDER = "forecast_optuna_sweeper"


@dataclass
class TPESamplerConf:
    _target_: str = "optuna.samplers.TPESampler"
    seed: int | None = None
    n_startup_trials: int = 10
    multivariate: bool = False
    # True for several workers on one study: running trials count as bad guesses, so the
    # workers spread out instead of asking for the same point
    constant_liar: bool = False


@dataclass
class GPSamplerConf:
    _target_: str = "optuna.samplers.GPSampler"
    seed: int | None = None
    n_startup_trials: int = 10
    deterministic_objective: bool = False


@dataclass
class CmaEsSamplerConf:
    _target_: str = "optuna.samplers.CmaEsSampler"
    seed: int | None = None
    n_startup_trials: int = 1
    sigma0: float | None = None
    warn_independent_sampling: bool = True


@dataclass
class RandomSamplerConf:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: int | None = None


@dataclass
class GridSamplerConf:
    """Every combination of the search space, which must then be discrete (choice, range);
    the sweeper passes the grid and caps n_trials at its size."""

    _target_: str = "optuna.samplers.GridSampler"
    _partial_: bool = True
    seed: int | None = None


@dataclass
class QMCSamplerConf:
    _target_: str = "optuna.samplers.QMCSampler"
    seed: int | None = None
    qmc_type: str = "sobol"
    scramble: bool = False


@dataclass
class BruteForceSamplerConf:
    _target_: str = "optuna.samplers.BruteForceSampler"
    seed: int | None = None


@dataclass
class MedianPrunerConf:
    """A trial stops when its val/loss at an epoch is worse than the median of earlier trials'
    at the same epoch; not before n_startup_trials trials have finished, nor in its first
    n_warmup_steps epochs."""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5
    n_warmup_steps: int = 2
    interval_steps: int = 1


@dataclass
class ThresholdPrunerConf:
    """A trial stops as soon as its val/loss leaves [lower, upper]."""

    _target_: str = "optuna.pruners.ThresholdPruner"
    lower: float | None = None
    upper: float | None = None
    n_warmup_steps: int = 0


@dataclass
class NopPrunerConf:
    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.forecast_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    # the sampler and pruner reach the sweeper as configs: it builds the sampler (the grid's
    # needs the search space) and hands the pruner's config to each job
    _recursive_: bool = False
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"},
                                                         {"pruner": "median"}])
    sampler: Any = MISSING
    pruner: Any = MISSING
    # minimize | maximize, or a list of them for a job that returns several objectives
    direction: Any = "minimize"
    # any SQLAlchemy URL (sqlite:///<file>, postgresql://...); null: in memory, not resumable
    storage: Any = None
    study_name: str | None = None
    n_trials: int = 20
    # trials asked for and launched together (run in parallel by a parallel launcher)
    n_jobs: int = 1
    # the share of failed (not pruned) trials of a batch above which the sweep stops
    max_failure_rate: float = 0.0
    # name -> search space in the override grammar (choice, range, interval, tag(log, ...))
    params: dict[str, Any] | None = None


def register() -> None:
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf,
                provider=PROVIDER)
    samplers = {"tpe": TPESamplerConf, "gp": GPSamplerConf, "cmaes": CmaEsSamplerConf,
                "random": RandomSamplerConf, "grid": GridSamplerConf, "qmc": QMCSamplerConf,
                "bruteforce": BruteForceSamplerConf}
    for name, node in samplers.items():
        store.store(group="hydra/sweeper/sampler", name=name, node=node, provider=PROVIDER)
    pruners = {"median": MedianPrunerConf, "threshold": ThresholdPrunerConf,
               "nop": NopPrunerConf}
    for name, node in pruners.items():
        store.store(group="hydra/sweeper/pruner", name=name, node=node, provider=PROVIDER)


register()
