"""Project source snapshot: which files, honouring ``.amlignore`` else ``.gitignore``, size-capped.

Symbolic links are treated as git treats them: a link is stored as a link, never as its target's
bytes. A link whose target (followed to the end of any chain) lies inside the project folder is kept
as a *relative* link (in private working copies and in a job's source package; the ``snapshot/``
artifact, which cannot hold links, skips it with one warning naming it). A link pointing outside the
folder, or into a loop, is never followed anywhere: it is left out with one warning naming it. The
walk never descends into linked folders, and special files (sockets, FIFOs, devices) are left out.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pathspec
from mlflow.exceptions import ExecutionException

from mlflow_workspace_plugin.capture.links import is_inside, link_target_inside
from mlflow_workspace_plugin.env_settings import env_number

IGNORE_FILES = (".amlignore", ".gitignore")
ALWAYS_EXCLUDED = (".git/", "__pycache__/", ".ipynb_checkpoints/")
MAX_MB_ENV = "MLFLOW_WORKSPACE_SNAPSHOT_MAX_MB"
MAX_FILES_ENV = "MLFLOW_WORKSPACE_SNAPSHOT_MAX_FILES"
DEFAULT_MAX_MB = 300.0
DEFAULT_MAX_FILES = 2000
_logger = logging.getLogger("mlflow.projects.azureml")
_warned: set[tuple[str, str]] = set()  # (root, link) already warned about in this process
_warned_lock = threading.Lock()


@dataclass(frozen=True)
class Snapshot:
    """The files (relative POSIX paths) that make up a project snapshot."""

    root: Path
    files: tuple[str, ...]
    total_bytes: int
    ignore_file: str | None
    links: tuple[tuple[str, str], ...] = ()  # (relative path, relative target) of links kept as links
    skipped_links: tuple[str, ...] = ()  # links pointing outside the folder (never followed)


def load_ignore_spec(root: Path) -> tuple[pathspec.GitIgnoreSpec, str | None]:
    """The ignore rules: ``.amlignore`` if present, else ``.gitignore``, plus fixed exclusions.

    An ignore file that is a link is read only when it resolves inside ``root`` to a regular file.
    """
    lines = list(ALWAYS_EXCLUDED)
    used = None
    for name in IGNORE_FILES:
        candidate = root / name
        if candidate.is_file() and is_inside(Path(os.path.realpath(candidate)), root):
            lines += candidate.read_text(encoding="utf-8", errors="replace").splitlines()
            used = name
            break
    return pathspec.GitIgnoreSpec.from_lines(lines), used


def collect_snapshot(root: str | os.PathLike) -> Snapshot:
    """Walk ``root`` and return the snapshot file list; raise if over the size or count limit."""
    root = Path(root).resolve()
    spec, used = load_ignore_spec(root)
    max_bytes = env_number(MAX_MB_ENV, DEFAULT_MAX_MB, allow_zero=False) * 1024 * 1024
    max_files = int(env_number(MAX_FILES_ENV, DEFAULT_MAX_FILES, allow_zero=False))
    files: list[str] = []
    links: list[tuple[str, str]] = []
    skipped: list[str] = []
    total = 0
    for directory, dirnames, filenames in os.walk(root):  # never descends into linked folders
        rel_dir = Path(directory).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        linked = sorted(d for d in dirnames if os.path.islink(os.path.join(directory, d)))
        dirnames[:] = sorted(d for d in dirnames if d not in linked and not spec.match_file(prefix + d + "/"))
        for name in sorted([*filenames, *linked]):
            rel = prefix + name
            path = Path(directory) / name
            if spec.match_file(rel) or (name in linked and spec.match_file(rel + "/")):
                continue
            if path.is_symlink():
                target = link_target_inside(path, root)
                if target is None:
                    skipped.append(rel)
                else:
                    links.append((rel, target))
            elif path.is_file():
                files.append(rel)
                total += path.stat().st_size
            else:
                continue
            if total > max_bytes or len(files) + len(links) > max_files:
                raise ExecutionException(
                    f"The project snapshot of {root} exceeds the limit of {max_bytes / 1048576:.0f} MB "
                    f"and {max_files} files (at {rel}). Exclude data and outputs with an "
                    f"{IGNORE_FILES[0]} (or {IGNORE_FILES[1]}) file in the project folder, or raise "
                    f"{MAX_MB_ENV} / {MAX_FILES_ENV}."
                )
    _warn_skipped(root, skipped)
    return Snapshot(root=root, files=tuple(files), total_bytes=total, ignore_file=used, links=tuple(links),
                    skipped_links=tuple(skipped))


def _warn_skipped(root: Path, skipped: list[str]) -> None:
    with _warned_lock:
        new = [rel for rel in skipped if (str(root), rel) not in _warned]
        _warned.update((str(root), rel) for rel in new)
    if new:
        shown = ", ".join(new[:10]) + (f" and {len(new) - 10} more" if len(new) > 10 else "")
        _logger.warning("mlflow-workspace: left out of the snapshot of %s: %d symbolic link(s) pointing outside "
                        "the folder (never followed): %s", root, len(new), shown)
