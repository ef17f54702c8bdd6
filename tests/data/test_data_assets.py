"""Data assets: Azure's data YAML -> ``mlflow-workspace data create``, used by jobs as azureml:<name>:<version>
/ @latest, the exact version recorded on the run; model inputs and outputs through MLflow's model registry."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest
from helpers import write_file
from mlflow import MlflowClient

from mlflow_workspace_plugin.assets.data import create_data_asset, resolve_data
from mlflow_workspace_plugin.assets.store import AssetError
from mlflow_workspace_plugin.execution import live_runs
from mlflow_workspace_plugin.jobs import JobSpecError, load_job, submit_job

pytestmark = pytest.mark.slow


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlflow_workspace_plugin.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def finish(handle) -> None:
    assert handle.wait(), handle.failure_message()
    assert live_runs.wait_settled(handle)  # the run's end steps: deliver outputs, remove its folder


def test_data_cli_create_list_show_archive(local_tracking, tmp_path):
    write_file(tmp_path / "data" / "iris.csv", "a,b\n1,2\n")
    write_file(tmp_path / "local-file.yml", textwrap.dedent("""
        $schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
        name: iris
        version: 1
        type: uri_file
        path: data/iris.csv
        description: Iris from a local file.
        tags: {source: local}
    """))
    write_file(tmp_path / "cloud-file.yml", textwrap.dedent("""
        name: iris-cloud
        type: uri_file
        path: wasbs://datasets@azuremlexamples.blob.core.windows.net/iris.csv
    """))
    created = cli("data", "create", "-f", "local-file.yml", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout[created.stdout.index("{"):])["reference"] == "azureml:iris:1"
    assert cli("data", "create", "-f", "local-file.yml", "--version", "2", cwd=tmp_path).returncode == 0
    assert cli("data", "create", "-f", "cloud-file.yml", cwd=tmp_path).returncode == 0
    listing = cli("data", "list", cwd=tmp_path).stdout
    assert "iris:2" in listing and "iris:1" in listing and "(stored in the workspace)" in listing
    assert "iris-cloud:1" in listing and "wasbs://datasets@azuremlexamples.blob.core.windows.net/iris.csv" in listing
    shown = json.loads(cli("data", "show", "iris-cloud", cwd=tmp_path).stdout)
    assert shown["path"].startswith("wasbs://") and "stored_at" not in shown
    again = cli("data", "create", "-f", "local-file.yml", cwd=tmp_path)
    assert again.returncode == 1 and again.stderr.strip().splitlines()[-1] == (
        f"Error: Version '1' of data asset 'iris' already exists in the workspace at {local_tracking}; give another "
        "version (versions are immutable)")
    assert cli("data", "archive", "iris", "--version", "2", cwd=tmp_path).returncode == 0
    assert resolve_data("azureml:iris@latest", local_tracking).version == "1"  # archived 2 is hidden from @latest
    assert resolve_data("azureml:iris:2", local_tracking).version == "2"  # still usable by exact version


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\ntype: uri_file\npath: missing.csv\n", "does not exist"),
    ("name: x\ntype: uri_folder\npath: https://example.org/folder/\n", "a web server cannot list a folder"),
    ("name: x\ntype: uri_file\npath: azureml://datastores/ws/paths/../../etc/passwd\n", "'..' and '.' are not allowed"),
    ("name: x\ntype: table\npath: a.csv\n", "type 'table' is not a data asset type"),
    ("name: \"x'; $(touch pwned)\"\npath: a.csv\n", "Invalid asset name"),
    ("name: x\npath: s3://bucket/a.csv\n", "s3:// is not supported"),
    ("name: x\ntype: uri_folder\npath: linked\n", "links out of an asset folder are never uploaded"),
    ("name: x\nformat: csv\npath: a.csv\n", "unknown key 'format'"),
])
def test_bad_data_yaml_is_one_error(local_tracking, tmp_path, text, message):
    write_file(tmp_path / "a.csv", "1\n")
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "out").symlink_to(Path("/etc"))
    with pytest.raises(AssetError) as error:
        create_data_asset(write_file(tmp_path / "d.yml", text), local_tracking)
    assert message in error.value.message
    assert not (tmp_path / "pwned").exists()


def test_job_uses_assets_and_records_the_exact_version(local_tracking, tmp_path, monkeypatch):
    write_file(tmp_path / "v1" / "rows.csv", "one\n")
    write_file(tmp_path / "v2" / "rows.csv", "two\n")
    for version in ("1", "2"):
        write_file(tmp_path / f"d{version}.yml", f"name: rows\nversion: {version}\ntype: uri_folder\npath: v{version}\n")
        create_data_asset(tmp_path / f"d{version}.yml", local_tracking)
    write_file(tmp_path / "lake" / "table.csv", "lake\n")
    write_file(tmp_path / "u.yml", "name: lake\ntype: uri_file\npath: azureml://datastores/workspaceblobstore/paths/t.csv\n")
    store_folder = Path(local_tracking.removeprefix("azureml-local://")) / "datastores" / "workspaceblobstore"
    write_file(store_folder / "t.csv", "from the datastore\n")
    create_data_asset(tmp_path / "u.yml", local_tracking)
    job_file = write_file(tmp_path / "job.yml", textwrap.dedent("""
        command: cat ${{inputs.latest}}/rows.csv ${{inputs.first}}/rows.csv ${{inputs.lake}} > ${{outputs.out}}/all.txt
        inputs:
          latest: {type: uri_folder, path: azureml:rows@latest}
          first: {type: uri_folder, path: azureml:rows:1, mode: download}
          lake: {type: uri_file, path: azureml:lake:1}
        outputs: {out: {}}
        experiment_name: asset-jobs
    """))
    handle = submit_job(load_job(job_file))
    finish(handle)
    client = MlflowClient(local_tracking)
    run = client.get_run(handle.run_id)
    all_text = Path(client.download_artifacts(handle.run_id, "outputs/out/all.txt", str(tmp_path / "dl"))).read_text()
    assert all_text == "two\none\nfrom the datastore\n"
    assert run.data.tags["azureml.inputs.latest"] == "azureml:rows:2"  # the exact version, not @latest
    assert run.data.tags["azureml.inputs.first"] == "azureml:rows:1"
    datasets = {d.dataset.name + ":" + {t.key: t.value for t in d.tags}["azureml.data.version"]: d
                for d in run.inputs.dataset_inputs}
    assert sorted(datasets) == ["lake:1", "rows:1", "rows:2"]
    assert {t.key: t.value for t in datasets["rows:2"].tags}["mlflow.data.context"] == "input:latest"


def test_unknown_asset_is_one_error_before_anything_runs(local_tracking, tmp_path):
    job_file = write_file(tmp_path / "job.yml", "command: cat ${{inputs.x}}\ninputs:\n  x: {path: azureml:nothing@latest}\n")
    with pytest.raises(JobSpecError) as error:
        submit_job(load_job(job_file))
    assert "inputs.x: No data asset named 'nothing' in the workspace" in error.value.message
    assert MlflowClient(local_tracking).get_experiment_by_name("Default") is None or not MlflowClient(
        local_tracking).search_runs(["0"])


def test_model_inputs_and_outputs(local_tracking, tmp_path):
    model_dir = write_file(tmp_path / "model" / "MLmodel", "flavors: {}\n").parent
    write_file(model_dir / "weights.txt", "w1\n")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(model_dir), "model")
    client = MlflowClient(local_tracking)
    client.create_registered_model("iris-model")
    client.create_model_version("iris-model", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    job_file = write_file(tmp_path / "job.yml", textwrap.dedent("""
        command: >-
          cat ${{inputs.local}}/weights.txt ${{inputs.registered}}/weights.txt ${{inputs.from_run}}/weights.txt
          ${{inputs.by_uri}}/weights.txt > ${{outputs.trained}}/weights.txt && echo "flavors: {}" > ${{outputs.trained}}/MLmodel
        inputs:
          local: {type: mlflow_model, path: model}
          registered: {type: custom_model, path: azureml:iris-model:1}
          from_run: {type: mlflow_model, path: "runs:/RUN/model"}
          by_uri: {type: triton_model, path: models:/iris-model@latest}
        outputs:
          trained: {type: mlflow_model, name: trained-iris, version: 3}
        experiment_name: model-jobs
    """).replace("RUN", run.info.run_id).replace("@latest", "/latest"))
    handle = submit_job(load_job(job_file))
    finish(handle)
    got = Path(client.download_artifacts(handle.run_id, "outputs/trained/weights.txt", str(tmp_path / "dl")))
    assert got.read_text() == "w1\n" * 4
    version = client.get_model_version("trained-iris", "1")
    assert version.run_id == handle.run_id and version.tags["azureml.requested_version"] == "3"
    assert client.get_run(handle.run_id).data.tags["azureml.outputs.trained.model"] == "models:/trained-iris/1"
    downloaded = mlflow.artifacts.download_artifacts("models:/trained-iris/1", dst_path=str(tmp_path / "m"))
    assert (Path(downloaded) / "weights.txt").read_text() == "w1\n" * 4
