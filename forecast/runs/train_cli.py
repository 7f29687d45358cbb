"""The `forecast-train` command: Hydra's entry point around `train.run`.

The run itself (forecast.runs.train, with PyTorch Lightning, whose imports take seconds) is
imported only when a job starts, so that `--help`, a mistyped override and an unusable run
folder are answered without them.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import RunMode
from omegaconf import DictConfig

from forecast import config
from forecast.runs import console, intent, runfolder
from hydra_plugins.forecast_optuna_sweeper import config as sweeper_config
from hydra_plugins.forecast_optuna_sweeper.optuna_sweeper import OptunaSweeper

log = logging.getLogger("forecast.runs.train")  # the run's own logger: its errors read the same
config.register()
# Hydra finds plugins by listing the hydra_plugins namespace, which cannot list a package that
# an editable install (pip install -e .) maps through setuptools' import hook: the sweeper
# and its configs are registered here as well (registering twice is harmless).
sweeper_config.register()
Plugins.instance().register(OptunaSweeper)


def job_threads(cfg: DictConfig) -> int | None:
    """torch threads for this job: `threads` if set; under the joblib launcher the cores shared
    out between the parallel jobs (so they do not oversubscribe the CPU); under the SLURM
    launcher the job's cpus_per_task (torch would take every core of a node it shares); else
    torch's default."""
    if cfg.threads:
        return int(cfg.threads)
    hydra_cfg = HydraConfig.get()
    launcher = str(hydra_cfg.launcher.get("_target_"))
    if hydra_cfg.mode == RunMode.MULTIRUN and "submitit" in launcher:
        return int(os.environ.get("SLURM_CPUS_PER_TASK") or 0) or None
    if hydra_cfg.mode != RunMode.MULTIRUN or "joblib" not in launcher:
        return None
    cores = os.cpu_count() or 1
    n_jobs = int(hydra_cfg.launcher.get("n_jobs") or -1)
    n_jobs = cores if n_jobs < 0 else n_jobs
    return max(1, cores // n_jobs)


@hydra.main(version_base="1.3", config_path="pkg://forecast.conf", config_name="train")
def main(cfg: DictConfig) -> float:
    console.quiet()
    try:
        intent.check(cfg)  # a sweep's job too (Refusals checks a run before its folder exists)
        import torch

        from forecast.runs import train

        threads = job_threads(cfg)
        if threads:
            torch.set_num_threads(threads)
        return train.run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except (ValueError, FileNotFoundError, FloatingPointError) as error:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweep records the failed job and goes on
        log.error("%s", error)
        sys.exit(2)
    except runfolder.Interrupted as stop:  # Ctrl-C or SIGTERM: a sweep stops too
        log.error("%s", stop)
        sys.exit(stop.code)


def cli() -> None:
    """The forecast-train command: an impossible run folder and a key outside the schema are
    refused with one message before Hydra starts (Hydra would stop creating the folder with a
    traceback, and answers an unknown key with `+key=...`, which trains with the key ignored);
    `experiment=...` / `hparams_search=...` are passed on as `+experiment=...` (intent.argv)."""
    try:
        sys.argv[1:] = intent.argv(sys.argv[1:])
    except ValueError as error:
        print(f"forecast-train: {error}", file=sys.stderr)
        sys.exit(2)
    problem = runfolder.unusable(runfolder.asked_folder(sys.argv[1:]))
    if problem:
        print(f"forecast-train: {problem}", file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
