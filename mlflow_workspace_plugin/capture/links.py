"""Symbolic links of a snapshot in a job's source package (standard library only: the job runner
restores them before the command starts, before MLflow is imported).

A source package stores each link twice: as a zip symlink entry (what ``unzip`` restores) and in
the manifest :data:`LINKS_MANIFEST` (``{path: relative target}``), because Ray's extractor writes a
zip link as a plain file holding the target's path. :func:`restore_links` turns those files back into
links; every entry must stay inside the folder (a hand-made manifest cannot point a link outside).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from mlflow_workspace_plugin.capture.names import JOB_DATA_DIR

LINKS_MANIFEST = f"{JOB_DATA_DIR}/links.json"


def encode_links(links: Iterable[tuple[str, str]]) -> bytes:
    """The manifest's bytes for ``(relative path, relative target)`` pairs."""
    return json.dumps(dict(sorted(links)), indent=0, sort_keys=True).encode("utf-8")


def manifest_links(folder: Path) -> dict[str, str]:
    """The links listed in ``folder``'s manifest (path -> target) that stay inside ``folder``."""
    manifest = Path(folder) / LINKS_MANIFEST
    if manifest.is_symlink() or not manifest.is_file():
        return {}
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(entries, dict):
        return {}
    return {rel: target for rel, target in entries.items()
            if isinstance(rel, str) and isinstance(target, str) and _stays_inside(rel, target)}


def restore_links(folder: Path) -> list[str]:
    """Replace each path listed in ``folder``'s manifest by its link; return the paths restored."""
    folder = Path(folder)
    real = os.path.realpath(folder)
    restored = []
    for rel, target in sorted(manifest_links(folder).items()):
        path = folder / rel
        if os.path.realpath(path.parent) != os.path.normpath(os.path.join(real, os.path.dirname(rel))):
            continue  # its folder is itself a link: never write through one
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
        restored.append(rel)
    return restored


def _stays_inside(rel: str, target: str) -> bool:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts or "\0" in rel + target:
        return False
    if os.path.isabs(target):
        return False
    depth = len(path.parts) - 1  # folders between the root and the link
    for part in PurePosixPath(target).parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return False
    return True


def link_target_inside(link: Path, root: Path) -> str | None:
    """The target of the link ``link`` relative to the link's folder, when it ends (after every link
    of a chain) inside ``root`` (a resolved folder holding ``link`` in an unlinked sub-folder); else
    None (outside, or a loop). A dangling link is judged by where it would point."""
    try:
        target = Path(os.path.realpath(link, strict=True))
    except FileNotFoundError:
        target = Path(os.path.realpath(link))
    except OSError:  # a loop
        return None
    if not is_inside(target, root):
        return None
    return os.path.relpath(target, link.parent)


def is_inside(path: Path, root: Path) -> bool:
    """Whether ``path`` is ``root`` or below it (both resolved)."""
    return path == root or root in path.parents


def copy_tree_contained(source: Path, target: Path) -> list[str]:
    """Copy the folder ``source`` to ``target`` without following a link: links ending inside
    ``source`` become relative links in the copy, the others (and special files) are left out.
    Returns the links left out (paths relative to ``source``)."""
    root = Path(os.path.realpath(source))
    skipped: list[str] = []
    for directory, dirnames, filenames in os.walk(root):
        here = Path(directory)
        into = target / here.relative_to(root)
        into.mkdir(parents=True, exist_ok=True)
        linked = [d for d in dirnames if (here / d).is_symlink()]
        dirnames[:] = sorted(d for d in dirnames if d not in linked)
        for name in sorted([*filenames, *linked]):
            path = here / name
            if path.is_symlink():
                relative = link_target_inside(path, root)
                if relative is None:
                    skipped.append(path.relative_to(root).as_posix())
                else:
                    os.symlink(relative, into / name)
            elif path.is_file():
                shutil.copy2(path, into / name, follow_symlinks=False)
    return skipped
