"""The Optuna sweep: the search space from override strings, the study in its storage, trials
asked for in batches of n_jobs and launched as Hydra jobs, their objectives (or their pruning,
or their failure) told back to the study."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

log = logging.getLogger(__name__)

# The environment variable through which a job learns its trial (forecast.runs.pruning reads
# it): JSON {storage, study, trial_id, number, pruner}. Set with hydra.job.env_set, which is
# not a task override, so it names no job folder and no leaderboard row.
TRIAL_ENV = "FORECAST_OPTUNA_TRIAL"
STOP_OUTSIDE_OPTIMIZE = "`Study.stop` is supposed to be invoked inside"


def _choices(override: Override) -> list:
    choices = []
    for value in override.sweep_iterator(transformer=Transformer.encode):
        if not isinstance(value, (str, int, float, bool, type(None))):
            raise ValueError(f"{override.input_line}: a choice is a str, int, float, bool or "
                             f"null, not {type(value).__name__}")
        choices.append(value)
    return choices


def distribution(override: Override) -> BaseDistribution | None:
    """The Optuna distribution of a sweep override; None for a plain value.

    choice(a, b, ...) and shuffle(range(...)): categorical; range(start, stop[, step]): the
    values Hydra's range gives (stop excluded), int or float with that step; interval(lo, hi):
    float, int(interval(lo, hi)) int, tag(log, interval(...)) on a log scale."""
    if not override.is_sweep_override():
        return None
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        return CategoricalDistribution(_choices(override))
    if override.is_range_sweep():
        start, stop, step = value.start, value.stop, value.step
        if step <= 0 or stop <= start:
            raise ValueError(f"{override.input_line}: an empty range")
        if any(isinstance(v, float) for v in (start, stop, step)):
            count = math.ceil((stop - start) / step - 1e-9)
            return FloatDistribution(start, round(start + (count - 1) * step, 12), step=step)
        count = len(range(int(start), int(stop), int(step)))
        return IntDistribution(int(start), int(start) + (count - 1) * int(step), step=int(step))
    if override.is_interval_sweep():
        on_log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=on_log)
        return FloatDistribution(float(value.start), float(value.end), log=on_log)
    raise ValueError(f"{override.input_line}: Optuna samples choice, range and interval "
                     "sweeps only")


def search_space(overrides: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """Override strings -> (name -> distribution, name -> plain override string). A later
    override of a name wins, so the command line (after hydra.sweeper.params) can fix a
    parameter or change its range."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        name = override.get_key_element()
        space.pop(name, None)
        fixed.pop(name, None)
        found = distribution(override)
        if found is None:
            fixed[name] = override.input_line
        else:
            space[name] = found
    return space, fixed


def grid(space: dict[str, BaseDistribution]) -> dict[str, list]:
    """GridSampler's search space: every distribution must be discrete."""
    values = {}
    for name, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            values[name] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            values[name] = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            count = round((dist.high - dist.low) / dist.step) + 1
            values[name] = [round(dist.low + i * dist.step, 12) for i in range(count)]
        else:
            raise ValueError(f"the grid sampler needs choice(...) or range(...) for {name}, "
                             "not an interval")
    return values


def encode(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def absolute(url: str) -> str:
    """A relative SQLite path made absolute, so that jobs running elsewhere (another working
    directory, a cluster node) open the same file; other URLs unchanged."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix:
        return prefix + str(Path(url[len(prefix):]).resolve())
    return url


def open_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """The study's storage; SQLite waits for another process's write instead of failing, and
    a first open that races another process's creating the tables is tried again."""
    if url is None:
        return None
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": 120}
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except sqlalchemy.exc.SQLAlchemyError:
            if attempt == 4:
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def shown(url: str | None) -> str:
    if url is None:
        return "in memory (not kept; set hydra.sweeper.storage to resume)"
    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)


class OptunaSweeperImpl:
    def __init__(self, sampler: Any, pruner: Any, direction: Any, storage: Any,
                 study_name: str | None, n_trials: int, n_jobs: int, max_failure_rate: float,
                 params: DictConfig | None) -> None:
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ValueError(f"hydra.sweeper.max_failure_rate={max_failure_rate}: between 0 "
                             "and 1")
        if n_jobs < 1 or n_trials < 0:
            raise ValueError(f"hydra.sweeper.n_jobs={n_jobs} must be at least 1 and "
                             f"n_trials={n_trials} not negative")
        self.sampler_conf = sampler
        self.pruner_conf = pruner
        directions = direction if OmegaConf.is_list(direction) or isinstance(
            direction, list) else [direction]
        self.directions = [str(d) for d in directions]
        self.storage = absolute(str(storage)) if storage is not None else None
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.params = params
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def sweep(self, arguments: list[str]) -> None:
        params = [f"{name}={value}" for name, value in (self.params or {}).items()]
        space, fixed = search_space([*params, *arguments])
        sampler = instantiate(self.sampler_conf)
        n_trials = self.n_trials
        size = None
        if not isinstance(sampler, optuna.samplers.BaseSampler):  # grid: a partial
            points = grid(space)
            sampler = sampler(points)
            size = math.prod(len(v) for v in points.values())
        pruner = OmegaConf.to_container(self.pruner_conf, resolve=True)
        study = optuna.create_study(
            study_name=self.study_name, storage=open_storage(self.storage), sampler=sampler,
            pruner=instantiate(pruner), directions=self.directions, load_if_exists=True)
        before = len(study.trials)
        if size is not None and size - before < n_trials:
            # a resumed grid adds only the points it has not tried (else it repeats them)
            log.info("Grid of %d points, %d tried: n_trials %d -> %d", size, before, n_trials,
                     max(0, size - before))
            n_trials = max(0, size - before)
        log.info("Study %s in %s: %d trials so far; sampler %s, pruner %s, directions %s",
                 study.study_name, shown(self.storage), before, type(sampler).__name__,
                 type(study.pruner).__name__, self.directions)
        if self.storage is None:
            log.info("Pruning is off: the jobs cannot reach an in-memory study")

        to_go = n_trials
        while to_go > 0:
            batch = min(to_go, self.n_jobs)
            trials = [study.ask(fixed_distributions=space) for _ in range(batch)]
            overrides = [self._overrides(study, trial, fixed, pruner) for trial in trials]
            returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            failed = []
            for trial, ret in zip(trials, returns, strict=True):
                state, values, error = self._outcome(ret)
                if error is not None:
                    log.warning("Trial %d failed: %s", trial.number, error)
                    failed.append(error)
                try:
                    study.tell(trial, values=values, state=state)
                except RuntimeError as stop:  # the grid sampler ending the study
                    if STOP_OUTSIDE_OPTIMIZE not in str(stop):
                        raise
            if failed and len(failed) / len(returns) > self.max_failure_rate:
                log.error("%d of %d trials failed (max_failure_rate=%s)", len(failed),
                          len(returns), self.max_failure_rate)
                raise failed[0]
            to_go -= batch
        self._results(study)

    def _overrides(self, study: optuna.Study, trial: optuna.Trial, fixed: dict[str, str],
                   pruner: Any) -> list[str]:
        sampled = [f"{name}={encode(value)}" for name, value in trial.params.items()]
        overrides = [*sampled, *fixed.values()]
        if self.storage is not None:
            job = {"storage": self.storage, "study": study.study_name,
                   "trial_id": trial._trial_id, "number": trial.number, "pruner": pruner}
            text = json.dumps(job).replace("\\", "\\\\").replace("'", "\\'")
            overrides.append(f"++hydra.job.env_set.{TRIAL_ENV}='{text}'")
        return overrides

    def _outcome(self, ret) -> tuple[TrialState, list[float] | None, Exception | None]:
        try:
            value = ret.return_value  # raises the job's exception
        except optuna.TrialPruned:
            return TrialState.PRUNED, None, None
        except Exception as error:
            return TrialState.FAIL, None, error
        try:
            values = [float(value)] if len(self.directions) == 1 else [float(v) for v in value]
        except (TypeError, ValueError):
            return TrialState.FAIL, None, ValueError(
                f"the job returned {value!r}, not {len(self.directions)} number(s)")
        if len(values) != len(self.directions) or any(math.isnan(v) for v in values):
            return TrialState.FAIL, None, ValueError(
                f"the job returned {value!r} for directions {self.directions}")
        return TrialState.COMPLETE, values, None

    def _results(self, study: optuna.Study) -> None:
        """optimization_results.yaml in the sweep folder: the best trial(s) so far."""
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        counts = {state.name.lower(): 0 for state in TrialState}
        for trial in study.get_trials(deepcopy=False):
            counts[trial.state.name.lower()] += 1
        results: dict[str, Any] = {"study": study.study_name, "storage": shown(self.storage),
                                   "trials": counts}
        if complete and len(self.directions) == 1:
            best = study.best_trial
            results |= {"best_trial": best.number, "best_value": best.value,
                        "best_params": best.params}
            log.info("Best trial %d: %s = %s", best.number, best.params, best.value)
        elif complete:
            results["best_trials"] = [{"number": t.number, "values": t.values,
                                       "params": t.params} for t in study.best_trials]
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(results), self.sweep_dir / "optimization_results.yaml")
