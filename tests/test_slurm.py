"""Sweeps and multi-node training through a real SLURM scheduler: a single-node cluster
(slurmctld and slurmd on localhost, munge for their credentials) that these tests start as root
and stop at the end; slurm-wlm and munge are installed with apt-get where they are missing.

Where the cluster cannot start (not root, nothing to install them with, a daemon that does not
come up) the tests are skipped with the reason, printed and in pytest's summary. One cluster
runs at a time on the machine: an xdist worker holds a file lock while its cluster is up, and
another worker given some of these tests waits for it."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

FORECAST_TRAIN = Path(sys.executable).parent / "forecast-train"
PROGRAMS = ("slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel", "munged", "munge")
# two jobs of these fit the 2-core machine at once
JOB = ["data=synthetic", "trainer=fast", "trainer.max_epochs=1", "data.n_steps=600", "threads=1"]
LAUNCHER = ["hydra/launcher=slurm", "hydra.launcher.partition=debug",
            "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=5"]


def _skip(reason: str):
    print(f"SLURM tests skipped: {reason}")
    pytest.skip(reason)


def _installed() -> bool:
    return all(shutil.which(p) or Path("/usr/sbin", p).is_file() for p in PROGRAMS)


def _install() -> None:
    if _installed():
        return
    if not shutil.which("apt-get"):
        _skip("slurm-wlm and munge are not installed and there is no apt-get to install them")
    try:
        subprocess.run("apt-get update -qq && apt-get install -y -qq -o DPkg::Lock::Timeout=600 "
                       "slurm-wlm munge", shell=True, check=True, capture_output=True,
                       timeout=900, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    except (subprocess.SubprocessError, OSError) as error:
        detail = getattr(error, "stderr", b"") or b""
        _skip(f"apt-get could not install slurm-wlm and munge: {error} "
              f"{detail.decode(errors='replace')[-500:]}")
    if not _installed():
        _skip("apt-get installed slurm-wlm and munge, but their programs are not on PATH")


def _munge_works() -> bool:
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=10, check=True)
        subprocess.run(["unmunge"], input=cred.stdout, capture_output=True, timeout=10,
                       check=True)
    except (subprocess.SubprocessError, OSError):
        return False
    return True


def _start_munge() -> int | None:
    """The pid of the munged started here; None when one already answers."""
    if _munge_works():
        return None
    key = Path("/etc/munge/munge.key")
    if not key.is_file() and shutil.which("mungekey"):
        subprocess.run(["mungekey", "--create"], capture_output=True, timeout=30)
        shutil.chown(key, "munge", "munge")
    run = Path("/run/munge")
    run.mkdir(parents=True, exist_ok=True)
    shutil.chown(run, "munge", "munge")
    started = subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"],
                             capture_output=True, text=True, timeout=30)
    for _ in range(50):
        if _munge_works():
            return int((run / "munged.pid").read_text().strip())
        time.sleep(0.2)
    _skip(f"munged did not start: {started.stderr.strip()[-500:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.9)


SLURM_CONF = """\
ClusterName=forecasttest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _tail(path: Path, chars: int = 1500) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else f"(no {path})"


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        self.env["SLURM_CONF"] = str(self.conf)
        self.daemons: list[subprocess.Popen] = []
        self.munged: int | None = None

    def start(self) -> None:
        (self.root / "state").mkdir(parents=True)
        (self.root / "spool").mkdir()
        self.conf.write_text(SLURM_CONF.format(
            root=self.root, ctld_port=_free_port(), d_port=_free_port(),
            cpus=max(2, os.cpu_count() or 1), memory=_memory_mb()))
        self.munged = _start_munge()
        for command in (["slurmctld", "-D", "-i", "-f", str(self.conf)],
                        ["slurmd", "-D", "-N", "localhost", "-f", str(self.conf)]):
            log = (self.root / f"{command[0]}.out").open("w")
            self.daemons.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                 env=self.env))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = self.run(["sinfo", "-h", "-N", "-o", "%T"], check=False).stdout.strip()
            if state == "idle":
                return
            if any(d.poll() is not None for d in self.daemons):
                break
            time.sleep(0.5)
        self.stop()
        _skip(f"slurmctld/slurmd did not bring the node up (sinfo: {state!r}); "
              f"slurmctld: {_tail(self.root / 'slurmctld.log', 600)} "
              f"slurmd: {_tail(self.root / 'slurmd.log', 600)}")

    def run(self, command: list[str], check: bool = True, timeout: float = 60, **kwargs):
        proc = subprocess.run(command, capture_output=True, text=True, env=self.env,
                              timeout=timeout, **kwargs)
        if check:
            assert proc.returncode == 0, f"{' '.join(command)}: {proc.stdout}{proc.stderr}"
        return proc

    def logs(self) -> str:
        return (f"\n--- slurmctld.log\n{_tail(self.root / 'slurmctld.log')}"
                f"\n--- slurmd.log\n{_tail(self.root / 'slurmd.log')}")

    def stop(self) -> None:
        if self.daemons:  # the jobs first, while slurmd can still end their steps
            self.run(["scancel", "--full", "--user", "root"], check=False)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.run(
                    ["squeue", "-h"], check=False).stdout.strip():
                time.sleep(0.5)
        for daemon in self.daemons:
            daemon.terminate()
        for daemon in self.daemons:
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
        self.daemons = []
        if self.munged is not None:
            try:
                os.kill(self.munged, 15)
            except ProcessLookupError:
                pass
            self.munged = None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        _skip("starting slurmctld and slurmd needs root")
    _install()
    with (Path(tempfile.gettempdir()) / "forecast-slurm-tests.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        cluster = Cluster(tmp_path_factory.mktemp("slurm"))
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


def _train(cluster: Cluster, args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([str(FORECAST_TRAIN), *args], cwd=cwd, env=cluster.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(cluster: Cluster, procs: list[subprocess.Popen]) -> list[str]:
    outs = [p.communicate(timeout=420)[0] for p in procs]
    for proc, out in zip(procs, outs, strict=True):
        assert proc.returncode == 0, f"{out[-6000:]}{cluster.logs()}"
    return outs


def _slurm_logs(sweep: Path) -> list[Path]:
    """The SLURM jobs' own logs, written by submitit into <sweep>/.submitit/<job>/."""
    return sorted(sweep.glob(".submitit/*/*_log.out"))


def _complete_runs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir()
                  if p.is_dir() and (p / "complete.json").is_file()
                  and (p / "metrics.json").is_file())


def test_grid_sweep_runs_each_job_as_a_slurm_job(cluster, tmp_path):
    sweep = tmp_path / "sweep"
    (out,) = _finish(cluster, [_train(cluster, ["-m", *LAUNCHER, "model=lstm,gru", *JOB,
                                                f"hydra.sweep.dir={sweep}"], tmp_path)])
    runs = _complete_runs(sweep)
    assert sorted(p.name.split("model=")[1].split(",")[0] for p in runs) == ["gru", "lstm"]
    logs = _slurm_logs(sweep)
    assert len(logs) == 2, f"{out[-3000:]}{cluster.logs()}"
    assert {log.name.split("_")[0] for log in logs} == {logs[0].name.split("_")[0]}  # one array
    for log in logs:
        assert "Run folder: " in log.read_text(), _tail(log)
    board = pd.read_csv(sweep / "leaderboard.csv", dtype={"best": str})
    assert sorted(board["config"]) == ["model=gru", "model=lstm"]
    assert board["best"].fillna("").tolist() == ["*", ""]
    assert f"Leaderboard: {sweep}/leaderboard.html" in out


def test_two_optuna_workers_share_one_study_through_slurm(cluster, tmp_path):
    """Two sweeper processes at once on one study (one SQLite file), each submitting its trial
    as a SLURM job: both trials in the study, each with the val/loss its job reported."""
    optuna = pytest.importorskip("optuna")
    sweep = tmp_path / "sweep"
    args = ["-m", "+hparams_search=optuna", *LAUNCHER, "hydra.sweeper.n_trials=1", *JOB,
            f"hydra.sweep.dir={sweep}"]
    _finish(cluster, [_train(cluster, args, tmp_path) for _ in range(2)])
    study = optuna.load_study(study_name="forecast_lstm", storage=f"sqlite:///{sweep}/optuna.db")
    assert sorted(t.number for t in study.trials) == [0, 1]
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    assert all(list(t.intermediate_values) == [0] for t in study.trials)  # reported by the job
    runs = _complete_runs(sweep)
    assert len(runs) == 2 and len(_slurm_logs(sweep)) == 2
    values = sorted(json.loads((p / "metrics.json").read_text())["val_loss"] for p in runs)
    assert values == pytest.approx(sorted(t.value for t in study.trials))
    board = pd.read_csv(sweep / "leaderboard.csv", dtype={"best": str})
    assert board["runs"].sum() == 2 and (board["best"].fillna("") != "failed").all()


def test_ddp_job_of_two_tasks_trains_into_one_run_folder(cluster, tmp_path):
    """`srun forecast-train trainer=ddp ...` in a job of 2 tasks: Lightning takes its ranks from
    SLURM (gloo on CPU), rank 0 owns and completes the one run folder."""
    run = tmp_path / "run"
    command = " ".join([str(FORECAST_TRAIN), "trainer=ddp", "trainer.accelerator=cpu",
                        "trainer.devices=2", "trainer.num_nodes=1", "data=synthetic",
                        "trainer.max_epochs=1", "+trainer.limit_train_batches=8",
                        "+trainer.limit_val_batches=4", "data.n_steps=600", "threads=1",
                        f"hydra.run.dir={run}"])
    log = tmp_path / "job.out"
    proc = cluster.run(["sbatch", "--wait", "--nodes=1", "--ntasks-per-node=2",
                        "--cpus-per-task=1", "--time=3", f"--output={log}",
                        f"--wrap=srun {command}"], check=False, timeout=300, cwd=tmp_path)
    text = _tail(log, 200_000)
    assert proc.returncode == 0, f"{proc.stdout}{proc.stderr}{text[-6000:]}{cluster.logs()}"
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in text and "GLOBAL_RANK: 1, MEMBER: 2/2" in text
    assert text.count(f"Run folder: {run}") == 1  # rank 0 alone evaluates and writes
    assert json.loads((run / "complete.json").read_text())["complete"] is True
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 1
    folders = [p for p in tmp_path.rglob(".hydra") if p.is_dir()]
    assert folders == [run / ".hydra"], folders  # no second folder from rank 1
    assert not (run / ".lock").exists()
