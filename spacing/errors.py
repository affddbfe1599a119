"""Errors a user can cause and fix, and the exit codes of the command line.

Anything raised as a :class:`UserError` is shown as one sentence (no traceback) and ends the
process with exit code 2; everything else is a bug and keeps its traceback (exit code 1).
"""

from pathlib import Path

EXIT_BUG = 1
"""An unexpected exception: its traceback is printed."""
EXIT_USER_ERROR = 2
"""Bad input the user can fix: one sentence on stderr, nothing trained."""
EXIT_DIVERGED = 3
"""A single run whose loss stopped being finite (recorded as ``diverged``)."""
EXIT_INCOMPLETE = 4
"""A multirun in which at least one cell did not complete (failed, diverged or unfinished)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT, as shells report it): the run stays resumable."""


class UserError(Exception):
    """A problem in the user's input (config, data location, hardware request) with a known fix."""


class ConfigError(UserError):
    """A config value is out of range or inconsistent with another one."""


class DataError(UserError):
    """A dataset is missing or malformed on disk."""


class DeviceError(UserError):
    """The requested device is not available on this machine."""


class StorageError(UserError):
    """An output dir cannot be written: read-only, no permission, or the disk is full."""


class DiskFull(StorageError):
    """A write failed because the disk (or the user's quota on it) is full: `path` is what it was writing."""

    def __init__(self, message: str, path: Path, errno: int) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno

    def __reduce__(self) -> tuple[type, tuple[str, Path, int]]:  # picklable, e.g. across launcher processes
        return (DiskFull, (str(self), self.path, self.errno))
