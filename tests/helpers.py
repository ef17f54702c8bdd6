"""Helpers shared by every test: free ports, stopping what a test started, writing test
projects and reading what a run stored."""

from __future__ import annotations

import json
import signal
import textwrap
from pathlib import Path

from mlflow_workspace_plugin.ports import free_port  # noqa: F401 - the one free_port of the tests
from mlflow_workspace_plugin.testing.servers import stop_process  # noqa: F401 - shared with the benchmarks

REPO_ROOT = Path(__file__).resolve().parent.parent


def as_from_a_terminal() -> None:
    """``preexec_fn`` of a child a test sends Ctrl-C: SIGINT handled as in a terminal. A shell without job
    control (CI's ``bash .ci/run &``, ``nohup``) starts background commands with SIGINT ignored, and every
    process the test suite starts would inherit that; a terminal user's command has it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_project(root: Path, script: str, *, parameters: str = "", command: str | None = None,
                  extra_files: dict[str, str] | None = None, mlproject: str | None = None) -> Path:
    """Write a small MLflow project whose ``main`` entry point runs ``script.py``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "script.py").write_text(textwrap.dedent(script), encoding="utf-8")
    if mlproject is None:
        mlproject = textwrap.dedent(
            f"""\
            name: test-project
            entry_points:
              main:
                parameters: {{{parameters}}}
                command: "{command or 'python script.py'}"
            """
        )
    (root / "MLproject").write_text(mlproject, encoding="utf-8")
    for name, content in (extra_files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def artifact_paths(client, run_id: str, path: str | None = None) -> list[str]:
    """All artifact file paths of a run, recursively."""
    found: list[str] = []
    for item in client.list_artifacts(run_id, path):
        found.extend(artifact_paths(client, run_id, item.path) if item.is_dir else [item.path])
    return found


def read_artifact(client, run_id: str, path: str) -> str:
    return Path(client.download_artifacts(run_id, path)).read_text(encoding="utf-8")


def write_file(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (parents created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
