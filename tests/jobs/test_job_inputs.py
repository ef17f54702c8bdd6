"""Input materialisation against real sources: local files, a local http.server, a local MLflow store."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from mlflow_workspace_plugin.jobs import DataInput, JobSpecError, LiteralInput, load_job, render_command
from mlflow_workspace_plugin.jobs.errors import JobInputError
from mlflow_workspace_plugin.jobs.inputs import (
    command_values,
    describe_io,
    materialize_input,
    prepare_outputs,
    redact_uri,
)


def data_input(uri: str, *, mode: str = "ro_mount", type: str = "uri_file", local: Path | None = None) -> DataInput:
    return DataInput(name="data", type=type, uri=uri, local_path=local, mode=mode)


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --- literals and local data ----------------------------------------------------------------------------


def test_literals_become_their_text(tmp_path):
    assert materialize_input(LiteralInput(name="lr", value=0.01), tmp_path) == "0.01"
    assert materialize_input(LiteralInput(name="n", value=3), tmp_path) == "3"
    assert materialize_input(LiteralInput(name="flag", value=True), tmp_path) == "True"
    assert materialize_input(LiteralInput(name="s", value="two words"), tmp_path) == "two words"
    with pytest.raises(JobInputError, match="job.yml: inputs.opt: has no value"):
        materialize_input(LiteralInput(name="opt", value=None), tmp_path, source_file="job.yml")


def test_local_mount_is_the_path_itself_without_a_copy(job_dir, tmp_path):
    private = tmp_path / "private"
    csv = job_dir / "data" / "iris.csv"
    assert materialize_input(data_input(str(csv), local=csv), private) == str(csv)
    folder = job_dir / "data"
    assert materialize_input(data_input(str(folder), type="uri_folder", local=folder), private) == str(folder)
    assert files_in(private) == []


def test_local_download_is_a_private_copy(job_dir, tmp_path):
    private = tmp_path / "private"
    csv = job_dir / "data" / "iris.csv"
    copied = Path(materialize_input(data_input(str(csv), mode="download", local=csv), private))
    assert copied == private / "inputs" / "data" / "iris.csv"
    assert copied.read_text() == csv.read_text()
    copied.write_text("changed")
    assert csv.read_text() == "a,b\n1,2\n"  # the source is untouched
    folder = job_dir / "data"
    spec = data_input(f"file://{folder}", mode="download", type="uri_folder", local=folder)
    copied_folder = Path(materialize_input(spec, private))
    assert files_in(copied_folder) == ["images/one.txt", "iris.csv"]
    assert materialize_input(spec, private) == str(copied_folder)  # again: replaced, not nested


def test_direct_passes_the_uri(job_dir, tmp_path):
    tmp_path = tmp_path / "private"
    assert materialize_input(data_input("https://example.org/a.csv", mode="direct"), tmp_path) == (
        "https://example.org/a.csv"
    )
    assert materialize_input(data_input("runs:/abc/model", mode="direct"), tmp_path) == "runs:/abc/model"
    uri = f"file://{job_dir}/data/iris.csv"
    assert materialize_input(data_input(uri, mode="direct", local=job_dir / "data/iris.csv"), tmp_path) == uri
    assert files_in(tmp_path) == []


# --- http(s) ----------------------------------------------------------------------------------------------


def test_http_input_is_downloaded(http_files, tmp_path):
    base, _ = http_files
    for mode in ("ro_mount", "download"):
        path = Path(materialize_input(data_input(f"{base}/iris.csv", mode=mode), tmp_path))
        assert path == tmp_path / "inputs" / "data" / "iris.csv"
        assert path.read_text() == "a,b\n1,2\n"
    spaced = Path(materialize_input(data_input(f"{base}/with%20space.txt"), tmp_path))
    assert spaced.name == "with space.txt" and spaced.read_text() == "spaced\n"
    assert files_in(tmp_path) == ["inputs/data/with space.txt"]  # no partial files left


def test_http_missing_file_names_the_url_without_secrets(http_files, tmp_path):
    base, _ = http_files
    host = base.removeprefix("http://")
    url = f"http://reader:hunter2@{host}/missing.csv?sv=2021&sig=SECRET"
    with pytest.raises(JobInputError) as error:
        materialize_input(data_input(url), tmp_path, source_file="job.yml")
    message = error.value.message
    assert message == (
        f"job.yml: inputs.data: cannot download http://reader:***@{host}/missing.csv?sv=***&sig=***: "
        "HTTP 404 File not found"
    )
    assert "hunter2" not in message and "SECRET" not in message


def test_http_unreachable_fails_clearly(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(JobInputError) as error:
        materialize_input(data_input(f"http://127.0.0.1:{port}/iris.csv"), tmp_path, source_file="job.yml")
    assert error.value.message == (
        f"job.yml: inputs.data: cannot download http://127.0.0.1:{port}/iris.csv: Connection error "
        "(is the URL reachable?)"
    )
    assert isinstance(error.value, JobSpecError)


def test_http_timeout_is_bounded(http_files, tmp_path):
    base, _ = http_files
    started = time.monotonic()
    with pytest.raises(JobInputError, match=r"cannot download .*/slow/iris.csv: no answer within 0.5 s"):
        materialize_input(data_input(f"{base}/slow/iris.csv"), tmp_path, http_timeout=(0.5, 0.5))
    assert time.monotonic() - started < 2.5


# --- runs:/ and models:/ from a real local MLflow store --------------------------------------------------


def test_runs_and_models_uris_from_a_real_store(local_tracking, tmp_path):
    """One test on purpose: creating a local SQLite store takes seconds."""
    source = tmp_path / "artifacts"
    (source / "model").mkdir(parents=True)
    (source / "model" / "weights.txt").write_text("w=1\n")
    (source / "model" / "MLmodel").write_text("flavors: {}\n")
    (source / "report.txt").write_text("report\n")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(source))
    run_id, private = run.info.run_id, tmp_path / "private"

    file_path = Path(materialize_input(data_input(f"runs:/{run_id}/report.txt"), private, local_tracking))
    assert file_path.read_text() == "report\n"
    assert file_path.is_relative_to(private / "inputs" / "data")
    spec = data_input(f"runs:/{run_id}/model", mode="download", type="uri_folder")
    assert files_in(Path(materialize_input(spec, private, local_tracking))) == ["MLmodel", "weights.txt"]

    with pytest.raises(JobInputError) as error:
        materialize_input(data_input(f"runs:/{run_id}/nothing.txt"), private, local_tracking, source_file="j.yml")
    assert error.value.message.startswith(f"j.yml: inputs.data: cannot download runs:/{run_id}/nothing.txt: ")
    with pytest.raises(JobInputError, match="cannot download runs:/0000000000000000/x: "):
        materialize_input(data_input("runs:/0000000000000000/x"), private, local_tracking)

    client = MlflowClient(local_tracking)
    client.create_registered_model("iris-input")
    client.create_model_version("iris-input", source=f"runs:/{run_id}/model", run_id=run_id)
    folder = Path(materialize_input(data_input("models:/iris-input/1", type="uri_folder"), private, local_tracking))
    assert {"MLmodel", "weights.txt"} <= set(files_in(folder))
    assert (folder / "weights.txt").read_text() == "w=1\n"
    with pytest.raises(JobInputError, match="cannot download models:/iris-input/7: "):
        materialize_input(data_input("models:/iris-input/7", type="uri_folder"), private, local_tracking)


# --- whole jobs: values for the command, outputs, tags ---------------------------------------------------


def test_command_values_render_a_whole_job(write_job, job_dir, http_files, tmp_path):
    base, _ = http_files
    job = load_job(write_job(f"""\
        command: >-
          python main.py --csv ${{{{inputs.iris}}}} --web ${{{{inputs.web}}}} --lr ${{{{inputs.lr}}}}
          $[[--extra ${{{{inputs.extra}}}}]] --out ${{{{outputs.model}}}}
        inputs:
          iris: {{path: data/iris.csv, mode: download}}
          web: {{path: "{base}/iris.csv"}}
          lr: 0.5
          extra: {{type: uri_file, optional: true}}
        outputs:
          model:
        """))
    private, outputs = tmp_path / "private", tmp_path / "work" / "outputs"
    values = command_values(job, private, outputs)
    assert values == {
        "inputs.iris": str(private / "inputs" / "iris" / "iris.csv"),
        "inputs.web": str(private / "inputs" / "web" / "iris.csv"),
        "inputs.lr": "0.5",
        "inputs.extra": None,
        "outputs.model": str(outputs / "model"),
    }
    assert (outputs / "model").is_dir()
    assert render_command(job.command, values) == (
        f"python main.py --csv {private}/inputs/iris/iris.csv --web {private}/inputs/web/iris.csv --lr 0.5"
        f"  --out {outputs}/model"
    )


def test_prepare_outputs_creates_one_folder_each(write_job, tmp_path):
    job = load_job(write_job("command: x\noutputs:\n  model:\n  logs_out: {mode: upload}\n"))
    assert prepare_outputs(job, tmp_path / "outputs") == {
        "outputs.model": str(tmp_path / "outputs" / "model"),
        "outputs.logs_out": str(tmp_path / "outputs" / "logs_out"),
    }
    assert sorted(p.name for p in (tmp_path / "outputs").iterdir()) == ["logs_out", "model"]


def test_describe_io_names_each_source(write_job, job_dir):
    job = load_job(write_job("""\
        command: x
        inputs:
          iris: {path: data/iris.csv}
          web: {path: "https://user:pw@example.org/iris.csv?sig=abc", mode: direct}
          lr: 0.5
          extra: {type: uri_folder, optional: true}
        outputs:
          model: {mode: upload}
        """))
    assert describe_io(job) == {
        "azureml.inputs.iris": str(job_dir / "data" / "iris.csv"),
        "azureml.inputs.iris.type": "uri_file (ro_mount)",
        "azureml.inputs.web": "https://user:***@example.org/iris.csv?sig=***",
        "azureml.inputs.web.type": "uri_file (direct)",
        "azureml.inputs.lr": "0.5",
        "azureml.outputs.model": "outputs/model",
        "azureml.outputs.model.type": "uri_folder (upload)",
    }


def test_redact_uri():
    assert redact_uri("https://example.org/a.csv") == "https://example.org/a.csv"
    assert redact_uri("runs:/abc/model") == "runs:/abc/model"
    assert redact_uri("https://a.blob.core.windows.net/c/x.csv?sv=1&sig=s3cr%2Ft#frag") == (
        "https://a.blob.core.windows.net/c/x.csv?sv=***&sig=***"
    )
    assert redact_uri("http://u:p@127.0.0.1:8080/x") == "http://u:***@127.0.0.1:8080/x"
