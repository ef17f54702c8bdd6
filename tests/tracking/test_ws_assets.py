"""Assets stored over ``azureml://``: a second machine (a fresh process) sees what the first created."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlflow_workspace_plugin.assets.store import AssetStore

pytestmark = pytest.mark.slow


def test_asset_created_over_azureml_is_seen_by_another_process(workspace, tmp_path):
    folder = tmp_path / "iris"
    folder.mkdir()
    (folder / "iris.csv").write_text("a,b\n1,2\n")
    created = AssetStore(workspace.uri).create("data", "iris-remote", {"type": "uri_folder"}, files=folder)
    assert created.version == "1"

    probe = (
        "import json, sys; from mlflow_workspace_plugin.assets.store import AssetStore;"
        "s = AssetStore(sys.argv[1]); a = s.get('data', 'iris-remote');"
        "p = s.download_files(a, sys.argv[2]);"
        "print(json.dumps([a.version, a.spec, sorted(x.name for x in p.iterdir())]))"
    )
    out = subprocess.run([sys.executable, "-c", probe, workspace.uri, str(tmp_path / "dl")],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == ["1", {"type": "uri_folder"}, ["iris.csv"]]
