"""Atomic file writes: a reader (or a crash) never sees a half-written record or checkpoint.

A write goes to a temp file next to its target (``.NAME.<random>.tmp``), is fsynced, then renamed
over the target. A process killed mid-write leaves that temp file behind;
:func:`remove_stale_temps` clears them once no one else can be writing (the runner calls it under
the cell's claim). A write that fails because the disk or the quota is full raises
:class:`~spacing.errors.DiskFull` naming the file, whatever layer (Python or PyTorch's zip writer)
noticed it.
"""

from __future__ import annotations

import errno
import glob
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO

from spacing.errors import DiskFull

_FULL = (errno.ENOSPC, errno.EDQUOT)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None], previous: Path | None = None) -> None:
    """Write through `write` into a temp file next to `path`, fsync it, then rename it over `path`.

    With `previous`, the file at `path` (if any) is first moved to `previous`, so the last good
    version survives if the new one is later found damaged. A kill between the two renames leaves
    only `previous`: the readers of such pairs fall back to it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        code = disk_full_errno(exc)
        if code is not None:
            raise DiskFull(f"the disk is full: writing {path} failed ({os.strerror(code)}).", path, code) from exc
        raise


def create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty temp file next to `path` (open for writing) and its name.

    Created with the umask's permissions, like any file the user writes (tempfile.mkstemp's 0600 would
    hide records and checkpoints from the collaborators who share a project dir).
    """
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temp files that writes of `path` killed midway left next to it; returns them.

    Call only while no other process can be writing `path`.
    """
    stale = sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def disk_full_errno(exc: BaseException) -> int | None:
    """ENOSPC or EDQUOT if `exc` (or an error it was raised from) says the disk or quota is full.

    PyTorch's zip writer reports a failed write as ``RuntimeError: [enforce fail at
    inline_container.cc:...] unexpected pos ...`` raised while handling the OSError that says why.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DiskFull):
            return current.errno
        if isinstance(current, OSError) and current.errno in _FULL:
            return current.errno
        current = current.__cause__ or current.__context__
    return None
