"""Jobs through the Python API (``load_job`` + ``submit_job``), end to end on real local runs and a real Ray head.

One local workspace is shared by the module (jobs are found by unique names, so tests do not collide);
commands are tiny shell lines except the iris example, which runs both of its spellings at once.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import textwrap
import time
from pathlib import Path

import mlflow
import pytest
from helpers import artifact_paths, read_artifact
from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin import Workspace
from mlflow_workspace_plugin.compute.local_control import HOST_TAG, LAUNCHER_TAG, PROCESSES_TAG
from mlflow_workspace_plugin.jobs import load_job, submit_job
from mlflow_workspace_plugin.jobs.cancel import cancel_job
from mlflow_workspace_plugin.jobs.job_names import DISPLAY_NAME_TAG, JOB_FILE_TAG, JOB_NAME_TAG
from mlflow_workspace_plugin.jobs.loader import command_job_from_mapping, read_yaml_mapping
from mlflow_workspace_plugin.jobs.registry import find_job

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples" / "jobs"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jobs-workspace")


@pytest.fixture(autouse=True)
def workspace_home(isolated_workspace, shared_home, monkeypatch) -> Path:
    """Every test of the module uses the same local workspace (saves creating the store each time)."""
    monkeypatch.setenv("MLFLOW_WORKSPACE_HOME", str(shared_home))
    return shared_home


def store_client() -> MlflowClient:
    return MlflowClient(Workspace.from_config().get_mlflow_tracking_uri())


def all_run_ids(client: MlflowClient) -> set[str]:
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    return {run.info.run_id for run in client.search_runs(experiments, run_view_type=ViewType.ALL,
                                                          max_results=5000)}


def job_temp_dirs() -> set[str]:
    return {path.name for path in Path(tempfile.gettempdir()).glob("mlflow-ws-job-*")}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def wait_until(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


# ------------------------------------------------------------------ the seed's iris job, both spellings
MACHINE_TAGS = {JOB_NAME_TAG, "mlflow.runName", JOB_FILE_TAG, "mlflow.source.name", HOST_TAG, PROCESSES_TAG,
                LAUNCHER_TAG}


@pytest.mark.compat
def test_iris_example_in_both_spellings_gives_identical_runs():
    handles = [submit_job(load_job(EXAMPLES / "iris" / name)) for name in ("job.yml", "job-preview.yml")]
    assert [handle.wait() for handle in handles] == [True, True]
    client = store_client()
    runs = [client.get_run(handle.run_id) for handle in handles]

    def same_everywhere(run):
        return {key: value for key, value in run.data.tags.items() if key not in MACHINE_TAGS}

    assert same_everywhere(runs[0]) == same_everywhere(runs[1])
    assert runs[0].data.params == runs[1].data.params == {"kernel": "linear", "penalty": "1.0", "rows": "150"}
    assert runs[0].data.metrics == runs[1].data.metrics and "accuracy" in runs[0].data.metrics
    names = [run.data.tags[JOB_NAME_TAG] for run in runs]
    assert names[0] != names[1] and [run.info.run_name for run in runs] == names
    assert {client.get_experiment(run.info.experiment_id).name for run in runs} == {"sklearn-iris-job"}
    tags = runs[0].data.tags
    assert tags["azureml.inputs.iris"] == str(EXAMPLES / "iris" / "data" / "iris.csv")
    assert tags["azureml.inputs.iris.type"] == "uri_file (ro_mount)"
    assert tags["mlflow.note.content"].startswith("Train an SVM")
    for handle in handles:  # each job wrote its own model into its own working copy
        files = artifact_paths(client, handle.run_id)
        assert {"outputs/model/model.joblib", "outputs/model/mlflow-model/MLmodel"} <= set(files)
        assert "snapshot/main.py" in files
        assert "Accuracy of SVM classifier" in read_artifact(client, handle.run_id, "user_logs/std_log.txt")
    assert not (EXAMPLES / "iris" / "src" / "outputs").exists()  # the user's folder stays clean
    assert find_job(client, names[1]).info.run_id == handles[1].run_id


# ------------------------------------------------------------------ inputs, outputs, sweep arguments
CHECK_SCRIPT = """
    set -e
    out="${!#}"
    printf '%s\\n' "$@" > "$out/args.txt"
    cat "$1" > "$out/table.txt"
    ls "$2" > "$out/folder.txt"
    cat "$3" > "$out/web.txt"
    cat "$5/weights.txt" > "$out/weights.txt"
    echo "$GREETING" > "$out/env.txt"
    echo "checked"
"""


def test_inputs_in_each_mode_outputs_and_sweep_arguments(tmp_path, http_files):
    base_url, _ = http_files
    client = store_client()
    source = client.create_run(client.create_experiment(f"weights-{tmp_path.name}")).info.run_id
    client.log_text(source, "w=1", "model/weights.txt")
    client.set_terminated(source)
    parent = client.create_run(client.get_experiment_by_name(f"weights-{tmp_path.name}").experiment_id)
    write(tmp_path / "src" / "check.sh", CHECK_SCRIPT)
    write(tmp_path / "data" / "table.csv", "a,b\n1,2\n")
    write(tmp_path / "data" / "folder" / "one.txt", "1")
    job_file = write(tmp_path / "job.yml", f"""
        code: src
        command: >-
          bash check.sh ${{{{inputs.table}}}} ${{{{inputs.folder}}}} ${{{{inputs.web}}}} ${{{{inputs.direct}}}}
          ${{{{inputs.weights}}}} ${{{{inputs.words}}}} ${{{{search_space.lr}}}} ${{{{outputs.report}}}}
        inputs:
          table: {{type: uri_file, path: data/table.csv, mode: ro_mount}}
          folder: {{type: uri_folder, path: data/folder, mode: download}}
          web: {{type: uri_file, path: "{base_url}/iris.csv", mode: download}}
          direct: {{type: uri_file, path: "{base_url}/with%20space.txt", mode: direct}}
          weights: {{type: uri_folder, path: "runs:/{source}/model", mode: download}}
          words: two words
        outputs:
          report: {{}}
        environment_variables: {{GREETING: hello}}
        display_name: checking inputs
        description: every input mode
        tags: {{team: ml}}
        experiment_name: inputs-{tmp_path.name}
    """)
    job = command_job_from_mapping(read_yaml_mapping(job_file), job_file, search_space=("lr",))
    handle = submit_job(job, parent_run_id=parent.info.run_id, search_values={"lr": 0.5},
                        extra_params={"trial": 3}, run_name=f"sweep_{tmp_path.name[-12:]}_3")
    assert handle.wait(), handle.failure_message()

    report = {name: read_artifact(client, handle.run_id, f"outputs/report/{name}.txt")
              for name in ("args", "table", "folder", "web", "weights", "env")}
    args = report["args"].splitlines()
    assert args[0] == str(tmp_path / "data" / "table.csv")           # ro_mount: the file itself
    assert args[1] != str(tmp_path / "data" / "folder") and "mlflow-ws-job-" in args[1]  # download: a copy
    assert report["folder"] == "one.txt\n"
    assert report["web"] == "a,b\n1,2\n"                               # http: downloaded
    assert args[3] == f"{base_url}/with%20space.txt"                   # direct: the URI itself
    assert report["weights"] == "w=1"                                   # runs:/ via MLflow
    assert args[5:7] == ["two words", "0.5"]                            # one argument each, quoted
    assert report["env"] == "hello\n"
    assert wait_until(lambda: not Path(args[1]).exists(), 30), "the private input folder is removed at the end"

    run = client.get_run(handle.run_id)
    tags = run.data.tags
    assert run.data.params == {"lr": "0.5", "trial": "3"}
    assert tags["mlflow.parentRunId"] == parent.info.run_id
    assert tags[JOB_NAME_TAG] == run.info.run_name == f"sweep_{tmp_path.name[-12:]}_3"
    assert tags[DISPLAY_NAME_TAG] == "checking inputs" and tags["mlflow.note.content"] == "every input mode"
    assert tags["team"] == "ml"
    assert tags["azureml.inputs.folder"] == str(tmp_path / "data" / "folder")
    assert tags["azureml.inputs.folder.type"] == "uri_folder (download)"
    assert tags["azureml.inputs.weights"] == f"runs:/{source}/model"
    assert tags["azureml.outputs.report"] == "outputs/report"
    assert client.get_experiment(run.info.experiment_id).name == f"inputs-{tmp_path.name}"
    assert not (tmp_path / "src" / "outputs").exists()


# ------------------------------------------------------------------ limits, cancel
def test_timeout_cancels_the_job_and_records_why(tmp_path):
    job_file = write(tmp_path / "job.yml", """
        command: echo started && sleep 60
        limits: {timeout: 2}
    """)
    started = time.monotonic()
    handle = submit_job(load_job(job_file))
    assert handle.wait() is False
    assert time.monotonic() - started < 50
    run = store_client().get_run(handle.run_id)
    assert run.info.status == "KILLED"
    assert "timeout" in run.data.tags["azureml.cancel_reason"]


def test_cancel_from_elsewhere_stops_the_processes_of_a_local_job(tmp_path):
    job_file = write(tmp_path / "job.yml", "command: echo started && sleep 60\n")
    handle = submit_job(load_job(job_file))
    client = store_client()
    assert wait_until(lambda: PROCESSES_TAG in client.get_run(handle.run_id).data.tags, 30)
    started = time.monotonic()
    assert cancel_job(client, client.get_run(handle.run_id)) == "KILLED"
    assert time.monotonic() - started < 40
    assert handle.wait_for(30)
    run = client.get_run(handle.run_id)
    assert run.info.status == "KILLED"
    assert "job cancel" in run.data.tags["azureml.cancel_reason"]


# ------------------------------------------------------------------ distributed
def test_pytorch_style_distributed_job_processes_rendezvous_over_tcp():
    handle = submit_job(load_job(EXAMPLES / "pytorch-distributed" / "job.yml"))
    assert handle.wait(), handle.failure_message()
    client = store_client()
    files = set(artifact_paths(client, handle.run_id))
    assert {f"user_logs/std_log_process_{rank}.txt" for rank in range(4)} <= files
    reports = [json.loads(read_artifact(client, handle.run_id, f"outputs/report/rank_{rank}.json"))
               for rank in range(4)]
    assert [report["RANK"] for report in reports] == [0, 1, 2, 3]
    assert [report["NODE_RANK"] for report in reports] == [0, 0, 1, 1]
    assert [report["LOCAL_RANK"] for report in reports] == [0, 1, 0, 1]
    assert all(report["WORLD_SIZE"] == 4 and sorted(report["ranks"]) == [0, 1, 2, 3] for report in reports)
    assert len({report["MASTER_PORT"] for report in reports}) == 1
    shape = json.loads(client.get_run(handle.run_id).data.tags["azureml.job.distribution"])
    assert shape == {"type": "pytorch", "process_count_per_instance": 2, "instance_count": 2}


# ------------------------------------------------------------------ bad input: nothing starts
def test_bad_input_fails_before_any_run_or_folder_exists(tmp_path, monkeypatch):
    client = store_client()
    taken = client.create_run(client.create_experiment(f"taken-{tmp_path.name}")).info.run_id
    client.set_tag(taken, JOB_NAME_TAG, f"taken_{tmp_path.name[-10:]}")
    runs_before, dirs_before = all_run_ids(client), job_temp_dirs()
    write(tmp_path / "src" / "main.py", "print('hi')\n")
    good = write(tmp_path / "job.yml", """
        code: src
        command: python main.py
        environment: {conda_file: env.yml}
    """)
    write(tmp_path / "env.yml", "dependencies: [python=3.11, pip, {pip: [mlflow]}]\n")

    def fails(match: str, *, overrides=(), name=None, path=good, **kwargs) -> None:
        with pytest.raises(MlflowException, match=match):
            submit_job(load_job(path, overrides, name=name), **kwargs)

    fails(r"Unknown compute target 'nowhere'", overrides=["compute=azureml:nowhere"])
    fails(rf"a job named 'taken_{tmp_path.name[-10:]}' already exists", name=f"taken_{tmp_path.name[-10:]}")
    fails(r"code.*(does not exist|no such)", overrides=["code=missing-folder"])
    fails(r"inputs\.data.*(does not exist|no such)",
          overrides=["inputs.data.type=uri_file", "inputs.data.path=nothing.csv"])
    fails(r"inputs\.web: cannot download", overrides=[
        "inputs.web.type=uri_file", "inputs.web.path=http://127.0.0.1:9/x.csv", "inputs.web.mode=download",
        "command=python main.py ${{inputs.web}}"])
    fails(r"env_manager = 'pip' is not an environment manager; allowed: local, virtualenv, uv, conda",
          env_manager="pip")
    fails(r"environment: No version '1' of environment asset 'x'", overrides=["environment=azureml:x:1"],
          env_manager="virtualenv")
    if shutil.which("conda") is None:
        fails(r"env manager 'conda' needs conda", env_manager="conda")
    if shutil.which("mpirun") is None:
        fails(r"distribution\.type: mpi jobs are launched with mpirun", overrides=["distribution.type=mpi"])
    monkeypatch.setenv("MLFLOW_WORKSPACE_SNAPSHOT_MAX_MB", "0.000001")
    fails(r"snapshot .* exceeds the limit")
    assert all_run_ids(client) == runs_before
    assert job_temp_dirs() <= dirs_before


def test_a_docker_image_without_an_engine_gives_one_warning_naming_what_is_used(tmp_path, capfd):
    job_file = write(tmp_path / "job.yml", """
        command: echo ok
        environment: {image: "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest"}
        experiment_name: env-warning
    """)
    handle = submit_job(load_job(job_file))
    assert handle.wait()
    warnings = [line for line in capfd.readouterr().err.splitlines() if "is not used" in line]
    assert len(warnings) == 1
    assert "no Docker engine is reachable" in warnings[0] and "the current Python environment" in warnings[0]


# ------------------------------------------------------------------ Ray
from ray_cluster import job_client  # noqa: E402  (fixtures ray_head / ray_workspace: tests/conftest.py)


def test_job_on_the_ray_head_and_cancel_through_the_compute_target(ray_workspace, ray_head, tmp_path):
    pytest.importorskip("ray.job_submission", reason="Ray is not installed (pip install -e '.[ray]')")
    job_file = write(tmp_path / "job.yml", """
        command: echo "$GREETING" ${{inputs.words}} > ${{outputs.out}}/said.txt && echo done
        inputs: {words: two words}
        outputs: {out: {}}
        environment_variables: {GREETING: hi}
        compute: azureml:fast-cluster
        experiment_name: ray-jobs
    """)
    handle = submit_job(load_job(job_file))
    assert handle.wait(), handle.failure_message()
    client = MlflowClient(ray_workspace)
    run = client.get_run(handle.run_id)
    assert run.data.tags["azureml.compute"] == "fast-cluster"
    assert run.data.tags["ray.job_id"] == handle.job_id
    assert read_artifact(client, handle.run_id, "outputs/out/said.txt") == "hi two words\n"

    long_job = submit_job(load_job(job_file, ["command=echo started && sleep 120"]))
    assert wait_until(lambda: "started" in job_client(ray_head).get_job_logs(long_job.job_id), 90)
    assert cancel_job(client, client.get_run(long_job.run_id)) == "KILLED"
    assert long_job.wait_for(60)
    run = client.get_run(long_job.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["azureml.cancel_reason"].startswith("canceled with")
    assert str(job_client(ray_head).get_job_status(long_job.job_id)) in ("STOPPED", "JobStatus.STOPPED")
    assert mlflow.get_tracking_uri() == ray_workspace


def test_ray_job_takes_its_local_input_data_along(ray_workspace, ray_head, tmp_path):
    pytest.importorskip("ray.job_submission", reason="Ray is not installed (pip install -e '.[ray]')")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / ".amlignore").write_text("*.csv\n", encoding="utf-8")  # must not drop the input
    job_file = write(tmp_path / "job.yml", """
        code: src
        command: echo "path=${{inputs.rows}}" && cp ${{inputs.rows}} ${{outputs.out}}/copy.csv
        inputs: {rows: {type: uri_file, path: data/rows.csv}}
        outputs: {out: {}}
        compute: azureml:fast-cluster
        experiment_name: ray-data
    """)
    handle = submit_job(load_job(job_file))
    assert handle.wait(), handle.failure_message()
    client = MlflowClient(ray_workspace)
    assert read_artifact(client, handle.run_id, "outputs/out/copy.csv") == "a,b\n1,2\n"
    log = read_artifact(client, handle.run_id, "user_logs/std_log.txt")
    assert "path=.mlflow-job/inputs/rows/rows.csv" in log  # a path inside the job's own package
    assert not [p for p in artifact_paths(client, handle.run_id) if ".mlflow-job" in p]


def test_an_instance_type_on_the_local_target_runs_with_one_warning_saying_it_is_not_reserved(tmp_path, caplog):
    job_file = write(tmp_path / "job.yml", """
        command: echo on-the-laptop
        experiment_name: shapes-local
        resources: {instance_type: Standard_NC24ads_A100_v4, properties: {gpus: 1}}
        """)
    with caplog.at_level("WARNING", logger="mlflow.projects.azureml"):
        for _ in range(2):
            assert submit_job(load_job(job_file)).wait()
    notes = [r.getMessage() for r in caplog.records if "is not reserved" in r.getMessage()]
    assert notes == ["mlflow-workspace: instance type 'Standard_NC24ads_A100_v4' is not reserved: compute target "
                     "'local' (this machine) runs it with what it has"], notes
