"""Sweeps: `forecast-train -m` with its leaderboard (the Hydra callback and `forecast-report`),
the resumable Optuna search, and the torch threads each job gets under the joblib launcher.

The fast tests build sweep folders by hand or compose the config; the slow ones run the real
console script on the synthetic data with the `fast` trainer (shortened further where the test
is about the sweep, not the model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from omegaconf import OmegaConf

from forecast.report import leaderboard
from forecast.runs.train_cli import job_threads

FORECAST_TRAIN = Path(sys.executable).parent / "forecast-train"
PNG = b"\x89PNG\r\n\x1a\n"
SHORT = ["trainer.max_epochs=1", "data.n_steps=600"]  # a sweep test needs jobs, not skill


def _train(args, cwd, env=None, timeout=600):
    assert FORECAST_TRAIN.is_file(), f"{FORECAST_TRAIN} missing: pip install -e ."
    proc = subprocess.run([str(FORECAST_TRAIN), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, f"forecast-train {' '.join(args)} failed:\n" \
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def _read_board(sweep: Path) -> pd.DataFrame:
    board = pd.read_csv(sweep / "leaderboard.csv", dtype={"best": str, "config": str})
    board["best"] = board["best"].fillna("")
    return board


# ---- the report on a hand-made sweep folder (fast) ----------------------------------------------

def _scores(mae: float, by_lead: list[float], rmse: float | None = None,
            skill: float | None = None) -> dict:
    scores = {"mae": mae, "rmse": rmse if rmse is not None else mae + 0.5,
              "by_lead": {"mae": by_lead, "rmse": [v + 0.5 for v in by_lead]},
              "by_series": {"A": {"mae": mae}}}
    if skill is not None:
        scores["skill"] = skill
    return scores


def _metrics(val_loss, mae, rmse, skill, by_lead, fit, epochs) -> dict:
    """Shaped like a run's metrics.json (the keys the report reads, and a few it does not)."""
    return {"model": _scores(mae, by_lead, rmse, skill),
            "baselines": {"persistence": _scores(5.0, [4.0, 5.0, 6.0], skill=0.0),
                          "ridge": _scores(1.5, [1.0, 1.5, 2.0])},
            "windows": {"train": 100, "val": 20, "test": 30, "dropped": 0},
            "val_loss": val_loss, "epochs": epochs,
            "seconds": {"prepare": 0.1, "fit": fit, "evaluate": 0.2}}


def _job(sweep: Path, overrides: list[str], metrics: dict | None = None,
         error: str | None = None) -> Path:
    """A job folder as `forecast-train -m` leaves it: named by its overrides."""
    job = sweep / ",".join(sorted(overrides))
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if error is not None:
        (job / "error.txt").write_text(error)
    return job


LSTM_SEEDS = [  # (val_loss, mae, rmse, skill, by_lead, fit seconds, epochs) for seeds 0 and 1
    (0.30, 2.0, 2.5, 0.50, [1.0, 2.0, 3.0], 10.0, 4),
    (0.50, 5.0, 5.5, 0.30, [4.0, 5.0, 6.0], 20.0, 6),
]
GRU = (0.20, 3.0, 3.5, 0.40, [2.0, 3.0, 4.0], 12.0, 5)
FAILED_ERROR = "ValueError: series 'A' has 2000 steps, fewer than lookback + horizon = 5024"


@pytest.fixture
def sweep(tmp_path) -> Path:
    """lstm with seeds 0 and 1, gru with seed 0, and a gru job that failed (no metrics.json);
    data=synthetic is shared by all, so no row names it."""
    sweep = tmp_path / "sweep"
    for seed, values in enumerate(LSTM_SEEDS):
        _job(sweep, ["data=synthetic", "model=lstm", f"seed={seed}"], _metrics(*values))
    _job(sweep, ["data=synthetic", "model=gru", "seed=0"], _metrics(*GRU))
    _job(sweep, ["data=synthetic", "model=gru", "seed=0", "lookback=5000"],
         error=f"{FAILED_ERROR}\n")
    return sweep


def test_report_main_writes_the_leaderboard(sweep, capsys):
    assert leaderboard.main([str(sweep)]) == 0
    for name in ("leaderboard.csv", "leaderboard.md", "leaderboard.html"):
        assert (sweep / name).stat().st_size > 0, name
    assert (sweep / "leaderboard.png").read_bytes()[:8] == PNG
    out = capsys.readouterr().out
    assert (sweep / "leaderboard.md").read_text().strip() in out
    assert "leaderboard.{csv,md,html,png}" in out
    html = (sweep / "leaderboard.html").read_text()
    assert "model=lstm" in html and "model=gru" in html and "data:image/png;base64," in html


def test_leaderboard_page_states_margins_links_runs_and_fits_the_page(sweep, capsys):
    import re
    from urllib.parse import unquote

    _job(sweep, ["data=synthetic", "model=rnn", "seed=0"],  # no skill: undefined
         _metrics(0.9, 4.0, 4.5, None, [3.0, 4.0, 5.0], 3.0, 2) | {"units": {"temp": "degF"}})
    assert leaderboard.main([str(sweep)]) == 0
    page = (sweep / "leaderboard.html").read_text()
    # gru is best: MAE 3.0 against ridge's 1.5 and persistence's 5.0
    said = "test MAE 3.000 degF, 100.0% above ridge (1.500), a loss to ridge, 40.0% below " \
           "persistence (5.000)."
    assert said in page and said in capsys.readouterr().out
    table = page[page.index("<table class='board'>"):page.index("</table>")]
    assert "<td>+100.0%</td><td>-40.0%</td>" in table  # the best row's margins
    links = [unquote(h) for h in re.findall(r'href="([^"]+)"', table)]
    jobs = {str(p.parent.parent.relative_to(sweep)) for p in sweep.glob("*/.hydra/overrides.yaml")}
    assert sorted(links) == sorted(f"{job}/report.html" for job in jobs)  # one link per run
    cells = re.findall(r"<td[^>]*>(.*?)</td>", table)
    assert cells and not [c for c in cells if c.strip().lower() in ("nan", "none", "")]
    assert "\u2014" in cells  # rnn's skill: undefined, shown as a dash
    assert re.search(r"body \{[^}]*max-width: *\d+px", page)
    assert "table-layout: fixed" in page


def test_seeds_grouped_ranked_by_val_loss_and_failed_listed_last(sweep):
    leaderboard.main([str(sweep)])
    board = _read_board(sweep)
    assert board["config"].tolist() == ["model=gru", "model=lstm",
                                        "model=gru seed=0 lookback=5000"]
    assert board["best"].tolist() == ["*", "", "failed"]
    assert board["rank"].iloc[:2].tolist() == [1, 2] and pd.isna(board["rank"].iloc[2])
    assert board["runs"].tolist() == [1, 2, 1]

    gru, lstm = board.iloc[0], board.iloc[1]
    assert gru["val_loss"] == pytest.approx(GRU[0]) and gru["test_mae"] == pytest.approx(GRU[1])
    assert pd.isna(gru["val_loss_std"])  # one run: no spread
    assert gru["folders"] == "data=synthetic,model=gru,seed=0"
    assert lstm["folders"] == "data=synthetic,model=lstm,seed=0 data=synthetic,model=lstm,seed=1"
    # mean and (population) std over the two seeds
    columns = {"val_loss": 0, "test_mae": 1, "test_rmse": 2, "skill": 3, "fit_seconds": 5,
               "epochs": 6}
    for column, i in columns.items():
        values = [run[i] for run in LSTM_SEEDS]
        assert lstm[column] == pytest.approx(np.mean(values)), column
        if column in ("val_loss", "test_mae", "skill"):
            assert lstm[f"{column}_std"] == pytest.approx(np.std(values)), column
    assert lstm["val_loss"] == pytest.approx(0.40) and lstm["val_loss_std"] == pytest.approx(0.10)
    assert lstm["test_mae"] == pytest.approx(3.5) and lstm["test_mae_std"] == pytest.approx(1.5)
    assert lstm["persistence_mae"] == pytest.approx(5.0)
    assert lstm["ridge_mae"] == pytest.approx(1.5)

    failed = board.iloc[2]
    assert failed["error"] == FAILED_ERROR
    assert failed["folders"] == "data=synthetic,lookback=5000,model=gru,seed=0"
    assert pd.isna(failed["val_loss"])
    md = (sweep / "leaderboard.md").read_text()
    assert "failed" in md and "model=gru seed=0 lookback=5000" in md


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp, "holds no job folders"),
    (lambda tmp: tmp / "missing", "is not a folder"),
])
def test_report_main_refuses_a_folder_without_jobs(tmp_path, capsys, make, message):
    folder = make(tmp_path)
    assert leaderboard.main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(folder) in err
    assert not (tmp_path / "leaderboard.csv").exists()


def test_a_pruned_trial_is_a_pruned_row_before_the_failed_ones(sweep):
    _job(sweep, ["data=synthetic", "model=rnn", "seed=0"],
         error="TrialPruned: trial 3 pruned after epoch 2 at val/loss 0.9\n")
    assert leaderboard.main([str(sweep)]) == 0
    board = _read_board(sweep)
    assert board["best"].tolist() == ["*", "", "pruned", "failed"]
    assert board["error"].iloc[2].startswith("TrialPruned: trial 3")
    page = (sweep / "leaderboard.html").read_text()
    assert "<td>pruned</td>" in page and "<td>failed</td>" in page


def test_an_empty_error_file_is_a_failed_row(sweep):
    _job(sweep, ["data=synthetic", "model=rnn", "seed=0"], error="")
    assert leaderboard.main([str(sweep)]) == 0
    assert "model=rnn seed=0" in _read_board(sweep)["config"].tolist()


def test_a_truncated_metrics_json_is_a_failed_row_naming_the_file(sweep, capsys):
    job = _job(sweep, ["data=synthetic", "model=rnn", "seed=0"], _metrics(*GRU))
    text = (job / "metrics.json").read_text()
    (job / "metrics.json").write_text(text[: len(text) // 2])
    assert leaderboard.main([str(sweep)]) == 0
    board = _read_board(sweep)
    assert board["config"].tolist()[-2:] == ["model=gru seed=0 lookback=5000",
                                             "model=rnn seed=0"]  # failed rows, listed last
    md = (sweep / "leaderboard.md").read_text()
    assert f"unreadable {job / 'metrics.json'}" in md
    assert len(board) == 4  # the readable jobs are still on the board


def test_overrides_with_spaces_keep_their_names(tmp_path):
    sweep = tmp_path / "sweep"
    splits = ["data.split={train: 0.6, val: 0.2, test: 0.2}",
              "data.split={train: 0.7, val: 0.1, test: 0.2}"]
    for i, split in enumerate(splits):
        _job(sweep, ["data=synthetic", split], _metrics(*LSTM_SEEDS[i]))
    assert leaderboard.main([str(sweep)]) == 0
    assert _read_board(sweep)["config"].tolist() == splits


def test_callback_records_a_failed_job_and_refreshes_the_board(sweep):
    job = _job(sweep, ["data=synthetic", "model=rnn", "seed=0"])
    config = OmegaConf.create({"hydra": {"mode": RunMode.MULTIRUN, "sweep": {"dir": str(sweep)},
                                         "runtime": {"output_dir": str(job)}}})
    failure = JobReturn(status=JobStatus.FAILED, _return_value=ValueError("lookback too long"))
    leaderboard.LeaderboardCallback().on_job_end(config, failure)
    assert (job / "error.txt").read_text() == "ValueError: lookback too long\n"
    board = _read_board(sweep)
    rnn = board[board["config"] == "model=rnn seed=0"]
    assert rnn["best"].tolist() == ["failed"]
    assert rnn["error"].tolist() == ["ValueError: lookback too long"]


# ---- job_threads (fast): the composed config as a job of each launcher sees it ------------------

@pytest.fixture
def threads_of(monkeypatch):
    """threads_of(*overrides, cores=8) -> job_threads of that job's config, with HydraConfig set
    as Hydra sets it inside a job."""
    def threads_of(*overrides: str, cores: int = 8) -> int | None:
        monkeypatch.setattr(os, "cpu_count", lambda: cores)
        with initialize_config_module("forecast.conf", version_base="1.3"):
            cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        return job_threads(cfg)

    yield threads_of
    HydraConfig.instance().cfg = None


JOBLIB = ("hydra.mode=MULTIRUN", "hydra/launcher=joblib")


def test_job_threads_share_the_cores_between_joblib_jobs(threads_of):
    assert threads_of(*JOBLIB, "hydra.launcher.n_jobs=2") == 4
    assert threads_of(*JOBLIB, "hydra.launcher.n_jobs=3") == 2
    assert threads_of(*JOBLIB) == 1  # n_jobs=-1: one job per core
    assert threads_of(*JOBLIB, "hydra.launcher.n_jobs=16") == 1  # never 0
    assert threads_of(*JOBLIB, "hydra.launcher.n_jobs=2", cores=2) == 1


def test_job_threads_explicit_or_torch_default(threads_of):
    assert threads_of(*JOBLIB, "hydra.launcher.n_jobs=2", "threads=3") == 3
    assert threads_of("threads=3") == 3
    assert threads_of() is None  # a single run: torch's default
    assert threads_of("hydra.mode=MULTIRUN") is None  # basic launcher: one job at a time


# ---- a real 2-job multirun (slow) ---------------------------------------------------------------

PROBE = '''
import json
from pathlib import Path

import torch
from hydra.experimental.callback import Callback


class ThreadsProbe(Callback):
    """Runs in the job's own process, after the job: records the torch threads it had."""

    def on_job_end(self, config, job_return, **kwargs):
        out = Path(config.hydra.runtime.output_dir) / "threads_probe.json"
        out.write_text(json.dumps({"threads": torch.get_num_threads()}))
'''


@pytest.fixture(scope="module")
def multirun(tmp_path_factory):
    """`forecast-train -m ... model=lstm,gru` under the joblib launcher with 2 parallel jobs, and
    a test-side Hydra callback that records each job's torch threads.

    joblib's loky workers get OMP_NUM_THREADS = MKL_NUM_THREADS = cores // n_jobs (torch follows
    them) unless the parent process sets them; set to all cores here, so that only forecast's
    job_threads can bring a job down to cores // 2."""
    base = tmp_path_factory.mktemp("multirun")
    (base / "sweep_probe.py").write_text(textwrap.dedent(PROBE))
    sweep = base / "sweep"
    cores = os.cpu_count() or 1
    env = {**os.environ, "OMP_NUM_THREADS": str(cores), "MKL_NUM_THREADS": str(cores),
           "PYTHONPATH": os.pathsep.join(p for p in (str(base), os.environ.get("PYTHONPATH")) if p)}
    proc = _train(["-m", "data=synthetic", "trainer=fast", "model=lstm,gru", *SHORT,
                   f"hydra.sweep.dir={sweep}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                   "+hydra.callbacks.threads_probe._target_=sweep_probe.ThreadsProbe"],
                  cwd=base, env=env)
    return sweep, proc, max(1, cores // 2)


def _job_name(model: str) -> str:
    return f"data.n_steps=600,data=synthetic,model={model},trainer.max_epochs=1,trainer=fast"


@pytest.mark.slow
def test_multirun_job_folders_and_leaderboard(multirun):
    sweep, proc, _ = multirun
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == sorted([_job_name("lstm"), _job_name("gru")])  # named by their overrides
    val_loss = {}
    for model in ("lstm", "gru"):
        metrics = json.loads((sweep / _job_name(model) / "metrics.json").read_text())
        val_loss[f"model={model}"] = metrics["val_loss"]

    board = _read_board(sweep)
    assert len(board) == 2
    assert board["val_loss"].is_monotonic_increasing
    assert board["best"].tolist() == ["*", ""] and board["rank"].tolist() == [1, 2]
    assert dict(zip(board["config"], board["val_loss"], strict=True)) == pytest.approx(val_loss)
    assert set(board["folders"]) == set(jobs)
    for name in ("leaderboard.md", "leaderboard.html"):
        assert (sweep / name).stat().st_size > 0, name
    assert (sweep / "leaderboard.png").read_bytes()[:8] == PNG

    # the callback prints the board at the end of the sweep
    assert "| rank | best | config | runs | val_loss |" in proc.stdout
    for config in board["config"]:
        assert f"| {config} |" in proc.stdout
    assert f"Leaderboard: {sweep}/leaderboard.html" in proc.stdout


@pytest.mark.slow
def test_joblib_jobs_share_the_cores(multirun):
    sweep, _, expected_threads = multirun
    for model in ("lstm", "gru"):
        probe = json.loads((sweep / _job_name(model) / "threads_probe.json").read_text())
        assert probe["threads"] == expected_threads, model


# ---- Optuna: a study resumed from its SQLite file (slow) -----------------------------------------

N_FIRST, N_MORE = 2, 1


@pytest.fixture(scope="module")
def optuna_sweep(tmp_path_factory):
    """The same Optuna command twice into one sweep folder: N_FIRST trials, then N_MORE more.
    -> (sweep folder, job folders after the first command, trials after each command)."""
    optuna = pytest.importorskip("optuna")
    base = tmp_path_factory.mktemp("optuna")
    sweep = base / "sweep"
    storage = f"sqlite:///{sweep}/optuna.db"
    folders, trials = [], []
    for n in (N_FIRST, N_MORE):
        _train(["-m", "+hparams_search=optuna", "data=synthetic", "trainer=fast", *SHORT,
                f"hydra.sweeper.n_trials={n}", f"hydra.sweep.dir={sweep}"], cwd=base)
        folders.append({p.name: (p / "metrics.json").read_bytes()
                        for p in sweep.iterdir() if p.is_dir()})
        trials.append(optuna.load_study(study_name="forecast_lstm", storage=storage).trials)
    return sweep, folders, trials


@pytest.mark.slow
def test_optuna_study_resumes_from_its_storage(optuna_sweep):
    sweep, folders, trials = optuna_sweep
    complete = [[t for t in ts if t.state.name == "COMPLETE"] for ts in trials]
    assert [len(c) for c in complete] == [N_FIRST, N_FIRST + N_MORE]
    assert [t.number for t in complete[1]] == list(range(N_FIRST + N_MORE))
    # the first command's trials are kept as they were, none re-run
    assert [(t.params, t.value) for t in complete[1][:N_FIRST]] == \
        [(t.params, t.value) for t in complete[0]]

    # one folder per trial, none overwritten by the resumed command
    first, after = folders
    assert len(first) == N_FIRST and len(after) == N_FIRST + N_MORE
    assert {name: after[name] for name in first} == first
    objectives = sorted(json.loads(m)["val_loss"] for m in after.values())
    assert objectives == pytest.approx(sorted(t.value for t in complete[1]))

    board = _read_board(sweep)
    assert board["runs"].sum() == N_FIRST + N_MORE and (board["best"] != "failed").all()


@pytest.mark.slow
def test_optuna_resumed_trials_try_new_settings(optuna_sweep):
    _, _, trials = optuna_sweep
    first = [t.params for t in trials[1][:N_FIRST]]
    for trial in trials[1][N_FIRST:]:
        assert trial.params not in first, f"trial {trial.number} repeats {trial.params}"


# ---- the environment: current Optuna on SQLAlchemy 2 (fast) --------------------------------------

def test_install_has_optuna_4_and_sqlalchemy_2():
    from importlib import metadata

    from packaging.version import Version

    assert Version(metadata.version("optuna")) >= Version("4")
    assert Version(metadata.version("sqlalchemy")) >= Version("2")
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("hydra-optuna-sweeper")  # pinned optuna<3: replaced by our plugin


def test_pandas_reads_sql_through_a_sqlalchemy_engine():
    import sqlalchemy

    frame = pd.read_sql("select 1 as x", sqlalchemy.create_engine("sqlite://"))
    assert frame.to_dict("list") == {"x": [1]}


# ---- the sweeper's search space and configs (fast) -----------------------------------------------

def test_the_sweeper_ships_as_a_hydra_plugin():
    """In the wheel (pyproject's packages), under the namespace package Hydra scans: a
    hydra_plugins/__init__.py would hide every other installed plugin."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11
    root = Path(__file__).resolve().parents[1]
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "hydra_plugins.forecast_optuna_sweeper" in setuptools["packages"]
    assert not (root / "hydra_plugins" / "__init__.py").exists()
    assert (root / "hydra_plugins" / "forecast_optuna_sweeper" / "__init__.py").is_file()


def test_search_space_keeps_the_override_grammar():
    from optuna.distributions import CategoricalDistribution as Cat
    from optuna.distributions import FloatDistribution as Float
    from optuna.distributions import IntDistribution as Int

    from hydra_plugins.forecast_optuna_sweeper._impl import grid, search_space

    space, fixed = search_space([
        "model.hidden_size=choice(32,64,128)", "model.lr=tag(log,interval(1e-4,1e-2))",
        "model.dropout=interval(0,0.3)", "lookback=int(interval(24,96))",
        "model.num_layers=range(1,4)", "data.n_steps=shuffle(range(600,900,100))",
        "evaluate.stride=range(0.5,2.0,0.5)", "data=synthetic", "+hparams_search=optuna",
        "model.num_layers=2",  # the command line, after the config's params, fixes it
    ])
    assert sorted(space.pop("data.n_steps").choices) == [600, 700, 800]  # shuffled
    assert space == {
        "model.hidden_size": Cat([32, 64, 128]), "model.lr": Float(1e-4, 1e-2, log=True),
        "model.dropout": Float(0.0, 0.3), "lookback": Int(24, 96),
        "evaluate.stride": Float(0.5, 1.5, step=0.5)}
    assert fixed == {"data": "data=synthetic", "+hparams_search": "+hparams_search=optuna",
                     "model.num_layers": "model.num_layers=2"}
    assert grid({"a": Int(1, 3), "b": Cat(["x", "y"]), "c": Float(0.5, 1.5, step=0.5)}) == \
        {"a": [1, 2, 3], "b": ["x", "y"], "c": [0.5, 1.0, 1.5]}
    with pytest.raises(ValueError, match="grid sampler needs choice"):
        grid({"model.lr": Float(1e-4, 1e-2, log=True)})
    with pytest.raises(ValueError, match="empty range"):
        search_space(["lookback=range(5,5)"])


@pytest.mark.parametrize("sampler, cls", [
    ("tpe", "TPESampler"), ("gp", "GPSampler"), ("cmaes", "CmaEsSampler"),
    ("random", "RandomSampler"), ("grid", "GridSampler"), ("qmc", "QMCSampler"),
    ("bruteforce", "BruteForceSampler")])
def test_optuna_search_composes_with_each_sampler(sampler, cls):
    from hydra.utils import instantiate

    import forecast.runs.train_cli  # noqa: F401  (registers the sweeper's configs)

    with initialize_config_module("forecast.conf", version_base="1.3"):
        cfg = compose("train", overrides=["+hparams_search=optuna",
                                          f"hydra/sweeper/sampler={sampler}",
                                          "hydra.sweeper.sampler.seed=3"],
                      return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("forecast_optuna_sweeper.optuna_sweeper.OptunaSweeper")
    assert sweeper.storage.startswith("sqlite:///") and sweeper.storage.endswith("/optuna.db")
    assert sweeper.study_name == "forecast_lstm" and sweeper.direction == "minimize"
    assert sweeper.pruner._target_ == "optuna.pruners.MedianPruner"
    assert sweeper.params["model.lr"] == "tag(log, interval(0.0003, 0.01))"
    made = instantiate(sweeper.sampler)
    if sampler == "grid":  # a partial: the sweeper passes the grid
        made = made({"lookback": [24, 48]})
    assert type(made).__name__ == cls


def test_job_threads_under_slurm_are_the_jobs_cpus(threads_of, monkeypatch):
    slurm = ("hydra.mode=MULTIRUN", "hydra/launcher=slurm")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert threads_of(*slurm) == 3
    assert threads_of(*slurm, "threads=2") == 2
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert threads_of(*slurm) is None


# ---- Optuna: two workers on one study; pruning (slow) --------------------------------------------

@pytest.mark.slow
def test_two_processes_share_one_sqlite_study(tmp_path):
    """The same Optuna command started twice at once (two workers, one sweep folder and one
    SQLite study), each asking for its trials as one batch (n_jobs): every trial of both is in
    the study, numbered once, each with its folder."""
    optuna = pytest.importorskip("optuna")
    sweep = tmp_path / "sweep"
    per_worker = 2
    args = [str(FORECAST_TRAIN), "-m", "+hparams_search=optuna", "data=synthetic",
            "trainer=fast", *SHORT, "threads=1", f"hydra.sweeper.n_trials={per_worker}",
            f"hydra.sweeper.n_jobs={per_worker}", f"hydra.sweep.dir={sweep}"]
    workers = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    for worker, out in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, out[-5000:]
    study = optuna.load_study(study_name="forecast_lstm", storage=f"sqlite:///{sweep}/optuna.db")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(study.trials) == len(complete) == 2 * per_worker
    assert sorted(t.number for t in complete) == list(range(2 * per_worker))
    # each job reported its epoch's val/loss to the shared study (what pruning reads)
    assert all(list(t.intermediate_values) == [0] for t in complete)
    runs = sorted(p for p in sweep.iterdir() if (p / "complete.json").is_file())
    assert len(runs) == 2 * per_worker
    objectives = sorted(json.loads((p / "metrics.json").read_text())["val_loss"] for p in runs)
    assert objectives == pytest.approx(sorted(t.value for t in complete))
    assert _read_board(sweep)["runs"].sum() == 2 * per_worker


@pytest.mark.slow
def test_a_pruned_trial_is_recorded_pruned_and_its_folder_unfinished(tmp_path):
    """A pruner that stops every trial after its first epoch (val/loss above 0): the study
    records the trial as pruned with that epoch's loss, and its folder holds no scores and no
    completion mark; the sweep itself succeeds."""
    optuna = pytest.importorskip("optuna")
    sweep = tmp_path / "sweep"
    _train(["-m", "+hparams_search=optuna", "data=synthetic", "trainer=fast", "threads=1",
            "trainer.max_epochs=3", "data.n_steps=600", "hydra.sweeper.n_trials=1",
            "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.upper=0.0",
            f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    study = optuna.load_study(study_name="forecast_lstm", storage=f"sqlite:///{sweep}/optuna.db")
    (trial,) = study.trials
    assert trial.state.name == "PRUNED"
    assert list(trial.intermediate_values) == [0] and trial.value == trial.intermediate_values[0]
    (job,) = [p for p in sweep.iterdir() if p.is_dir()]
    assert not (job / "complete.json").exists() and not (job / "metrics.json").exists()
    assert not (job / ".lock").exists()
    assert (job / "error.txt").read_text().startswith(
        "TrialPruned: trial 0 pruned after epoch 1 at val/loss ")
    board = _read_board(sweep)
    assert board["best"].tolist() == ["pruned"] and "TrialPruned" in board["error"].iloc[0]
