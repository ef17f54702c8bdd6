"""Registered command components (``mlflow-workspace component create -f component.yml``), stored as assets.

The component YAML is validated as a pipeline step would use it, then stored with the asset store
(:mod:`.store`); its ``code`` folder is stored with it (ignore rules and symlink rules of the snapshot),
so a pipeline on any machine that reaches the workspace can run it. A registered component's ``code``
points at the stored copy, which a pipeline fetches into a private folder when it resolves the reference.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow_workspace_plugin.assets.store import AssetStore, AssetVersion

CODE_KEY = "mlflow-workspace.code_artifact"
_fetched: dict[str, Path] = {}


def create_component(path: Path, name: str | None = None, version: str | None = None,
                     store: AssetStore | None = None) -> AssetVersion:
    """Validate and register the component in ``path``; returns the stored version."""
    from mlflow_workspace_plugin.capture.snapshot import collect_snapshot
    from mlflow_workspace_plugin.capture.uploads import stage_snapshot
    from mlflow_workspace_plugin.jobs.pipeline.component import load_component_file

    component = load_component_file(path.resolve(), shown=str(path))
    store = store or AssetStore()
    spec = dict(component.raw)
    spec.pop("$schema", None)
    code = component.code_path()
    with tempfile.TemporaryDirectory(prefix="mlflow-ws-component-") as staging:
        files = None
        if code is not None:
            files = stage_snapshot(collect_snapshot(code), Path(staging) / "code")
            spec["code"] = None
            spec[CODE_KEY] = "files"
        return store.create("component", name or component.name, spec, version=version or component.version,
                            files=files, description=spec.get("description") or spec.get("display_name"))


def registered_component_mapping(reference: str, store: AssetStore | None = None) -> dict:
    """The mapping of the registered component ``reference``, its code fetched into a private folder."""
    store = store or AssetStore()
    asset = store.resolve("component", reference)
    spec = {key: value for key, value in asset.spec.items() if value is not None and key != CODE_KEY}
    if asset.spec.get(CODE_KEY):
        folder = _fetched.get(asset.run_id)
        if folder is None or not folder.exists():
            folder = store.download_files(asset, tempfile.mkdtemp(prefix=f"mlflow-ws-component-{asset.name[:30]}-"))
            _fetched[asset.run_id] = folder
        spec["code"] = str(folder)
    return spec
