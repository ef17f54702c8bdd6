"""A job's ``environment`` -> one :class:`ResolvedEnvironment`: its pip requirements (checked), the
Python it was published for, and the container image / build context it names, whatever its spelling.

- ``azureml:AzureML-<name>...`` and ``azureml://registries/azureml/environments/<name>/...``: a curated
  environment (:mod:`.curated`; the workspace config's ``environments`` entries first);
- ``azureml:<name>:<version>`` / ``azureml:<name>@latest`` (and the long ``azureml://.../environments/``
  form): an entry of the workspace config's ``environments``, else an environment registered in the
  workspace (``mlflow-workspace environment create``, :mod:`mlflow_workspace_plugin.assets.environments`);
- inline: ``image`` / ``build`` / ``conda_file`` (a file next to the YAML, or written inline).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow_workspace_plugin.environments import curated
from mlflow_workspace_plugin.environments.conda_files import (
    conda_data_requirements,
    conda_file_requirements,
    read_conda_file,
)
from mlflow_workspace_plugin.environments.errors import EnvironmentProblem
from mlflow_workspace_plugin.environments.requirement_rules import check_requirements


@dataclass(frozen=True)
class ResolvedEnvironment:
    """What a declared environment amounts to here."""

    description: str  # for messages and the run's tag, e.g. "curated sklearn-1.5"
    requirements: tuple[str, ...] = ()
    python: str | None = None  # the Python version it was published for, when known
    image: str | None = None
    build_context: Path | None = None
    dockerfile: str | None = None
    has_packages: bool = False  # a conda file / package set was declared (even an empty one)

    @property
    def wants_container(self) -> bool:
        return bool(self.image or self.build_context)

    def python_mismatch(self) -> str | None:
        """A note when the environment was published for another Python than the one running here."""
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        if self.python and self.python.split(".")[:2] != here.split("."):
            return (f"environment {self.description} is published for Python {self.python}; here it is built over "
                    f"Python {sys.version.split()[0]} (the interpreter running the plugin)")
        return None


def resolve_reference(reference: str, *, config: dict[str, Any] | None, config_path: Path | None,
                      tracking_uri: Callable[[], str], files_dir: Callable[[], Path]) -> ResolvedEnvironment:
    """A curated, configured or registered environment named by ``reference``.

    ``tracking_uri()`` gives the workspace's tracking URI (only asked for registered environments);
    ``files_dir()`` a private folder for a registered environment's build context.
    """
    name, spelled_curated = curated.canonical_name(reference)
    entry = curated.lookup(name, config, config_path)
    if entry is not None and (spelled_curated or entry.origin.startswith("workspace config")):
        requirements = check_requirements(entry.packages, source=f"environment {reference}")
        kind = "curated" if spelled_curated else "configured"
        return ResolvedEnvironment(description=f"{kind} {entry.name}", requirements=requirements, python=entry.python,
                                   has_packages=True)
    if spelled_curated:
        raise EnvironmentProblem(
            f"Curated environment {reference!r} is not known here (known: {', '.join(curated.known_names(config))}). "
            f"Add its packages under \"environments\" in the workspace config, e.g. \"environments\": "
            f"{{\"{name}\": {{\"packages\": [\"scikit-learn\"]}}}}, or run the job in the current Python "
            "environment with --env-manager local")
    return _registered(reference, tracking_uri(), files_dir)


def _registered(reference: str, tracking_uri: str, files_dir: Callable[[], Path]) -> ResolvedEnvironment:
    """An environment registered in the workspace (its build context downloaded into ``files_dir()``)."""
    from mlflow_workspace_plugin.assets.environments import KIND
    from mlflow_workspace_plugin.assets.store import AssetStore

    store = AssetStore(tracking_uri)
    asset = store.resolve(KIND, reference)
    spec = asset.spec
    requirements: tuple[str, ...] = ()
    if spec.get("conda") is not None:
        source = f"environment {asset.reference}"
        requirements = check_requirements(conda_data_requirements(spec["conda"], None, source), source=source)
    build_context = dockerfile = None
    if spec.get("build"):
        build_context = store.download_files(asset, files_dir() / f"environment-{asset.name}-{asset.version}")
        dockerfile = spec["build"].get("dockerfile_path") or "Dockerfile"
    return ResolvedEnvironment(description=f"registered {asset.reference}", requirements=requirements,
                               python=_conda_python(None, spec.get("conda")), image=spec.get("image"),
                               build_context=build_context, dockerfile=dockerfile,
                               has_packages=spec.get("conda") is not None)


def resolve_inline(*, image: str | None, conda_file: Path | None, conda_inline: dict | None,
                   build_context: Path | None, dockerfile: str | None, code_dir: Path | None,
                   remote: bool = False) -> ResolvedEnvironment:
    """An environment written in the job file itself."""
    requirements: tuple[str, ...] = ()
    source = None
    if conda_file is not None:
        source = f"conda_file {conda_file.name}"
        lines = conda_file_requirements(conda_file)
    elif conda_inline is not None:
        source = "the inline conda_file"
        lines = conda_data_requirements(conda_inline, None, source)
    if source is not None:
        requirements = check_requirements(lines, source=source, code_dir=None if remote else code_dir)
    what = source or (f"image {image}" if image else f"build {build_context}")
    return ResolvedEnvironment(description=what, requirements=requirements, image=image, build_context=build_context,
                               dockerfile=dockerfile, has_packages=source is not None,
                               python=_conda_python(conda_file, conda_inline))


def _conda_python(conda_file: Path | None, conda_inline: dict | None) -> str | None:
    """The ``python=3.x`` pin of a conda environment, if any."""
    data = conda_inline if conda_inline is not None else read_conda_file(conda_file) if conda_file else None
    dependencies = data.get("dependencies") if isinstance(data, dict) else None
    for item in dependencies if isinstance(dependencies, list) else []:
        if isinstance(item, str) and item.replace(" ", "").startswith("python="):
            return item.replace(" ", "")[len("python="):].lstrip("=").split("=")[0] or None
    return None
