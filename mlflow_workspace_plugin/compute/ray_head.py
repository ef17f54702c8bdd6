"""Start and stop a private, loopback-only, single-node Ray head (tests, benchmarks, a laptop).

The command is the one verified for this project::

    RAY_USAGE_STATS_ENABLED=0 ray start --head --block --node-ip-address=127.0.0.1 \\
        --dashboard-host=127.0.0.1 --port=<free> --dashboard-port=<free> --num-cpus=2 \\
        --temp-dir=<private dir> --disable-usage-stats

run under ``setsid``, plus (checked with Ray 2.60):

- ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: without it Ray replaces ``127.0.0.1`` with the
  machine's routable IP and its GCS / raylet / agents listen on every interface; with it the
  node stays single-node and everything listens on 127.0.0.1 only.
- ``RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0``: ``ray start --block`` otherwise "drains" for up to
  30 s on SIGTERM before stopping its processes.
- every other port Ray would take at a fixed default (client server 10001, agent 52365, ...)
  is a free port too, so several heads can run side by side.

:meth:`LocalRayHead.stop` stops exactly what :meth:`start` started: SIGTERM to the head's process
group, then SIGKILL to every process still in its session (Ray workers make their own process
groups). It never runs ``ray stop``, which kills every Ray process on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from mlflow_workspace_plugin import process_tree
from mlflow_workspace_plugin.compute.interpreter import interpreter_first_on_path
from mlflow_workspace_plugin.ports import LOOPBACK, free_port
from mlflow_workspace_plugin.ports import RAY_WORKER_PORTS as WORKER_PORTS

HEAD_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
}
_EXTRA_PORT_FLAGS = (
    "--ray-client-server-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
    "--metrics-export-port", "--runtime-env-agent-port", "--node-manager-port", "--object-manager-port",
)


READY_MESSAGE = "Ray runtime started"  # printed by `ray start` once the node is registered


def ray_executable() -> str:
    """The ``ray`` CLI next to this interpreter (so the head runs the Python that has the plugin)."""
    candidate = Path(sys.executable).parent / "ray"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("ray")
    if found is None:
        raise RuntimeError("The 'ray' command is not installed: pip install 'mlflow-workspace-plugin[ray]'")
    return found


class LocalRayHead:
    """A Ray head on 127.0.0.1 with a private temp dir; use as a context manager or start()/stop()."""

    def __init__(self, num_cpus: int = 2, temp_dir: str | os.PathLike | None = None,
                 port: int | None = None, dashboard_port: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.num_cpus = num_cpus
        self.env = dict(env or {})  # extra environment of the head (e.g. Ray's RUNTIME_ENV_* settings)
        # Ray's socket paths must stay under ~107 bytes: keep the temp dir short.
        self.temp_dir = Path(temp_dir) if temp_dir else Path(tempfile.mkdtemp(prefix="rayh-", dir="/tmp"))
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self._owns_temp_dir = temp_dir is None
        self.port = port or free_port()
        self.dashboard_port = dashboard_port or free_port()
        if self.port in WORKER_PORTS or self.dashboard_port in WORKER_PORTS:
            raise ValueError(f"Ports {WORKER_PORTS.start}-{WORKER_PORTS.stop - 1} are Ray's worker ports; "
                             "choose the head and dashboard ports outside that range")
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """The job API (dashboard) address for ``JobSubmissionClient`` / a compute target."""
        return f"http://{LOOPBACK}:{self.dashboard_port}"

    @property
    def log_path(self) -> Path:
        return self.temp_dir / "head.log"

    def command(self) -> list[str]:
        command = [
            ray_executable(), "start", "--head", "--block",
            f"--node-ip-address={LOOPBACK}", f"--dashboard-host={LOOPBACK}",
            f"--port={self.port}", f"--dashboard-port={self.dashboard_port}",
            f"--num-cpus={self.num_cpus}", f"--temp-dir={self.temp_dir}", "--disable-usage-stats",
        ]
        used = {self.port, self.dashboard_port}
        for flag in _EXTRA_PORT_FLAGS:
            port = free_port()
            while port in used:
                port = free_port()
            used.add(port)
            command.append(f"{flag}={port}")
        return command

    def start(self, timeout: float = 90.0) -> LocalRayHead:
        """Start the head under a new session; wait until it reports started and its job API answers."""
        # jobs run `python` from the head's PATH: make it the interpreter starting the head
        env = interpreter_first_on_path({**os.environ, **HEAD_ENV, **self.env})
        env.pop("RAY_ADDRESS", None)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Ray head exited with code {self.process.returncode}:\n{self.log_tail()}")
            if self._started_message_logged():  # the job API can answer before the node is up
                try:
                    if requests.get(f"{self.address}/api/version", timeout=1.0).ok:
                        return self
                except requests.RequestException:
                    pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"Ray head at {self.address} not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the head's process group, then SIGKILL whatever is left of its session and of the
        process tree it had started (job drivers live in sessions of their own)."""
        process, self.process = self.process, None
        if process is not None:
            session = process.pid
            # Ray starts job drivers (and their watchers) in sessions of their own; an abrupt stop
            # can orphan them, so remember the whole tree now and reap what outlives the head.
            tree = process_tree.run_processes([session])
            process_tree.signal_group(session, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process_tree.signal_group(session, signal.SIGKILL)
                process.wait(10)
            leftovers = {p.pid: p for p in tree}
            leftovers.update({p.pid: p for p in process_tree.run_processes(process_tree.session_members(session))})
            process_tree.stop(leftovers.values(), grace=0)
        if self._owns_temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _started_message_logged(self) -> bool:
        try:
            return READY_MESSAGE in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> LocalRayHead:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m mlflow_workspace_plugin.compute.ray_head``: run a head until Ctrl-C / SIGTERM."""
    import argparse

    parser = argparse.ArgumentParser(description="Run a private loopback-only Ray head until Ctrl-C.")
    parser.add_argument("--dashboard-port", type=int, default=8265, help="job API port (default 8265)")
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args(argv)
    head = LocalRayHead(num_cpus=args.num_cpus, dashboard_port=args.dashboard_port)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        head.start()
        print(f"Ray head ready: job API at {head.address} (temp dir {head.temp_dir}); Ctrl-C stops it",
              flush=True)
        while head.process is not None and head.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        head.stop()
        print("Ray head stopped", flush=True)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    main()
