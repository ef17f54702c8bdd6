"""Cached job venvs built for real (uv and pip from the package index), layered over this interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from mlflow_workspace_plugin.environments.errors import EnvironmentProblem
from mlflow_workspace_plugin.environments.venv_cache import cache_root, ensure_environment, layered_sites

pytestmark = pytest.mark.slow


def user_packages() -> list[str]:
    """What is installed in the environment running the tests (the user's environment): every entry of
    its site-packages folders (``*.dist-info`` names carry the versions). The job tests compare ``pip list``."""
    return sorted(str(path) for folder in layered_sites() for path in Path(folder).iterdir())


def other_six() -> str:
    """A six version this environment does not have."""
    try:
        installed = metadata.version("six")
    except metadata.PackageNotFoundError:
        installed = None
    return "1.15.0" if installed == "1.16.0" else "1.16.0"


def in_env(python, code: str) -> str:
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("builder", ["uv", "pip"])
def test_a_pin_wins_in_the_job_env_while_the_user_env_keeps_its_own(builder):
    pin = other_six()
    before = user_packages()
    messages: list[str] = []
    env = ensure_environment([f"six=={pin}"], description="six pin", builder=builder, progress=messages.append)
    assert env.built and env.builder == builder and env.path.parent == cache_root()
    assert any("building environment six pin" in m for m in messages)
    # the pin wins; MLflow and this plugin come from the layered environment, not a reinstall
    report = json.loads(in_env(env.python, "import json, six, mlflow, mlflow_workspace_plugin, sys; "
                                           "print(json.dumps([six.__version__, six.__file__, mlflow.__file__, sys.prefix]))"))
    assert report[0] == pin and report[1].startswith(str(env.path)) and report[3] == str(env.path)
    assert not report[2].startswith(str(env.path))
    assert list(env.path.glob("lib/python*/site-packages/mlflow")) == []
    assert user_packages() == before
    # reused: no second build, nothing printed
    messages.clear()
    again = ensure_environment([f"six=={pin}"], description="six pin", builder=builder, progress=messages.append)
    assert not again.built and again.path == env.path and messages == []


def test_two_processes_building_the_same_env_at_once_build_it_once(tmp_path):
    script = tmp_path / "build.py"
    script.write_text(textwrap.dedent(f"""\
        import json
        from mlflow_workspace_plugin.environments.venv_cache import ensure_environment
        env = ensure_environment(["six=={other_six()}", "tomli>=2"], description="shared", builder="uv")
        print(json.dumps([env.built, str(env.path)]))
    """))
    processes = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    results = [process.communicate(timeout=300) for process in processes]
    outcomes = [json.loads(out.strip().splitlines()[-1]) for out, _ in results]
    assert sorted(built for built, _ in outcomes) == [False, True]
    assert outcomes[0][1] == outcomes[1][1]
    assert sum("mlflow-workspace: building environment shared" in err for _, err in results) == 1


def test_pins_that_cannot_install_for_this_python_fail_with_uvs_reason():
    # sklearn-1.5's published conda pins: fine on Python 3.10, unsatisfiable on 3.11+ (pandas 1.5.3 needs numpy>=1.23.2)
    if sys.version_info[:2] < (3, 11):
        pytest.skip("these pins install on Python 3.10")
    with pytest.raises(EnvironmentProblem, match=r"uv pip compile failed.*for Python 3\.\d+.*\n.*"
                                                  r"No solution found when resolving dependencies") as caught:
        ensure_environment(["pandas~=1.5.3", "numpy~=1.22.0"], description="old pins", builder="uv",
                           progress=lambda message: None)
    assert "numpy" in caught.value.message
    assert not any(path.is_dir() for path in cache_root().iterdir())  # nothing half-built is left to reuse
