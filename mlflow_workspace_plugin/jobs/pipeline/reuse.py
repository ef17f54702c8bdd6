"""Step reuse, as Azure ML does it: a deterministic step whose definition, code snapshot and input contents
are identical to an earlier successful step in the workspace is not run again; its outputs are reused.

The key of a step is a SHA-256 over its component's definition, its code snapshot's files (ignore rules
applied), its job fields but the compute, and each input: a literal's text, a local file's or folder's
content, a URI as written, and for an input bound to another step that step's own key (Merkle style,
so a changed upstream step changes every step below it). A step that is not deterministic, or reads from
one that is not, gets no key. Keys are stored on finished step runs (tag :data:`REUSE_KEY_TAG`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Run, ViewType

from mlflow_workspace_plugin.capture.snapshot import collect_snapshot
from mlflow_workspace_plugin.jobs.pipeline.spec import Step, Upstream

REUSE_KEY_TAG = "azureml.pipeline.reuse_key"
REUSED_RUN_TAG = "azureml.pipeline.reused_run_id"
_MAX_EXPERIMENTS = 1000
_CHUNK = 1 << 20


def step_key(step: Step, upstream_keys: Mapping[str, str | None]) -> str | None:
    """The reuse key of ``step`` (None: the step is never reused)."""
    if not step.deterministic:
        return None
    digest = hashlib.sha256()
    digest.update(step.component.reuse_text.encode())
    digest.update(json.dumps({k: v for k, v in step.job_fields.items() if k != "compute"}, sort_keys=True,
                             default=str).encode())
    digest.update(json.dumps(step.sweep, sort_keys=True, default=str).encode())
    code = step.component.code_path()
    if code is not None:
        _hash_snapshot(digest, code)
    for name in sorted(step.values):
        value = step.values[name]
        digest.update(f"\0input:{name}\0".encode())
        if isinstance(value, Upstream):
            key = upstream_keys.get(value.step)
            if key is None:
                return None
            digest.update(f"{key}:{value.output}:{value.mode}".encode())
        elif isinstance(value, dict):
            digest.update(json.dumps({k: v for k, v in value.items() if k != "path"}, sort_keys=True).encode())
            _hash_data(digest, value.get("path"))
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def find_reusable(client: MlflowClient, key: str) -> Run | None:
    """The newest finished step run with reuse key ``key`` (one that itself reused another counts too)."""
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY,
                                                                       max_results=_MAX_EXPERIMENTS)]
    if not experiments:
        return None
    runs = client.search_runs(experiments, filter_string=f"tags.`{REUSE_KEY_TAG}` = '{key}' and "
                              "attributes.status = 'FINISHED'", max_results=1,
                              order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None


def outputs_run_id(run: Run) -> str:
    """The run that holds the outputs of ``run`` (the original run when ``run`` reused one)."""
    return run.data.tags.get(REUSED_RUN_TAG) or run.info.run_id


def _hash_snapshot(digest: Any, code: Path) -> None:
    snapshot = collect_snapshot(code)
    for relative in snapshot.files:
        digest.update(f"\0file:{relative}\0".encode())
        _hash_file(digest, snapshot.root / relative)


def _hash_data(digest: Any, path: Any) -> None:
    if not isinstance(path, str):
        digest.update(repr(path).encode())
        return
    local = Path(path)
    if "://" in path or not local.is_absolute() or not local.exists():
        digest.update(path.encode())  # a URI: identified by what it says
        return
    if local.is_file():
        _hash_file(digest, local)
        return
    for file in sorted(p for p in local.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(f"\0file:{file.relative_to(local).as_posix()}\0".encode())
        _hash_file(digest, file)


def _hash_file(digest: Any, path: Path) -> None:
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
