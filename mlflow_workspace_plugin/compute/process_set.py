"""The processes of one run (one, or one per rank of a distributed run): started together, each in
its own process group, watched together; the first process that fails stops the others.

Each process carries the run's mark (:data:`~mlflow_workspace_plugin.process_tree.MARK_ENV`), so a stop
reaches everything the command started: its process groups, their descendants, and children that left
the group or the session (``setsid``, double forks) — see :mod:`mlflow_workspace_plugin.process_tree`."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlflow_workspace_plugin import process_tree
from mlflow_workspace_plugin.capture.names import LOG_ARTIFACT_NAME

PROCESSES_ENV = "MLFLOW_WORKSPACE_PROCESSES"  # how a remote job runner learns the processes to start
STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class ProcessSpec:
    """One process of a run: its extra environment and the name of its console log."""

    env: Mapping[str, str] = field(default_factory=dict)
    log_name: str = LOG_ARTIFACT_NAME


SINGLE_PROCESS = (ProcessSpec(),)


def encode(processes: Sequence[ProcessSpec]) -> str:
    return json.dumps([{"env": dict(p.env), "log_name": p.log_name} for p in processes])


def decode(text: str | None) -> tuple[ProcessSpec, ...]:
    if not text:
        return SINGLE_PROCESS
    return tuple(ProcessSpec(env=item["env"], log_name=item["log_name"]) for item in json.loads(text))


class ProcessSet:
    """Starts ``command`` once per :class:`ProcessSpec` with ``bash -c`` in ``cwd``; stdout and
    stderr share one pipe per process (so its log keeps the order they were written in). ``mark`` (the
    run id) is set as ``MLFLOW_WORKSPACE_RUN_MARK`` in every process."""

    def __init__(self, command: str, cwd: Path, base_env: Mapping[str, str],
                 processes: Sequence[ProcessSpec] = SINGLE_PROCESS, *, mark: str | None = None) -> None:
        self.specs = tuple(processes) or SINGLE_PROCESS
        self.mark = mark
        self.procs: list[subprocess.Popen] = []
        marked = {process_tree.MARK_ENV: mark} if mark else {}
        try:
            for spec in self.specs:
                self.procs.append(subprocess.Popen(
                    ["bash", "-c", command], cwd=cwd, env={**base_env, **spec.env, **marked}, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                ))
        except BaseException:
            self.kill()
            raise

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every live process group."""
        for proc in self.procs:
            if proc.poll() is None:
                process_tree.signal_group(proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL everything the command started, at once."""
        self.stop(grace=0)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM everything the command started (process groups, descendants, marked processes),
        SIGKILL what is left after ``grace`` seconds."""
        tree = process_tree.run_processes(self.pids, mark=self.mark)
        process_tree.stop(tree, grace, groups=[proc.pid for proc in self.procs if proc.poll() is None])
        for proc in self.procs:
            proc.wait()

    def wait(self) -> int:
        """Wait for every process; the first non-zero exit stops the others and is returned."""
        if len(self.procs) == 1:
            return self.procs[0].wait()
        while True:
            codes = [proc.poll() for proc in self.procs]
            failed = next((code for code in codes if code not in (None, 0)), None)
            if failed is not None:
                self.stop()
                return failed
            if all(code == 0 for code in codes):
                return 0
            time.sleep(0.1)
