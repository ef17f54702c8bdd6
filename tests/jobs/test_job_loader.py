"""load_job: both YAML spellings, normalisation, defaults, overrides and every bad-input message."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml
from helpers import REPO_ROOT
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, ErrorCode
from pydantic import ValidationError

from mlflow_workspace_plugin.jobs import (
    CommandJob,
    DataInput,
    Environment,
    JobOutput,
    JobSpecError,
    LiteralInput,
    MpiDistribution,
    PyTorchDistribution,
    TensorFlowDistribution,
    command_job_from_mapping,
    load_job,
)

EXAMPLES = REPO_ROOT / "examples" / "jobs"

TODAY = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
code: src
command: >-
  python main.py --iris-csv ${{inputs.iris}} --images ${{inputs.images}}
  --lr ${{inputs.lr}} --out ${{outputs.model}}
inputs:
  iris:
    type: uri_file
    path: data/iris.csv
    mode: ro_mount
  images:
    path: data/images
    mode: download
  lr: 0.1
outputs:
  model:
    type: uri_folder
    mode: rw_mount
environment:
  image: docker.io/python
  conda_file: environment.yml
compute: azureml:cpu-cluster
resources:
  instance_count: 2
distribution:
  type: pytorch
  process_count_per_instance: 2
experiment_name: iris
description: the iris job
"""

PREVIEW = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
code:
  local_path: src
command: >
  python main.py --iris-csv {inputs.iris} --images {inputs.images}
  --lr {inputs.lr} --out {outputs.model}
inputs:
  iris:
    data:
      local_path: data/iris.csv
    mode: mount
  images:
    data:
      path: data/images
    mode: download
  lr: 0.1
outputs:
  model:
environment:
  docker:
    image: docker.io/python
  conda_file: file:environment.yml
compute:
  target: azureml:cpu-cluster
  instance_count: 2
distribution:
  type: pytorch
  process_count: 4
experiment_name: iris
description: the iris job
"""


# --- both spellings, one model ---------------------------------------------------------------------------


def test_both_spellings_give_the_same_job(write_job, job_dir):
    today = load_job(write_job(TODAY, "today.yml"))
    preview = load_job(write_job(PREVIEW, "preview.yml"))
    assert today.source_file == job_dir / "today.yml"
    assert preview.source_file == job_dir / "preview.yml"
    assert today.model_copy(update={"source_file": preview.source_file}) == preview
    assert today == CommandJob(
        source_file=job_dir / "today.yml",
        experiment_name="iris",
        description="the iris job",
        code=job_dir / "src",
        command="python main.py --iris-csv ${{inputs.iris}} --images ${{inputs.images}} "
        "--lr ${{inputs.lr}} --out ${{outputs.model}}",
        environment=Environment(image="docker.io/python", conda_file=job_dir / "environment.yml"),
        compute="cpu-cluster",
        instance_count=2,
        distribution=PyTorchDistribution(process_count_per_instance=2),
        inputs={
            "iris": DataInput(
                name="iris", type="uri_file", uri=str(job_dir / "data/iris.csv"),
                local_path=job_dir / "data/iris.csv", mode="ro_mount",
            ),
            "images": DataInput(
                name="images", type="uri_folder", uri=str(job_dir / "data/images"),
                local_path=job_dir / "data/images", mode="download",
            ),
            "lr": LiteralInput(name="lr", value=0.1),
        },
        outputs={"model": JobOutput(name="model", type="uri_folder", mode="rw_mount")},
    )


def test_example_iris_jobs_are_the_same_job_in_both_spellings():
    today = load_job(EXAMPLES / "iris" / "job.yml")
    preview = load_job(EXAMPLES / "iris" / "job-preview.yml")
    assert today.model_copy(update={"source_file": preview.source_file}) == preview
    assert today.inputs["iris"].local_path == (EXAMPLES / "iris" / "data" / "iris.csv").resolve()
    assert today.inputs["iris"].type == "uri_file"
    assert today.inputs["kernel"] == LiteralInput(name="kernel", value="linear")
    assert set(today.outputs) == {"model"}
    assert today.code == (EXAMPLES / "iris" / "src").resolve()
    assert today.compute == "local"


EXAMPLE_FILES = sorted(p for p in EXAMPLES.rglob("*.yml") if p.name != "environment.yml")


@pytest.mark.parametrize("path", EXAMPLE_FILES)
def test_every_example_job_loads(path):
    """Command jobs load as jobs, sweep jobs as sweeps (their trial as a command job), pipelines as
    pipelines and components as components."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if raw.get("type") in ("sweep", "sweep_job"):
        from mlflow_workspace_plugin.jobs.sweep import load_sweep

        job = load_sweep(path).trial_job()
    elif raw.get("type") == "pipeline":
        from mlflow_workspace_plugin.jobs.pipeline import load_pipeline

        assert load_pipeline(path).order()
        return
    elif "commandComponent" in raw.get("$schema", ""):
        from mlflow_workspace_plugin.jobs.pipeline import load_component_file

        job = load_component_file(path)
    else:
        job = load_job(path)
        assert job.source_file == path.resolve()
    assert job.command


def test_example_hello_world_is_the_seed_job():
    job = load_job(EXAMPLES / "hello-world.yml")
    assert job.command == "python -c \"print('hello world')\""
    assert job.environment == Environment(image="docker.io/python")
    assert job.compute == "local"
    assert job.experiment_name == "jobs"  # default: the folder holding the YAML
    assert job.name is None and job.code is None


def test_example_distributed_job():
    job = load_job(EXAMPLES / "pytorch-distributed" / "job.yml")
    assert job.instance_count == 2
    assert job.distribution == PyTorchDistribution(process_count_per_instance=2)
    assert job.process_count == 4
    assert job.timeout == 300


# --- the seed's other 2021 files ------------------------------------------------------------------------


def test_seed_cifar_distributed_preview(write_job, job_dir):
    job = load_job(write_job("""\
        code:
          local_path: src
        command: >
          python train.py
          --epochs 1
          --data-dir {inputs.cifar}
        inputs:
          cifar:
            data:
              local_path: data
            mode: mount
        environment: azureml:AzureML-Pytorch1.7-Cuda11-OpenMpi4.1.0-py36:1
        compute:
          target: azureml:gpu-cluster
          instance_count: 2
        distribution:
          type: pytorch
          process_count: 4
        experiment_name: pytorch-cifar-distributed-example
        """))
    assert job.command == "python train.py --epochs 1 --data-dir ${{inputs.cifar}}"
    assert job.inputs["cifar"].type == "uri_folder"
    assert job.inputs["cifar"].local_path == job_dir / "data"
    assert job.environment == Environment(reference="azureml:AzureML-Pytorch1.7-Cuda11-OpenMpi4.1.0-py36:1")
    assert (job.compute, job.instance_count) == ("gpu-cluster", 2)
    # the preview's process_count is the total over all instances (REST 2021: "Total process count")
    assert job.distribution == PyTorchDistribution(process_count_per_instance=2)


def test_seed_tensorflow_and_horovod(write_job):
    tf = load_job(write_job("""\
        code: {local_path: src}
        command: python train.py --epochs 1 --model-dir outputs/keras-model
        environment: azureml:AzureML-TensorFlow2.4-Cuda11-OpenMpi4.1.0-py36:1
        compute: {target: azureml:gpu-cluster, instance_count: 2}
        distribution: {type: tensorflow, worker_count: 2}
        """))
    assert tf.distribution == TensorFlowDistribution(worker_count=2, parameter_server_count=0)
    horovod = load_job(write_job("""\
        code: {local_path: src}
        command: python train.py --epochs 1
        environment:
          docker:
            image: docker.io/horovod/horovod:0.20.0-tf2.3.0-torch1.6.0-mxnet1.6.0.post0-py3.7-cuda10.1
        compute: {target: azureml:gpu-cluster, instance_count: 2}
        distribution: {type: mpi, process_count_per_instance: 2}
        """))
    assert horovod.distribution == MpiDistribution(process_count_per_instance=2)
    assert horovod.process_count == 4


# --- defaults and normalisation -------------------------------------------------------------------------


def test_defaults(write_job, job_dir):
    job = load_job(write_job("command: python -V\n"))
    assert job.name is None
    assert job.experiment_name == job_dir.name == "iris-project"
    assert (job.compute, job.instance_count, job.distribution, job.timeout) == ("local", 1, None, None)
    assert (job.code, job.environment, job.inputs, job.outputs) == (None, None, {}, {})
    assert job.process_count == 1


def test_distribution_defaults(write_job):
    def distribution(text: str):
        return load_job(write_job(f"command: x\nresources: {{instance_count: 3}}\ndistribution: {text}\n")).distribution

    assert distribution("{type: pytorch}") == PyTorchDistribution(process_count_per_instance=1)
    assert distribution("{type: PyTorch}") == PyTorchDistribution(process_count_per_instance=1)
    assert distribution("{type: tensorflow}") == TensorFlowDistribution(worker_count=3, parameter_server_count=0)
    assert distribution("{type: tensorflow, worker_count: 2, parameter_server_count: 1}") == TensorFlowDistribution(
        worker_count=2, parameter_server_count=1
    )
    assert distribution("{type: mpi}") == MpiDistribution(process_count_per_instance=1)


def test_name_argument_wins_and_text_fields(write_job):
    path = write_job("""\
        name: from-yaml
        display_name: Nice name
        command: x
        tags: {team: vision, version: 2, release: true}
        environment_variables: {RETRIES: 3, MODE: fast, DEBUG: false}
        limits: {timeout: 90}
        """)
    job = load_job(path)
    assert (job.name, job.display_name, job.timeout) == ("from-yaml", "Nice name", 90)
    assert job.tags == {"team": "vision", "version": "2", "release": "True"}
    assert job.environment_variables == {"RETRIES": "3", "MODE": "fast", "DEBUG": "False"}
    assert load_job(path, name="from-cli").name == "from-cli"


def test_environment_forms(write_job, job_dir):
    def environment(text: str) -> Environment:
        return load_job(write_job(f"command: x\nenvironment:\n{text}")).environment

    assert environment("  conda_file: environment.yml\n") == Environment(conda_file=job_dir / "environment.yml")
    assert environment("  conda_file: {dependencies: [python=3.11]}\n") == Environment(
        conda_inline={"dependencies": ["python=3.11"]}
    )
    (job_dir / "docker").mkdir()
    assert environment("  build: {path: docker}\n") == Environment(
        build_context=job_dir / "docker", dockerfile="Dockerfile"
    )
    (job_dir / "docker" / "Dockerfile.gpu").write_text("FROM python\n")
    assert environment("  docker: {build: {dockerfile: file:docker/Dockerfile.gpu}}\n") == Environment(
        build_context=job_dir / "docker", dockerfile="Dockerfile.gpu"
    )
    assert environment("  image: python:3.11\n  name: ignored-metadata\n  version: 1\n") == Environment(
        image="python:3.11"
    )


def test_input_locations(write_job, job_dir):
    job = load_job(write_job(f"""\
        command: x
        inputs:
          absolute_file: {{path: "file://{job_dir}/data/iris.csv"}}
          web: {{path: "https://example.org/data/iris.csv?sv=1&sig=secret", mode: direct}}
          run: {{type: uri_file, path: "runs:/0123abcd/model/MLmodel", mode: download}}
          model: {{path: "models:/iris/3"}}
          alias: {{path: "models:/iris@champion"}}
          home: {{path: "{job_dir}/data"}}
          flag: true
          count: 3
          text: some words
          nothing:
        """))
    assert job.inputs["absolute_file"].local_path == job_dir / "data" / "iris.csv"
    assert job.inputs["absolute_file"].uri == f"file://{job_dir}/data/iris.csv"
    assert (job.inputs["absolute_file"].scheme, job.inputs["absolute_file"].type) == ("local", "uri_file")
    assert (job.inputs["web"].scheme, job.inputs["web"].type, job.inputs["web"].mode) == ("http", "uri_file", "direct")
    run = job.inputs["run"]
    assert (run.scheme, run.type, run.local_path) == ("runs", "uri_file", None)
    assert (job.inputs["model"].scheme, job.inputs["model"].type) == ("models", "uri_folder")
    assert job.inputs["alias"].uri == "models:/iris@champion"
    assert job.inputs["home"].type == "uri_folder"
    assert [job.inputs[k].value for k in ("flag", "count", "text", "nothing")] == [True, 3, "some words", None]
    assert not job.inputs["nothing"].present


def test_outputs_and_ignored_fields(write_job):
    job = load_job(write_job("""\
        command: x
        outputs:
          plain:
          uploaded: {mode: upload, description: at the end}
        services: {my_jupyter: {type: jupyter_lab}}
        identity: {type: managed}
        resources: {instance_count: 1, instance_type: Standard_DS3_v2}
        """))
    assert job.outputs == {
        "plain": JobOutput(name="plain"),
        "uploaded": JobOutput(name="uploaded", mode="upload", description="at the end"),
    }
    assert job.ignored_fields == ("services", "identity")
    assert job.instance_type == "Standard_DS3_v2" and job.resources is None  # the compute target's shape


def test_resources_properties_ask_for_a_shape_and_other_properties_are_ignored(write_job):
    job = load_job(write_job("""\
        command: x
        resources:
          instance_type: Standard_NC6s_v3
          properties: {gpus: 2, memory_gb: 16, resources: {a100: 1}, AISuperComputer: {interactive: false}}
        """))
    assert (job.instance_type, job.resources.gpus, job.resources.memory_gb) == ("Standard_NC6s_v3", 2.0, 16.0)
    assert job.resources.custom == (("a100", 1.0),) and job.resources.cpus is None
    assert job.ignored_fields == ("resources.properties.AISuperComputer",)


def test_optional_input_in_optional_block(write_job):
    job = load_job(write_job("""\
        command: python main.py $[[--extra ${{inputs.extra}}]]
        inputs:
          extra: {type: uri_file, optional: true}
        """))
    assert not job.inputs["extra"].present
    assert job.inputs["extra"].optional


def test_job_is_frozen_and_pickles(write_job):
    job = load_job(write_job(TODAY))
    with pytest.raises(ValidationError):
        job.compute = "elsewhere"
    assert pickle.loads(pickle.dumps(job)) == job
    assert job.model_dump(mode="json")["inputs"]["iris"]["mode"] == "ro_mount"


def test_search_space_placeholders_for_a_sweep_trial(job_dir):
    trial = {"command": "python main.py --lr {search_space.lr} --b ${{search_space.boosting}}", "code": "src"}
    job = command_job_from_mapping(trial, job_dir / "sweep.yml", field_prefix="trial", search_space={"lr", "boosting"})
    assert job.command == "python main.py --lr ${{search_space.lr}} --b ${{search_space.boosting}}"
    with pytest.raises(JobSpecError) as error:
        command_job_from_mapping(trial, job_dir / "sweep.yml", shown_file="sweep.yml", field_prefix="trial",
                                 search_space={"learning_rate"})
    assert error.value.message == (
        "sweep.yml: trial.command: {search_space.lr} names no declared search_space entry; declared: learning_rate"
    )
    with pytest.raises(JobSpecError) as error:
        command_job_from_mapping({**trial, "inputs": {"x": {"mdoe": 1}}}, job_dir / "s.yml", field_prefix="trial",
                                 search_space={"lr", "boosting"})
    assert error.value.field == "trial.inputs.x.mdoe"


# --- --set overrides ------------------------------------------------------------------------------------


def test_overrides(write_job, job_dir):
    path = write_job(TODAY)
    job = load_job(path, overrides=[
        "compute.target=local",  # the seed's --set on today's short form `compute: azureml:cpu-cluster`
        "inputs.lr=0.5",
        "inputs.iris.mode=download",
        "resources.instance_count=1",
        "distribution.process_count_per_instance=3",
        "tags.owner=me",
        "limits.timeout=60",
        "experiment_name=other",
        "environment_variables.GREETING=hello: world",
    ])
    assert job.compute == "local"
    assert job.inputs["lr"].value == 0.5
    assert job.inputs["iris"].mode == "download"
    assert (job.instance_count, job.distribution.process_count_per_instance) == (1, 3)
    assert job.tags == {"owner": "me"}
    assert (job.timeout, job.experiment_name) == (60, "other")
    assert job.environment_variables == {"GREETING": "hello: world"}  # not valid YAML: kept as the text
    assert load_job(path, overrides=["compute=local"]).compute == "local"
    assert load_job(path, overrides=["code.local_path=data"]).code == job_dir / "data"
    preview = write_job(PREVIEW, "preview.yml")
    assert load_job(preview, overrides=["compute.target=local"]).compute == "local"
    # a location override in either spelling works on a file in either spelling
    moved = load_job(preview, overrides=["inputs.iris.path=data/images"]).inputs["iris"]
    assert (moved.local_path, moved.type, moved.mode) == (job_dir / "data" / "images", "uri_folder", "ro_mount")
    moved = load_job(path, overrides=["inputs.iris.data.local_path=data/images", "inputs.iris.type=uri_folder"])
    assert moved.inputs["iris"].local_path == job_dir / "data" / "images"


def test_override_list_index(write_job):
    path = write_job("command: x\ntags: {a: b}\nservices: [{type: ssh}, {type: jupyter}]\n")
    assert load_job(path, overrides=["services[1].type=vscode", "services[2].type=tb"]).ignored_fields == ("services",)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("compute", "job.yml: --set 'compute': expected key.path=value"),
        ("=local", "job.yml: --set '=local': expected key.path=value"),
        ("inputs.lr.value=3", "job.yml: inputs.lr: --set 'inputs.lr.value=3': inputs.lr is 0.1, not a mapping"),
        ("inputs[0]=x", "job.yml: --set 'inputs[0]=x': [0] indexes something that is not a list"),
        ("services[3]=x", "job.yml: --set 'services[3]=x': list index [3] is out of range (the list has 0 items)"),
        ("inputs..x=1", "job.yml: --set 'inputs..x=1': '' is not a valid key"),
        ("resources.instance_count=two", "job.yml: resources.instance_count: expected an integer, got 'two' (a string)"
         " (value from --set resources.instance_count=two)"),
        ("inputs.iris.mdoe=download", "job.yml: inputs.iris.mdoe: unknown key 'mdoe' (did you mean 'mode'?)"),
        ("inputs.iris.path=data/gone.csv", "job.yml: inputs.iris.path: "),
        ("code=gone", "job.yml: code: "),
    ],
)
def test_bad_overrides(write_job, job_dir, monkeypatch, override, expected):
    write_job(TODAY)
    monkeypatch.chdir(job_dir)
    with pytest.raises(JobSpecError) as error:
        load_job("job.yml", overrides=[override])
    assert error.value.message.startswith(expected), error.value.message
    if "=" in override.strip("="):
        assert error.value.message.endswith(f" (value from --set {override})") or "--set '" in error.value.message


# --- bad input: file, field path, what is allowed ------------------------------------------------------

BAD = [
    # (yaml, field, message start after "job.yml: <field>: ")
    ("command: x ${{inputs.iris}}\ninputs:\n  iris:\n    path: data/iris.csv\n    mdoe: download\n",
     "inputs.iris.mdoe",
     "unknown key 'mdoe' (did you mean 'mode'?); allowed: type, path, data, mode, optional, description"),
    ("command: x\nexperiment: e\n", "experiment", "unknown key 'experiment' (did you mean 'experiment_name'?)"),
    ("command: x\ninputs:\n  iris: {path: data/iris.csv, mode: mnt}\n", "inputs.iris.mode",
     "mode 'mnt' is not allowed (did you mean 'mount'?); allowed: ro_mount, mount, download, direct"),
    ("command: x\ninputs:\n  t: {type: ml_table, path: data}\n", "inputs.t.type",
     "type 'ml_table' is not supported here; allowed: uri_file, uri_folder, mltable, mlflow_model, custom_model, triton_model"),
    ("command: x\ninputs:\n  t: {type: uri_folder, path: data/iris.csv}\n", "inputs.t.type",
     "uri_folder does not match"),
    ("command: x\ninputs:\n  t: {type: uri_folder, path: 'https://example.org/x/'}\n", "inputs.t.type",
     "a web server cannot list a folder, so an http(s) URL names one file: use type: uri_file, or pass the folder from a blob container"),
    ("command: x\ninputs:\n  t: {path: data/missing.csv}\n", "inputs.t.path", "/data/missing.csv does not exist"),
    ("command: x\ninputs:\n  t: {data: {local_path: nothing}, mode: mount}\n", "inputs.t.data.local_path",
     "/nothing does not exist"),
    ("command: x\ninputs:\n  t: {data: 'azureml:iris:1:2', mode: mount}\n", "inputs.t.data",
     "'azureml:iris:1:2' is not an asset reference; expected azureml:<name>:<version> or azureml:<name>@latest"),
    ("command: x\ninputs:\n  t: {path: 'azureml://datastores/workspaceblobstore/paths/a/../../etc'}\n", "inputs.t.path",
     "azureml://datastores/workspaceblobstore/paths/a/../../etc: '..' and '.' are not allowed in a datastore path"),
    ("command: x\ninputs:\n  t: {path: 'abfss://nope/x'}\n", "inputs.t.path",
     "abfss://nope/x is not a valid storage URI; expected azureml://datastores/<store>/paths/<path>"),
    ("command: x\ninputs:\n  t: {path: 'azureml://registries/azureml/models/m/versions/1'}\n", "inputs.t.path",
     "'azureml://registries/azureml/models/m/versions/1': only azureml://datastores/<store>/paths/<path>"),
    ("command: x\ninputs:\n  t: {path: 'runs:/'}\n", "inputs.t.path", "'runs:/' is not a runs:/ URI"),
    ("command: x\ninputs:\n  t: {type: uri_file}\n", "inputs.t.path", "is missing; give a local path"),
    ("command: x\ninputs:\n  t: {path: data, data: {path: data}}\n", "inputs.t.data", "give either path"),
    ("command: x\ninputs:\n  t: [1, 2]\n", "inputs.t", "expected a literal (number, string, true/false) or a mapping"),
    ("command: x\ninputs:\n  1bad: 3\n", "inputs.1bad", "'1bad' is not a valid name"),
    ("command: x\ninputs:\n  7: 3\n", "inputs.7", "a key must be text, got 7 (a number)"),
    ("command: x\noutputs:\n  m: {type: mlflowmodel}\n", "outputs.m.type",
     "type 'mlflowmodel' is not supported for outputs here; allowed: uri_folder, uri_file, mltable, mlflow_model"),
    ("command: x\noutputs:\n  m: {path: 'https://example.org/out'}\n", "outputs.m.path",
     "'https://example.org/out': outputs go to azureml://datastores/<store>/paths/<path>"),
    ("command: x\noutputs:\n  m: {mode: direct}\n", "outputs.m.mode", "mode 'direct' is not allowed"),
    ("command: x\noutputs:\n  m: folder\n", "outputs.m", "expected a mapping with type and mode"),
    ("command: python a.py ${{inputs.irs}}\ninputs:\n  iris: 1\n", "command",
     "${{inputs.irs}} names no declared inputs entry (did you mean 'iris'?); declared: iris"),
    ("command: python a.py {outputs.model}\n", "command",
     "{outputs.model} names no declared outputs entry; declared: (none declared)"),
    ("command: python a.py ${{search_space.lr}}\n", "command",
     "${{search_space.lr}}: search_space placeholders are only allowed in a sweep job's trial"),
    ("command: python a.py ${{inputs}}\n", "command", "unsupported expression '${{inputs}}'"),
    ("command: x ${{inputs.o}}\ninputs:\n  o: {type: uri_file, optional: true}\n", "command",
     "${{inputs.o}}: inputs.o has no value, so it can only be used inside an optional block"),
    ("command: x $[[ a\n", "command", "an optional block '$[[' is not closed"),
    ("command: '  '\n", "command", "is empty"),
    ("code: src\n", "command", "required field is missing"),
    ("command: [python, a.py]\n", "command", "expected a string, got a list"),
    ("command: x\ncode: nothing\n", "code", "/nothing does not exist (code is a folder"),
    ("command: x\ncode: {local_path: environment.yml}\n", "code.local_path", "environment.yml is a file, not a folder"),
    ("command: x\ncode: azureml:my-code:1\n", "code", "'azureml:my-code:1' is not supported here; give a local folder"),
    ("command: x\ncode: 3\n", "code", "expected a folder path (code: ./src) or a mapping with local_path, got 3"),
    ("command: x\nenvironment: python:3.11\n", "environment", "'python:3.11' is not an environment reference"),
    ("command: x\nenvironment: {conda_file: missing.yml}\n", "environment.conda_file", "/missing.yml does not exist"),
    ("command: x\nenvironment: {docker: {imag: python}}\n", "environment.docker.imag",
     "unknown key 'imag' (did you mean 'image'?)"),
    ("command: x\nenvironment: {}\n", "environment", "is empty; give image, conda_file or build"),
    ("command: x\ncompute: {target: ''}\n", "compute.target", "'' is not a compute target"),
    ("command: x\ncompute: [a]\n", "compute", "expected a compute target name (local, azureml:<name>) or a mapping"),
    ("command: x\ncompute: {target: local, instance_count: 2}\nresources: {instance_count: 3}\n",
     "resources.instance_count", "3 disagrees with compute.instance_count (2)"),
    ("command: x\nresources: {instance_count: 0}\n", "resources.instance_count", "must be >= 1, got 0"),
    ("command: x\nresources: {instance_count: two}\n", "resources.instance_count", "expected an integer, got 'two'"),
    ("command: x\nresources: {instance_count: true}\n", "resources.instance_count", "expected an integer, got true"),
    ("command: x\ndistribution: {type: horovod}\n", "distribution.type",
     "'horovod' is not supported here; allowed: pytorch, tensorflow, mpi"),
    ("command: x\ndistribution: {process_count: 2}\n", "distribution.type", "missing; allowed: pytorch"),
    ("command: x\ndistribution: {type: pytorch, process_count_per_node: 2}\n",
     "distribution.process_count_per_node", "unknown key 'process_count_per_node' (did you mean"),
    ("command: x\ndistribution: {type: pytorch, process_count: 2, process_count_per_instance: 2}\n",
     "distribution.process_count", "give either process_count_per_instance"),
    ("command: x\nresources: {instance_count: 2}\ndistribution: {type: pytorch, process_count: 3}\n",
     "distribution.process_count", "3 total processes cannot be spread evenly over instance_count 2"),
    ("command: x\ndistribution: {type: tensorflow, parameter_server_count: -1}\n",
     "distribution.parameter_server_count", "must be >= 0"),
    ("command: x\ndistribution: pytorch\n", "distribution", "expected a mapping with type: pytorch, tensorflow or mpi"),
    ("command: x\nresources: {properties: {cpus: -1}}\n", "resources", "properties.cpus = -1 must be a number >= 0"),
    ("command: x\nresources: {properties: {gpus: '$(touch pwned)'}}\n", "resources",
     "properties.gpus = '$(touch pwned)' must be a number >= 0"),
    ("command: x\nresources: {properties: {resources: {GPU: 1}}}\n", "resources",
     "properties.resources: 'GPU' is not a custom resource name"),
    ("command: x\nlimits: {timeout: 0}\n", "limits.timeout", "must be > 0, got 0"),
    ("command: x\nlimits: {timeout: 1.5}\n", "limits.timeout", "expected an integer, got 1.5"),
    ("command: x\ntags: [a]\n", "tags", "expected a mapping of keys, got a list"),
    ("command: x\ntags: {a: [1]}\n", "tags.a", "expected a text, number or true/false, got a list"),
    ("command: x\nname: 'has space'\n", "name", "'has space' is not a valid job name"),
    ("type: sweep\ncommand: x\n", "type", "type 'sweep' is not a command job; allowed: command"),
    ("command: x\ninputs:\n  d: {path: data, optional: maybe}\n", "inputs.d.optional", "expected true or false"),
]


@pytest.mark.parametrize(("text", "field", "message"), BAD, ids=[f for _, f, _ in BAD])
def test_bad_input_names_file_field_and_what_is_allowed(write_job, job_dir, monkeypatch, text, field, message):
    write_job(text)
    monkeypatch.chdir(job_dir)
    with pytest.raises(JobSpecError) as error:
        load_job("job.yml")
    assert error.value.field == field
    first_line = error.value.message.splitlines()[0]
    prefix = f"job.yml: {field}: "
    assert first_line.startswith(prefix), first_line
    assert message in first_line[len(prefix):], first_line
    assert "pydantic" not in error.value.message and "Input should be" not in error.value.message
    assert isinstance(error.value, MlflowException)
    assert error.value.error_code == ErrorCode.Name(INVALID_PARAMETER_VALUE)


def test_several_problems_are_listed_one_per_line(write_job, job_dir, monkeypatch):
    write_job("command: x\nresources: {instance_count: two}\nlimits: {timeout: -1}\n")
    monkeypatch.chdir(job_dir)
    with pytest.raises(JobSpecError) as error:
        load_job("job.yml")
    assert error.value.message.splitlines() == [
        "job.yml: resources.instance_count: expected an integer, got 'two' (a string)",
        "job.yml: limits.timeout: must be > 0, got -1 (a number)",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("command: x\n  bad: [\n", "job.yml: invalid YAML at line 2, column 6: mapping values are not allowed here"),
        ("command: x\ninputs:\n  a: 1\n  a: 2\n",
         "job.yml: invalid YAML at line 4, column 3: duplicate key 'a' (first written at line 3)"),
        ("command: 'x\n", "job.yml: invalid YAML at line 2, column 1: found unexpected end of stream"),
        ("", "job.yml: is empty; a job needs at least a command"),
        ("- command: x\n", "job.yml: expected a mapping of keys at the top level, got a list"),
    ],
)
def test_unreadable_yaml(write_job, job_dir, monkeypatch, text, message):
    write_job(text)
    monkeypatch.chdir(job_dir)
    with pytest.raises(JobSpecError) as error:
        load_job("job.yml")
    assert error.value.message.startswith(message), error.value.message


def test_missing_file(tmp_path):
    with pytest.raises(JobSpecError, match="nope.yml: no such file"):
        load_job(tmp_path / "nope.yml")
    with pytest.raises(JobSpecError, match="is a folder; give the job's YAML file"):
        load_job(tmp_path)


def test_error_names_the_file_as_given(write_job):
    path = write_job("command: x\ncompute: 3\n")
    with pytest.raises(JobSpecError) as error:
        load_job(path)
    assert error.value.message.startswith(f"{path}: compute: ")
    assert error.value.source_file == str(path)
    assert Path(error.value.source_file).name == "job.yml"


def test_one_loader_returns_every_job_type():
    from mlflow_workspace_plugin.jobs import load_any_job
    from mlflow_workspace_plugin.jobs.pipeline import PipelineSpec
    from mlflow_workspace_plugin.jobs.sweep.spec import SweepSpec

    assert isinstance(load_any_job(EXAMPLES / "iris" / "job.yml"), CommandJob)
    assert isinstance(load_any_job(EXAMPLES / "sweep" / "job-sweep.yml"), SweepSpec)
    assert isinstance(load_any_job(EXAMPLES / "pipeline" / "pipeline.yml"), PipelineSpec)
    assert load_any_job(EXAMPLES / "iris" / "job.yml", ["inputs.kernel=rbf"]).inputs["kernel"].value == "rbf"
    with pytest.raises(JobSpecError, match="jobs.prep"):
        load_any_job(EXAMPLES / "pipeline" / "pipeline.yml", ["jobs.prep.inputs.test_fraction=2.0"])
