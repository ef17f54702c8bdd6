"""The project snapshot as one deterministic zip: the job's exact source, nothing added or dropped.

Handing a job API a folder lets it apply its own ignore rules (Ray applies ``.gitignore``,
``.rayignore`` and default excludes on top of ours); a zip of the snapshot's file list does not.
Fixed timestamps make identical sources give identical bytes, so clusters can de-duplicate them.
Links the snapshot keeps (inside the folder) are stored as links, never as their targets' bytes
(see :mod:`.links`); files are read without following a link that appeared since the snapshot.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

from mlflow_workspace_plugin.capture.links import LINKS_MANIFEST, encode_links
from mlflow_workspace_plugin.capture.snapshot import Snapshot

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def build_source_zip(snapshot: Snapshot, destination: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Write ``snapshot``'s files (relative paths, file modes kept) and links (as zip links, listed in
    the links manifest), plus ``extra`` files (name -> bytes, mode 0600), to the zip ``destination``."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    extra = dict(extra or {})
    if snapshot.links or LINKS_MANIFEST in snapshot.files:  # ours, never a file of the same name
        extra[LINKS_MANIFEST] = encode_links(snapshot.links)
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(extra.items()):
            info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
            info.external_attr = (stat.S_IFREG | 0o600) << 16
            archive.writestr(info, data)
        for rel in sorted(set(snapshot.files) - set(extra)):
            mode, data = _read_no_follow(snapshot.root / rel)
            info = zipfile.ZipInfo(rel, date_time=_FIXED_DATE)
            info.external_attr = (stat.S_IFREG | (mode & 0o777)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
        for rel, target in sorted(snapshot.links):
            info = zipfile.ZipInfo(rel, date_time=_FIXED_DATE)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return destination


def _read_no_follow(path: Path) -> tuple[int, bytes]:
    """(mode, bytes) of the regular file ``path``; a link there now raises instead of being followed."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(f"{path} is no longer a regular file")
        return mode, file.read()
