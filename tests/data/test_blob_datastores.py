"""Blob datastores against a real Azurite (Azure's storage emulator) on loopback: every URI spelling, every
input mode, SAS tokens from the environment that never show, hostile blob names, bounded listings, outputs
uploaded when a job ends, locally and on the test Ray head."""

from __future__ import annotations

import json
import logging
import os
import textwrap
from pathlib import Path

import pytest
from azurite import ACCOUNT
from helpers import write_file
from mlflow import MlflowClient

from mlflow_workspace_plugin.execution import live_runs
from mlflow_workspace_plugin.jobs import DataInput, load_job, submit_job
from mlflow_workspace_plugin.jobs.errors import JobInputError
from mlflow_workspace_plugin.jobs.inputs import materialize_input

pytestmark = pytest.mark.slow
SAS_ENV = "TEST_RAW_SAS"


@pytest.fixture(scope="module")
def blobs(azurite):
    """Containers ``raw`` (SAS access) and ``public`` (anonymous read) with a few blobs."""
    service = azurite.service()
    for name, public in (("raw", None), ("public", "container"), ("out", None)):
        if not service.get_container_client(name).exists():
            service.create_container(name, public_access=public)
    raw = service.get_container_client("raw")
    for name, data in {"iris/iris.csv": b"a,b\n1,2\n", "iris/parts/p1.csv": b"1\n", "iris/parts/p2.csv": b"2\n",
                       "odd/it's $(touch pwned) `x`.csv": b"odd\n"}.items():
        raw.upload_blob(name, data, overwrite=True)
    for index in range(6):
        raw.upload_blob(f"many/{index}.txt", b"x", overwrite=True)
    service.get_container_client("public").upload_blob("sample/iris.csv", b"public\n", overwrite=True)
    return azurite


@pytest.fixture
def blob_config(blobs, write_config, monkeypatch):
    sas = blobs.container_sas("raw")
    monkeypatch.setenv(SAS_ENV, sas)
    monkeypatch.setenv("TEST_OUT_SAS", blobs.container_sas("out", write=True))
    common = {"account_name": ACCOUNT, "endpoint": blobs.account_url}
    write_config({
        "raw": {"type": "azure_blob", "container_name": "raw", "credentials": {"sas_token_env": SAS_ENV}, **common},
        "lake": {"type": "azure_data_lake_gen2", "filesystem": "raw", "credentials": {"sas_token_env": SAS_ENV},
                 **common},
        "pub": {"type": "azure_blob", "container_name": "public", "credentials": {"anonymous": True}, **common},
        "out": {"type": "azure_blob", "container_name": "out", "credentials": {"sas_token_env": "TEST_OUT_SAS"},
                **common},
    })
    return sas


def data_input(uri: str, *, mode: str = "ro_mount", type: str = "uri_file") -> DataInput:
    return DataInput(name="data", type=type, uri=uri, mode=mode)


def files_under(folder: str | Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file())


def test_every_uri_spelling_and_mode_reads_the_blob(blob_config, blobs, tmp_path):
    spellings = [
        "azureml://datastores/raw/paths/iris",
        f"wasbs://raw@{ACCOUNT}.blob.core.windows.net/iris",
        f"abfss://raw@{ACCOUNT}.dfs.core.windows.net/iris",  # Azurite has no DFS endpoint: the Blob endpoint
        "azureml://datastores/lake/paths/iris/",
        f"{blobs.account_url}/raw/iris",  # a URL under the datastore's container URL
    ]
    for index, uri in enumerate(spellings):
        for mode in ("ro_mount", "download"):
            folder = materialize_input(data_input(uri, mode=mode, type="uri_folder"), tmp_path / f"p{index}{mode}")
            assert files_under(folder) == ["iris.csv", "parts/p1.csv", "parts/p2.csv"], uri
        one = materialize_input(data_input(uri.rstrip("/") + "/iris.csv"), tmp_path / f"f{index}")
        assert Path(one).read_text() == "a,b\n1,2\n" and Path(one).name == "iris.csv"
        assert materialize_input(data_input(uri, mode="direct"), tmp_path) == uri


def test_public_container_reads_anonymously(blob_config, tmp_path):
    got = materialize_input(data_input("azureml://datastores/pub/paths/sample/iris.csv"), tmp_path)
    assert Path(got).read_text() == "public\n"


def test_sas_token_never_shows(blob_config, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    signature = blob_config.split("sig=")[1].split("&")[0]
    with pytest.raises(JobInputError) as error:
        materialize_input(data_input("azureml://datastores/raw/paths/iris/missing.csv"), tmp_path, source_file="j.yml")
    assert "j.yml: inputs.data: azureml://datastores/raw/paths/iris/missing.csv: not found" in error.value.message
    with pytest.raises(JobInputError) as wrong:  # a URL that carries a SAS of its own: redacted in the error
        materialize_input(data_input(f"https://{ACCOUNT}.blob.core.windows.net/nocontainer/x.csv?sv=1&sig={signature}"),
                          tmp_path)
    for text in (error.value.message, wrong.value.message, caplog.text):
        assert signature not in text and blob_config not in text


def test_job_reads_blobs_and_uploads_outputs(blob_config, blobs, tmp_path, monkeypatch):
    job_file = write_file(tmp_path / "job" / "job.yml", textwrap.dedent("""
        command: >-
          cat ${{inputs.odd}} > ${{outputs.copy}}/odd.txt &&
          ls ${{inputs.iris}} > ${{outputs.copy}}/listing.txt
        inputs:
          odd: {type: uri_file, path: "azureml://datastores/raw/paths/odd/it's $(touch pwned) `x`.csv"}
          iris: {type: uri_folder, path: "wasbs://raw@devstoreaccount1.blob.core.windows.net/iris", mode: download}
        outputs:
          copy: {type: uri_folder, path: azureml://datastores/out/paths/results/run1}
        experiment_name: blob-jobs
    """))
    monkeypatch.chdir(tmp_path / "job")
    handle = submit_job(load_job(job_file), stream=False)
    assert handle.wait(), handle.failure_message()
    assert live_runs.wait_settled(handle)  # the run's end steps: deliver outputs, remove its folder
    run = MlflowClient(handle.tracking_uri).get_run(handle.run_id)
    assert not (tmp_path / "job" / "pwned").exists() and not Path("pwned").exists()
    assert sorted(p.name for p in (tmp_path / "job").iterdir()) == ["job.yml"]  # downloads went to a private folder
    out = blobs.service().get_container_client("out")
    assert out.download_blob("results/run1/odd.txt").readall() == b"odd\n"
    assert out.download_blob("results/run1/listing.txt").readall().split() == [b"iris.csv", b"parts"]
    assert run.data.tags["azureml.outputs.copy.uploaded_to"] == "azureml://datastores/out/paths/results/run1"
    signature = blob_config.split("sig=")[1].split("&")[0]
    for text in [*run.data.tags.values(), *run.data.params.values()]:
        assert signature not in text


def test_huge_listing_is_bounded(blob_config, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_WORKSPACE_DATASTORE_MAX_FILES", "5")
    with pytest.raises(JobInputError) as error:
        materialize_input(data_input("azureml://datastores/raw/paths/many", type="uri_folder"), tmp_path)
    assert "holds more than 5 files; name a smaller folder or raise $MLFLOW_WORKSPACE_DATASTORE_MAX_FILES" in (
        error.value.message)
    assert not (tmp_path / "inputs" / "data").exists()  # nothing written before the check


def test_ray_job_takes_blob_data_along(blob_config, blobs, ray_head, tmp_path, monkeypatch):
    pytest.importorskip("ray.job_submission", reason="Ray is not installed (pip install -e '.[ray]')")
    from ray_cluster import compute_targets

    path = Path(os.environ["MLFLOW_WORKSPACE_CONFIG"])
    data = json.loads(path.read_text())
    data["compute"] = compute_targets(ray_head.address)
    path.write_text(json.dumps(data))
    job_file = write_file(tmp_path / "job" / "job.yml", textwrap.dedent("""
        command: cp ${{inputs.iris}}/parts/p2.csv ${{outputs.out}}/p2.csv
        inputs: {iris: {type: uri_folder, path: azureml://datastores/raw/paths/iris}}
        outputs: {out: {path: azureml://datastores/out/paths/ray/run1}}
        compute: azureml:fast-cluster
        experiment_name: blob-ray
    """))
    handle = submit_job(load_job(job_file))
    assert handle.wait(), handle.failure_message()
    assert live_runs.wait_settled(handle)
    assert blobs.service().get_container_client("out").download_blob("ray/run1/p2.csv").readall() == b"2\n"
