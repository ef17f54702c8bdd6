"""How a run's Python environment is made, as the executors see it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

LOCAL, CONDA, VIRTUALENV, UV, DOCKER = "local", "conda", "virtualenv", "uv", "docker"


@dataclass(frozen=True)
class PreparedEnvironment:
    """Shell fragments to put before the command, and how to join them."""

    kind: str
    prefix: list[str] = field(default_factory=list)
    separator: str = " && "

    def wrap(self, command: str) -> str:
        return self.separator.join([*self.prefix, command]) if self.prefix else command


@dataclass(frozen=True)
class EnvironmentSpec:
    """What the door decided about the environment, checked before the run exists.

    ``kind``: how a *local* run's environment is made (local = the interpreter running the plugin,
    conda, virtualenv, uv, docker); ``prepare`` builds a non-local one once the run exists (it may
    take minutes; its argument is the run id). ``requirements``: the pip requirements of the
    environment file, for remote pip environments. ``remote_problem``: why this environment cannot
    run on remote compute at all (e.g. a docker_env project), or None.
    """

    kind: str = LOCAL
    requirements: tuple[str, ...] = ()
    prepare: Callable[[str], PreparedEnvironment] | None = None
    remote_problem: str | None = None

    def prepare_local(self, run_id: str) -> PreparedEnvironment:
        if self.kind == LOCAL or self.prepare is None:
            return PreparedEnvironment(LOCAL)
        return self.prepare(run_id)
