"""Container images for jobs, behind one small interface: a Docker engine where one is reachable.

:func:`container_engine` returns the :class:`DockerEngine` when its daemon answers a ping (``docker``
SDK, ``$DOCKER_HOST`` or the default socket), else None with the reason (:func:`engine_problem`):
then the job runs in what its environment declares besides the image (its conda file's packages, else
the current Python environment) and one warning says so.

With an engine, ``image`` is pulled (once; Docker caches it) and a ``build`` context is built once,
tagged ``mlflow-workspace-env:<content hash of the context>``; the command then runs with
``docker run --rm`` in that image, the job's working folder and the workspace home mounted at the same
paths, on the host network (so ``localhost`` tracking servers are reachable), the run's variables
passed by name.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from pathlib import Path

from mlflow_workspace_plugin import local_workspace
from mlflow_workspace_plugin.environments.errors import EnvironmentProblem

PING_TIMEOUT_S = 3
_problem_cache: dict[str, str | None] = {}


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def engine_problem() -> str | None:
    """Why no Docker engine can run jobs here (None: one answers). Asked once per process and host."""
    host = docker_host()
    if host not in _problem_cache:
        try:
            import docker

            client = docker.from_env(timeout=PING_TIMEOUT_S)
            try:
                client.ping()
                _problem_cache[host] = None
            finally:
                client.close()
        except Exception as exc:  # DockerException, requests errors, OSError: all mean "no engine"
            _problem_cache[host] = f"no Docker engine is reachable at {host} ({type(exc).__name__})"
    return _problem_cache[host]


def container_engine() -> DockerEngine | None:
    return DockerEngine() if engine_problem() is None else None


class DockerEngine:
    """Pull / build images and wrap commands to run in them (the docker CLI runs the container)."""

    def image(self, image: str | None, build_context: Path | None, dockerfile: str | None) -> str:
        """The tag to run: ``image`` pulled, or ``build_context`` built once (cached by content)."""
        import docker

        client = docker.from_env()
        try:
            if build_context is not None:
                tag = f"mlflow-workspace-env:{_context_hash(build_context, dockerfile)}"
                try:
                    client.images.get(tag)
                except docker.errors.ImageNotFound:
                    client.images.build(path=str(build_context), dockerfile=dockerfile or "Dockerfile", tag=tag,
                                        rm=True)
                return tag
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                client.images.pull(image)
            return image
        except docker.errors.DockerException as exc:
            raise EnvironmentProblem(f"Docker could not provide image {image or build_context}: {exc}") from None
        finally:
            client.close()

    def run_prefix(self, tag: str, variables: list[str]) -> list[str]:
        """Shell words before the quoted command: ``docker run ... <tag> bash -c``."""
        home = str(local_workspace.default_home())
        prefix = ["docker", "run", "--rm", "--network", "host", "-v", '"$PWD":"$PWD"', "-w", '"$PWD"',
                  "-v", f"{shlex.quote(home)}:{shlex.quote(home)}"]
        for name in variables:
            prefix += ["-e", shlex.quote(name)]
        return [*prefix, shlex.quote(tag), "bash", "-c"]


def _context_hash(folder: Path, dockerfile: str | None) -> str:
    digest = hashlib.sha256((dockerfile or "Dockerfile").encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
