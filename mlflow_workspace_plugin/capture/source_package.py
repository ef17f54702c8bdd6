"""The project snapshot as one deterministic zip: the job's exact source, nothing added or dropped.

Handing a job API a folder lets it apply its own ignore rules (Ray applies ``.gitignore``,
``.rayignore`` and default excludes on top of ours); a zip of the snapshot's file list does not.
Fixed timestamps make identical sources give identical bytes, so clusters can de-duplicate them.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

from mlflow_workspace_plugin.capture.snapshot import Snapshot

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def build_source_zip(snapshot: Snapshot, destination: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Write ``snapshot``'s files (relative paths, file modes kept), plus ``extra`` files (name ->
    bytes, mode 0600), to the zip ``destination``."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted((extra or {}).items()):
            info = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
            info.external_attr = (stat.S_IFREG | 0o600) << 16
            archive.writestr(info, data)
        for rel in sorted(snapshot.files):
            path = snapshot.root / rel
            info = zipfile.ZipInfo(rel, date_time=_FIXED_DATE)
            info.external_attr = (stat.S_IFREG | (path.stat().st_mode & 0o777)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return destination
