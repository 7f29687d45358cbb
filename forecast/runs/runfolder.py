"""One owner per run folder: a lock while a run writes, a refusal to start a fresh run over
another one, and a mark when a run has finished (which forecast-predict looks for).

A run folder holds, besides the run's files, `.lock` (JSON: pid, host, started) while a run
writes into it, and `complete.json` once the run has written everything.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK, COMPLETE = ".lock", "complete.json"


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM (forecast.runs.stopping): its folder holds no scores
    and no completion mark, only what resumes it. `str()` says where it stopped and the command
    that resumes it; `code` is the exit code (130 for SIGINT, 143 for SIGTERM, else 1). A
    KeyboardInterrupt, so that a caller's `except Exception` does not go on past it; here, so
    that forecast-train catches it without importing the run."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _holder(lock: Path) -> dict | None:
    """The lock's owner while it may still run: a live process of this machine, or any process
    of another machine (which cannot be checked from here); None for a stale lock."""
    try:
        owner = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None  # half-written or unreadable: left by a run that died while starting
    if not isinstance(owner, dict) or "pid" not in owner:
        return None
    if owner.get("host") != socket.gethostname():
        return owner
    if owner["pid"] != os.getpid() and _alive(int(owner["pid"])):
        return owner
    return None


def holds_a_run(run_dir: Path) -> list[str]:
    """What of an earlier run the folder holds (checkpoints, a backtest's too, scores), as
    relative paths."""
    found = sorted([*(run_dir / "checkpoints").glob("*.ckpt"),
                    *(run_dir / "folds").glob("*/checkpoints/*.ckpt")])
    found += [p for p in (run_dir / "metrics.json", run_dir / COMPLETE) if p.is_file()]
    return [str(p.relative_to(run_dir)) for p in found]


@contextmanager
def claim(run_dir: Path, resume) -> Iterator[None]:
    """Own `run_dir` for the length of the block: refuse a folder that another live run writes
    into, and a fresh run (resume unset) into a folder that holds an earlier run."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create the run folder '{run_dir}' ({error.strerror}); choose "
                         "another with hydra.run.dir=<folder>") from None
    lock = run_dir / LOCK
    _take(lock, run_dir)
    try:
        earlier = holds_a_run(run_dir)
        if earlier and resume in (None, False):
            raise ValueError(
                f"run folder '{run_dir}' holds an earlier run ({', '.join(earlier[:3])}); "
                "continue it with resume=true, or start a new run in another folder "
                "(hydra.run.dir=<folder>)")
        yield
    finally:
        lock.unlink(missing_ok=True)


def _take(lock: Path, run_dir: Path) -> None:
    """Create the lock atomically (O_EXCL: of two runs starting together one gets it); a stale
    lock, of a process of this machine that is gone, is taken over."""
    owner = {"pid": os.getpid(), "host": socket.gethostname(),
             "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = _holder(lock)
            if holder is not None:
                raise ValueError(
                    f"run folder '{run_dir}' is in use by process {holder['pid']} on "
                    f"{holder.get('host')} (since {holder.get('started')}); wait for it to "
                    f"finish, choose another folder with hydra.run.dir=<folder>, or delete "
                    f"'{lock}' if that run is gone") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        except OSError as error:
            raise ValueError(f"cannot write into the run folder '{run_dir}' "
                             f"({error.strerror}); choose another with hydra.run.dir=<folder>"
                             ) from None
        with os.fdopen(handle, "w") as out:
            out.write(json.dumps(owner))
        return
    raise ValueError(f"run folder '{run_dir}': could not take '{lock}'; try again")


def mark_complete(run_dir: Path, complete: bool = True) -> None:
    """complete.json: {"complete": true} at a run's end; false while a resumed run trains (its
    checkpoints are no longer the finished run's)."""
    (run_dir / COMPLETE).write_text(json.dumps(
        {"complete": complete, "at": time.strftime("%Y-%m-%d %H:%M:%S")}))


def mark_interrupted(run_dir: Path) -> None:
    """An interrupted run leaves no complete.json, but one stopped after its metrics.json was
    written is marked incomplete: a scored folder without the mark reads as a finished run
    from before the mark existed."""
    if (run_dir / "metrics.json").is_file() and not (run_dir / COMPLETE).is_file():
        mark_complete(run_dir, False)


def is_complete(run_dir: Path) -> bool:
    """Finished: marked complete, or (a folder from before the mark existed) scored with no
    lock left behind."""
    if (run_dir / COMPLETE).is_file():
        try:
            return bool(json.loads((run_dir / COMPLETE).read_text()).get("complete", True))
        except (OSError, ValueError, AttributeError):
            return False
    return (run_dir / "metrics.json").is_file() and not (run_dir / LOCK).exists()


def unusable(folder: Path) -> str | None:
    """Why a run folder could not be created or written, naming it and the fix; None if it can.
    Checked before anything starts, so that a typo in hydra.run.dir costs no work."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        why = f"'{existing}' is a file"
    elif not os.access(existing, os.W_OK | os.X_OK):
        why = f"'{existing}' is not writable"
    else:
        return None
    return (f"cannot use the run folder '{folder}': {why}; choose another with "
            "hydra.run.dir=<folder> (hydra.sweep.dir=<folder> for -m)")


def asked_folder(args: list[str]) -> Path:
    """The run (or sweep) folder that command-line overrides ask for; outputs/ by default."""
    sweep = any(a in ("-m", "--multirun") for a in args)
    key = "hydra.sweep.dir=" if sweep else "hydra.run.dir="
    asked = [a.removeprefix(key) for a in args if a.startswith(key)]
    return Path(asked[-1]) if asked else Path("outputs")
