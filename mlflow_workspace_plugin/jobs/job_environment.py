"""A job's ``environment`` section -> the :class:`EnvironmentSpec` the execution path runs it with.

What the environment names is resolved first (:mod:`mlflow_workspace_plugin.environments.resolve`):
a curated name, a configured or registered environment, or the inline image / build / conda_file.
Then, by ``env_manager`` (``submit_job(env_manager=...)``, ``job create --env-manager``, else
``$MLFLOW_WORKSPACE_JOB_ENV_MANAGER``):

- default (none given), ``uv`` or ``virtualenv``: locally the job runs in an **isolated, cached
  virtualenv** of the environment's pip requirements, layered over the interpreter running the plugin
  (:mod:`mlflow_workspace_plugin.environments.venv_cache`; built with uv by default and with
  ``uv``, with pip for ``virtualenv``). It is built here, before the run exists, with visible progress:
  requirements that cannot be installed for this Python fail the job before anything starts, with
  uv's / pip's own reason;
- ``local``: the current Python environment, as it is (nothing is built or installed);
- ``conda``: a conda environment of the job's own ``conda_file`` (where conda exists).

An ``image`` / ``build`` runs in a container where a Docker engine is reachable
(:mod:`mlflow_workspace_plugin.environments.containers`); where none is, one warning says what runs
instead (the environment's packages, else the current Python environment). On remote compute (Ray)
the requirements become the job's pip runtime env (Ray builds and caches it on the cluster).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from mlflow_workspace_plugin.compute.environment import (
    CONDA,
    DOCKER,
    LOCAL,
    UV,
    VIRTUALENV,
    EnvironmentSpec,
    PreparedEnvironment,
)
from mlflow_workspace_plugin.environments import containers
from mlflow_workspace_plugin.environments.errors import EnvironmentProblem
from mlflow_workspace_plugin.environments.requirement_rules import relax_compatible_pins
from mlflow_workspace_plugin.environments.resolve import ResolvedEnvironment, resolve_inline, resolve_reference
from mlflow_workspace_plugin.environments.venv_cache import PIP, CachedEnvironment, ensure_environment, is_built
from mlflow_workspace_plugin.environments.venv_cache import UV as UV_BUILDER
from mlflow_workspace_plugin.jobs.errors import JobLaunchError, JobSpecError
from mlflow_workspace_plugin.jobs.spec import CommandJob
from mlflow_workspace_plugin.workspace import Workspace, load_config_json

ENV_MANAGER_ENV = "MLFLOW_WORKSPACE_JOB_ENV_MANAGER"
ENV_MANAGERS = (LOCAL, VIRTUALENV, UV, CONDA)
FALLBACK_HINT = ("run it in the current Python environment instead with --env-manager local "
                 f"(submit_job(env_manager='local'), ${ENV_MANAGER_ENV}=local), or set the environment's packages "
                 "under \"environments\" in the workspace config")
_RUN_VARIABLES = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN",
                  "MLFLOW_TRACKING_INSECURE_TLS", "PYTHONUNBUFFERED")
_warned: set[str] = set()
_unsatisfiable: set[tuple[str, ...]] = set()  # requirement sets uv / pip could not install here (this process)


def choose_env_manager(requested: str | None) -> str | None:
    """The env manager asked for (argument, else ``$MLFLOW_WORKSPACE_JOB_ENV_MANAGER``), or None for the
    default (an isolated cached environment, built with uv when it is found, else pip)."""
    value = requested if requested is not None else os.environ.get(ENV_MANAGER_ENV, "").strip() or None
    if value is None:
        return None
    value = value.strip().lower()
    if value not in ENV_MANAGERS:
        source = "env_manager" if requested is not None else f"${ENV_MANAGER_ENV}"
        raise JobSpecError(f"{source} = {value!r} is not an environment manager; allowed: {', '.join(ENV_MANAGERS)}")
    return value


@dataclass(frozen=True)
class ContainerCommand(PreparedEnvironment):
    """``docker run ... <image> bash -c '<command>'`` (the command quoted as one argument)."""

    def wrap(self, command: str) -> str:
        return " ".join([*self.prefix, shlex.quote(command)])


def job_environment(job: CommandJob, *, remote: bool, target: str, env_manager: str | None,
                    private_dir: Callable[[], Path], warn: Callable[[str], None],
                    workspace: Workspace | None = None,
                    tracking_uri: Callable[[], str] | None = None) -> tuple[EnvironmentSpec, str]:
    """(the environment to run ``job`` with, a short description of it for the run's tags).

    ``private_dir()`` gives the job's own folder (inline conda file, a registered build context);
    ``warn`` receives warnings (each one once per process: sweeps submit many trials); ``workspace``'s
    config file may hold ``environments``; ``tracking_uri()`` is the workspace's, for registered
    environments. May build the job's cached environment (minutes the first time, with progress).
    """
    manager = choose_env_manager(env_manager)
    if job.environment is None:
        if manager not in (None, LOCAL) and not remote:
            raise JobSpecError.at(job.source_file, "environment.conda_file",
                                  f"is needed to build a {manager} environment (env manager {manager!r}); give an "
                                  "environment (a conda_file, a curated or registered name), or run in the current "
                                  "environment (env manager 'local')")
        return EnvironmentSpec(kind=LOCAL), ("cluster" if remote else "local")
    once = _once(warn)
    if manager == LOCAL and not remote:  # asked for the current environment: nothing is resolved or built
        once(f"{job.source_file}: environment {_declared(job)} is not built (env manager 'local'); the job runs in "
             f"the current Python environment ({sys.executable})")
        return EnvironmentSpec(kind=LOCAL), "local"
    config_path = workspace.config_path if workspace is not None else None
    config = load_config_json(config_path) if config_path is not None else None
    resolved = _resolve(job, remote, private_dir, config, config_path, tracking_uri)
    if remote:
        if resolved.wants_container:
            once(f"{job.source_file}: environment {_image_text(resolved)} is not used on compute target {target!r} "
                 f"(Ray jobs do not run in containers); the job runs in the cluster's Python"
                 + (" with the environment's pip packages" if resolved.requirements else ""))
        text = f"{resolved.description} (pip)" if resolved.requirements else "cluster"
        return EnvironmentSpec(requirements=resolved.requirements), text
    if resolved.wants_container:
        spec = _container(job, resolved, once)
        if spec is not None:
            return spec
    if manager == CONDA:
        return _conda(job, private_dir)
    if not resolved.has_packages:
        return EnvironmentSpec(kind=LOCAL), "local"
    mismatch = resolved.python_mismatch()
    if mismatch:
        once(f"{job.source_file}: {mismatch}")
    built = _build(job, resolved, PIP if manager == VIRTUALENV else (UV_BUILDER if manager == UV else None),
                   relax=mismatch is not None, warn=once)
    kind = UV if built.builder == UV_BUILDER else VIRTUALENV
    activate = shlex.quote(str(built.bin_dir / "activate"))
    prepared = PreparedEnvironment(kind, [f"source {activate}"])
    return (EnvironmentSpec(kind=kind, prepare=lambda run_id: prepared),
            f"{kind}: {resolved.description} ({built.path.name})")


def _build(job: CommandJob, resolved: ResolvedEnvironment, builder: str | None, *, relax: bool,
           warn: Callable[[str], None]) -> CachedEnvironment:
    """The cached venv of ``resolved``. ``relax`` (it was published for another Python): when its pins
    cannot be installed together here, once more with ``~=X.Y.Z`` pins widened to the same major release
    (:func:`relax_compatible_pins`), one warning naming them."""
    relaxed, widened = relax_compatible_pins(resolved.requirements) if relax else (resolved.requirements, ())
    known_bad = resolved.requirements in _unsatisfiable or (is_built(relaxed) and not is_built(resolved.requirements))
    if widened and known_bad:  # found out before (this process, or the widened venv is cached)
        return _build_relaxed(job, resolved, builder, relaxed, widened, warn)
    try:
        return ensure_environment(resolved.requirements, description=resolved.description, builder=builder)
    except EnvironmentProblem as exc:
        if not widened:
            raise _cannot_install(job, resolved, exc) from None
        _unsatisfiable.add(resolved.requirements)
    return _build_relaxed(job, resolved, builder, relaxed, widened, warn)


def _build_relaxed(job: CommandJob, resolved: ResolvedEnvironment, builder: str | None, relaxed: tuple[str, ...],
                   widened: tuple[str, ...], warn: Callable[[str], None]) -> CachedEnvironment:
    warn(f"{job.source_file}: environment {resolved.description}'s pins cannot be installed together on Python "
         f"{sys.version.split()[0]}; widened to the same major release: {', '.join(widened)}")
    try:
        return ensure_environment(relaxed, description=f"{resolved.description} (pins widened)", builder=builder)
    except EnvironmentProblem as exc:
        raise _cannot_install(job, resolved, exc) from None


def _cannot_install(job: CommandJob, resolved: ResolvedEnvironment, exc: EnvironmentProblem) -> JobLaunchError:
    return JobLaunchError.at(job.source_file, "environment", f"{resolved.description} cannot be installed: "
                             f"{exc.message}\nTo go on: fix or relax the pins, or {FALLBACK_HINT}")


def build_ahead(job: CommandJob, workspace: Workspace, env_manager: str | None,
                warn: Callable[[str], None]) -> None:
    """Build a local job's cached environment here, with its progress on this console, before the job is
    handed to a process without one (``job create`` without ``--stream``); errors surface here too."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlflow-ws-env-ahead-") as scratch:
        job_environment(job, remote=False, target=job.compute, env_manager=env_manager,
                        private_dir=lambda: Path(scratch), warn=warn, workspace=workspace)


def _resolve(job: CommandJob, remote: bool, private_dir: Callable[[], Path], config: dict | None,
             config_path: Path | None, tracking_uri: Callable[[], str] | None) -> ResolvedEnvironment:
    env = job.environment
    try:
        if env.reference:
            if tracking_uri is None:
                from mlflow_workspace_plugin.assets.store import AssetStore

                def tracking_uri() -> str:
                    return AssetStore().tracking_uri
            return resolve_reference(env.reference, config=config, config_path=config_path,
                                     tracking_uri=tracking_uri, files_dir=private_dir)
        return resolve_inline(image=env.image, conda_file=env.conda_file, conda_inline=env.conda_inline,
                              build_context=env.build_context, dockerfile=env.dockerfile,
                              code_dir=job.code or job.source_file.parent, remote=remote)
    except EnvironmentProblem as exc:
        raise JobSpecError.at(job.source_file, "environment", exc.message) from None
    except JobSpecError:
        raise
    except Exception as exc:  # AssetError and other MlflowExceptions from the asset store
        message = getattr(exc, "message", str(exc))
        raise JobSpecError.at(job.source_file, "environment", message) from None


def _container(job: CommandJob, resolved: ResolvedEnvironment, once: Callable[[str], None]) -> EnvironmentSpec | None:
    """The container spec where an engine answers; else None after the one warning."""
    problem = containers.engine_problem()
    if problem is not None:
        instead = (f"an environment built from {resolved.description}" if resolved.has_packages
                   else f"the current Python environment ({sys.executable})")
        once(f"{job.source_file}: environment {_image_text(resolved)} is not used: {problem}; the job runs in "
             f"{instead}")
        return None
    engine = containers.DockerEngine()
    tag_text = _image_text(resolved)

    def prepare(run_id: str) -> PreparedEnvironment:
        tag = engine.image(resolved.image, resolved.build_context, resolved.dockerfile)
        return ContainerCommand(DOCKER, engine.run_prefix(tag, list(_RUN_VARIABLES)), separator=" ")

    return EnvironmentSpec(kind=DOCKER, prepare=prepare), f"docker: {tag_text}"


def _conda(job: CommandJob, private_dir: Callable[[], Path]) -> tuple[EnvironmentSpec, str]:
    conda_file = _conda_file(job, private_dir)
    if conda_file is None:
        raise JobSpecError.at(job.source_file, "environment",
                              "env manager 'conda' builds a job's own conda_file, and this environment has none; "
                              "use env manager 'uv' or 'virtualenv' (the default), or 'local'")
    from mlflow_workspace_plugin.execution.environments import conda_executable

    if conda_executable() is None:
        raise JobLaunchError.at(job.source_file, "environment.conda_file",
                                "env manager 'conda' needs conda, which was not found (PATH, $MLFLOW_CONDA_HOME, "
                                "$CONDA_EXE); use env manager 'virtualenv' or 'uv', or 'local'")

    def prepare(run_id: str) -> PreparedEnvironment:
        from mlflow.utils.conda import get_or_create_conda_env

        conda_env = get_or_create_conda_env(str(conda_file))
        return PreparedEnvironment(CONDA, list(conda_env.get_activate_command()))

    return EnvironmentSpec(kind=CONDA, prepare=prepare), f"conda ({conda_file.name})"


def _conda_file(job: CommandJob, private_dir: Callable[[], Path]) -> Path | None:
    env = job.environment
    if env.conda_file is not None:
        return env.conda_file
    if env.conda_inline is not None:
        path = private_dir() / "conda.yaml"
        path.write_text(yaml.safe_dump(env.conda_inline, sort_keys=False), encoding="utf-8")
        return path
    return None


def _declared(job: CommandJob) -> str:
    env = job.environment
    if env.reference:
        return repr(env.reference)
    parts = [f"image {env.image!r}" if env.image else "", f"build {str(env.build_context)!r}" if env.build_context
             else "", f"conda_file {env.conda_file.name}" if env.conda_file else "",
             "inline conda_file" if env.conda_inline else ""]
    return " with ".join(part for part in parts if part)


def _image_text(resolved: ResolvedEnvironment) -> str:
    if resolved.image:
        return f"image {resolved.image!r}"
    if resolved.build_context:
        return f"build {str(resolved.build_context)!r}"
    return resolved.description


def _once(warn: Callable[[str], None]) -> Callable[[str], None]:
    def emit(message: str) -> None:
        if message not in _warned:
            _warned.add(message)
            warn(message)
    return emit
