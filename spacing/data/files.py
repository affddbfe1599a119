"""Where dataset files live, and fetching them once on first use.

Every file-backed dataset sits in its own folder: ``dataset.root`` when set, otherwise
``$SPACING_DATA/<name>``, otherwise ``~/.cache/spacing/<name>``. A download that cannot happen
(no network, ``dataset.download=false``) ends in one :class:`DataError` that names the file to
place and the folder to place it in, so an offline cluster node can be prepared by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

from spacing.config import DatasetConfig
from spacing.errors import DataError

DATA_ENV = "SPACING_DATA"
DEFAULT_CACHE = "~/.cache/spacing"


def dataset_root(cfg: DatasetConfig) -> Path:
    """The folder that holds `cfg.name`'s files; raises DataError when that path is a file."""
    root = Path(cfg.root).expanduser() if cfg.root else Path(os.environ.get(DATA_ENV) or DEFAULT_CACHE).expanduser() / cfg.name
    if root.exists() and not root.is_dir():
        raise DataError(f"dataset.root {root} is a file, not a folder; point dataset.root at the folder that holds the {cfg.name} files.")
    return root


def download(url: str, folder: Path, filename: str, md5: str, allowed: bool, unpacked: str | None = None) -> Path:
    """Fetch `url` to `folder/filename` unless it is there (checked against `md5`), and unpack it when `unpacked` names its content.

    An archive placed by hand is used as it is. Raises DataError naming the file to place when
    it is missing and downloading is off or fails.
    """
    from torchvision.datasets.utils import download_url, extract_archive

    target = folder / filename
    place = f"place {filename} (from {url})" + (f" or its unpacked {unpacked}/ folder" if unpacked else "") + f" in {folder}"
    if not target.is_file():
        if not allowed:
            raise DataError(f"{target} is missing and dataset.download=false; {place}.")
        try:
            download_url(url, str(folder), filename, md5)
        except Exception as exc:  # urllib, socket and checksum errors all mean the same thing to the user
            target.unlink(missing_ok=True)
            raise DataError(f"could not download {filename} ({type(exc).__name__}: {exc}); {place}.") from None
    if unpacked:
        try:
            extract_archive(str(target), str(folder))
        except Exception as exc:  # tarfile, zipfile and format-detection errors
            raise DataError(f"could not unpack {target} ({type(exc).__name__}: {exc}); delete it and {place}.") from None
    return target
