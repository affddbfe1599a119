"""One cell, one trainer: a claim file a process holds in a cell's dir while it works there.

Two launches of the same sweep (or a second ``python run.py`` into a busy dir) would otherwise
train the same cell twice and leave files from different processes. Before :func:`spacing.runner.run`
touches a cell it takes the cell's claim; a launcher that finds a live claim reports the cell as
running elsewhere and moves on.

The claim must hold on the shared filesystems SLURM clusters use, where ``flock`` is not reliable
(Lustre mounted with ``localflock``, NFS lock recovery), so it is a lease made of plain files:

- **Taking it**: a complete private file is hard-linked to ``claim.json``; a link succeeds for
  exactly one process, also on NFS (where a lost reply is checked by the private file's link
  count). Filesystems without hard links fall back to an exclusive create.
- **Keeping it**: the claim file's mtime is its heartbeat, touched by a background timer every
  :data:`HEARTBEAT_S` seconds and by the runner at every checkpoint; both check that the claim
  is still this process's.
- **Stale claims** are taken over: a heartbeat older than :data:`STALE_AFTER_S`, a holder on this
  host whose process is gone, or a holder that was an earlier run of this same SLURM job (a
  requeued task). A takeover is serialised by a second, short-lived lock, so two launchers never
  both remove the stale claim and then each other's new one.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from spacing.atomic import create_temp
from spacing.contract import CLAIM_FILE
from spacing.errors import UserError

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0
"""Seconds between heartbeats of a held claim."""
STALE_AFTER_S = 300.0
"""A claim whose heartbeat is older than this is stale: its holder died or hangs. Several heartbeats
plus NFS attribute caching (up to 60 s) and clock skew between hosts fit in it."""
TAKEOVER_STALE_S = 60.0
"""A takeover lock is held for milliseconds; one older than this was left by a killed launcher."""
RUNNING_ELSEWHERE = "running elsewhere"
"""The outcome of a cell another process holds (what run.py returns for it in a multirun)."""
_NO_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV)


class RunningElsewhere(UserError):
    """The cell is claimed by another live process (or this process lost its claim to one)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a claim, as its file tells it."""

    host: str
    pid: int
    started_at: str
    token: str
    pid_start: int | None = None
    """The holder process's start time (clock ticks since boot), so a reused pid is not mistaken for it."""
    slurm_job: str | None = None
    slurm_restart: int = 0
    heartbeat_age_s: float = 0.0

    def describe(self) -> str:
        return f"{self.host} pid {self.pid} (since {self.started_at}, last heartbeat {self.heartbeat_age_s:.0f} s ago)"


def holder(cell_dir: Path | str) -> Holder | None:
    """The live holder of `cell_dir`'s claim, or None when the cell is unclaimed or its claim is stale."""
    current = _read(Path(cell_dir) / CLAIM_FILE)
    return None if current is None or _is_stale(current) else current


def claim(cell_dir: Path | str) -> Claim:
    """Claim `cell_dir` for this process, taking over a stale claim; raise RunningElsewhere if it is held.

    Use the result as a context manager (or call :meth:`Claim.release`).
    """
    path = Path(cell_dir) / CLAIM_FILE
    mine = _me()
    seen: Holder | None = None
    for _ in range(3):
        if _create(path, mine):
            return Claim(path, mine)
        current = _read(path)
        if current is None:  # released between our attempt and our read: try again
            continue
        seen = current
        if not _is_stale(current, me=mine):
            break
        log.warning("taking over the stale claim of %s held by %s", cell_dir, current.describe())
        _remove_stale(path, current)
    raise RunningElsewhere(busy_sentence(Path(cell_dir), seen))


def busy_sentence(cell_dir: Path, current: Holder | None) -> str:
    """The one sentence a launcher prints for a cell another process holds (None: one that keeps changing hands)."""
    who = current.describe() if current is not None else "another launcher"
    return (
        f"{cell_dir} is being trained elsewhere by {who}; skipped here, and if you know "
        f"that process is dead, delete {cell_dir / CLAIM_FILE} and launch again "
        f"(a dead holder's claim also expires {STALE_AFTER_S / 60:.0f} min after its last heartbeat)."
    )


class Claim:
    """A claim this process holds: kept fresh by a background heartbeat until released."""

    def __init__(self, path: Path, mine: Holder) -> None:
        self.path = path
        self.mine = mine
        self.lost = False
        """Whether another process has taken the claim over (noticed by a heartbeat)."""
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name=f"claim heartbeat {path.parent}", daemon=True)
        self._beat.start()

    def refresh(self) -> None:
        """Touch the heartbeat; raise RunningElsewhere if another process has taken the claim over."""
        if not self.lost and not self._touch():
            self.lost = True
        if self.lost:
            current = _read(self.path)
            raise RunningElsewhere(
                f"this process lost its claim on {self.path.parent} to "
                f"{current.describe() if current is not None else 'another process'} (its own "
                f"heartbeat stopped for over {STALE_AFTER_S:.0f} s, e.g. while suspended) and stops without "
                "writing; that process trains the cell now."
            )

    def release(self) -> None:
        """Stop the heartbeat and remove the claim file if it is still ours."""
        self._stop.set()
        self._beat.join()
        current = _read(self.path)
        if current is not None and current.token == self.mine.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def _touch(self) -> bool:
        current = _read(self.path)
        if current is None or current.token != self.mine.token:
            return False
        now = time.time()
        os.utime(self.path, (now, now))
        return True

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                if not self._touch():
                    self.lost = True
                    log.error("lost the claim on %s; the run stops at its next checkpoint", self.path.parent)
                    return
            except OSError as exc:  # a passing hiccup of a network filesystem: try again next beat
                log.warning("could not refresh the claim on %s: %s", self.path.parent, exc)


def _me() -> Holder:
    return Holder(
        host=socket.gethostname(),
        pid=os.getpid(),
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        token=uuid.uuid4().hex,
        pid_start=_process_start(os.getpid()),
        slurm_job=os.environ.get("SLURM_JOB_ID"),
        slurm_restart=int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0),
    )


def _create(path: Path, who: Holder) -> bool:
    """Create `path` holding `who`, atomically and only if it does not exist; True if we made it."""
    content = json.dumps({k: v for k, v in asdict(who).items() if k != "heartbeat_age_s"}, indent=2) + "\n"
    fd, tmp = create_temp(path)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno in _NO_LINKS:
                return _create_exclusive(path, content)
            return os.stat(tmp).st_nlink == 2  # NFS: the link may have been made though the reply was lost
    finally:
        tmp.unlink(missing_ok=True)


def _create_exclusive(path: Path, content: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def _read(path: Path) -> Holder | None:
    """The holder `path` names, or None if there is no such file. A file that cannot be parsed (being
    written by an exclusive create, or damaged) names an unknown holder judged by its heartbeat alone."""
    try:
        stat = path.stat()
        text = path.read_text()
    except FileNotFoundError:
        return None
    age = max(0.0, time.time() - stat.st_mtime)
    try:
        fields = json.loads(text)
        return Holder(**fields, heartbeat_age_s=age)
    except (ValueError, TypeError):
        return Holder(host="?", pid=-1, started_at="?", token="?", heartbeat_age_s=age)


def _is_stale(current: Holder, me: Holder | None = None) -> bool:
    if current.heartbeat_age_s > STALE_AFTER_S:
        return True
    if current.host == socket.gethostname() and current.pid > 0 and not _alive(current.pid, current.pid_start):
        return True
    # SLURM runs one instance of a job at a time: a claim of an earlier run of our own job was left by a kill.
    return (
        me is not None
        and me.slurm_job is not None
        and current.slurm_job == me.slurm_job
        and current.slurm_restart < me.slurm_restart
    )


def _remove_stale(path: Path, stale: Holder) -> None:
    """Remove `path` if it still is the claim `stale`, holding the takeover lock while doing it."""
    lock = path.with_name(f"{path.name}.takeover")
    if not _create(lock, _me()):
        taker = _read(lock)
        if taker is not None and (taker.heartbeat_age_s > TAKEOVER_STALE_S or _is_stale(taker)):
            lock.unlink(missing_ok=True)  # left by a launcher killed mid-takeover; the next attempt proceeds
        return
    try:
        current = _read(path)
        if current is not None and current.token == stale.token:
            path.unlink(missing_ok=True)
    finally:
        lock.unlink(missing_ok=True)


def _proc_stat(pid: int) -> list[str] | None:
    """Process `pid`'s /proc/PID/stat fields from the state on (field 3 and after), or None without /proc."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _process_start(pid: int) -> int | None:
    """The start time of process `pid` in clock ticks since boot, or None if unknown."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def _alive(pid: int, started: int | None) -> bool:
    """Whether process `pid` (started at `started`, if known) still runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc to say more
    if fields[0] == "Z":  # killed, not yet reaped
        return False
    return started is None or int(fields[19]) == started
