"""``mlflow-workspace info / uri / ui``: which workspace applies, its tracking URI, its UI."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time

import click
import requests

from mlflow_workspace_plugin import local_workspace
from mlflow_workspace_plugin.workspace import Workspace

READY_TIMEOUT = 120.0  # seconds `mlflow-workspace ui` waits for the server to answer
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL of the server's process group
_CONFIG_OPTION = click.option("--config", "config_path", default=None, type=click.Path(),
                              help="workspace config file (default: discovered as Workspace.from_config does)")


@click.command()
@_CONFIG_OPTION
def info(config_path: str | None) -> None:
    """Print which workspace applies, its tracking URI and compute targets."""
    ws = Workspace.from_config(config_path)
    click.echo(f"workspace:    {ws.workspace_name} ({'local' if ws.is_local else 'cloud'})")
    click.echo(f"config file:  {ws.config_path or '(none: embedded local default)'}")
    click.echo(f"tracking URI: {ws.get_mlflow_tracking_uri()}")
    if ws.is_local:
        click.echo(f"database:     {ws.local_path / local_workspace.DB_FILE}")
        click.echo(f"artifacts:    {local_workspace.artifact_root(ws.local_path)}")
    targets = ", ".join(["local", *(f"{t.name} ({t.type})" for t in ws.compute_targets.values())])
    click.echo(f"compute:      {targets}")


@click.command()
@_CONFIG_OPTION
def uri(config_path: str | None) -> None:
    """Print the tracking URI (e.g. export MLFLOW_TRACKING_URI=$(mlflow-workspace uri))."""
    click.echo(Workspace.from_config(config_path).get_mlflow_tracking_uri())


@click.command(context_settings={"ignore_unknown_options": True})
@_CONFIG_OPTION
@click.argument("ui_args", nargs=-1, type=click.UNPROCESSED)
def ui(config_path: str | None, ui_args: tuple[str, ...]) -> None:
    """Start MLflow's UI on the local workspace (extra arguments go to `mlflow ui`).

    Prints "ready at http://<host>:<port>" once the server answers; Ctrl-C or SIGTERM stops the
    server and every process it started."""
    ws = Workspace.from_config(config_path)
    if not ws.is_local:
        raise click.ClickException(
            f"{ws.workspace_name!r} is a cloud workspace: open it in its studio; `mlflow ui` serves local stores only"
        )
    command = [sys.executable, "-m", "mlflow", "ui",
               "--backend-store-uri", local_workspace.database_uri(ws.local_path),
               "--default-artifact-root", local_workspace.artifact_root(ws.local_path).as_uri(),
               *ui_args]
    host, port, prefix = _address(ui_args)
    check_port_free(_option(ui_args, ("--host", "-h"), "127.0.0.1"), port)
    click.echo(" ".join(command), err=True)
    raise SystemExit(serve_until_stopped(command, host, port, prefix))


def check_port_free(host: str, port: int) -> None:
    """Refuse at once when something already listens on ``host:port`` (else another server would answer
    the readiness probe while ours dies with "Address already in use")."""
    bind_host = host.strip("[]")
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no conflict
        try:
            probe.bind((bind_host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise click.ClickException(
                    f"port {port} on {host} is already in use (another server?); choose a free one, e.g. "
                    f"`mlflow-workspace ui --port {port + 1}`") from None
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _option(args: tuple[str, ...], names: tuple[str, ...], default: str) -> str:
    value = default
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                value = args[index + 1]
            elif name.startswith("--") and arg.startswith(name + "="):
                value = arg.split("=", 1)[1]
    return value


def _address(args: tuple[str, ...]) -> tuple[str, int, str]:
    """(host to probe, port, static prefix) of the `mlflow ui` arguments (MLflow's defaults)."""
    host = _option(args, ("--host", "-h"), "127.0.0.1")
    probe = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(host, host)
    try:
        port = int(_option(args, ("--port", "-p"), "5000"))
    except ValueError:
        raise click.ClickException(f"--port {_option(args, ('--port', '-p'), '')!r} is not a port number") from None
    return probe, port, _option(args, ("--static-prefix",), "").rstrip("/")


def serve_until_stopped(command: list[str], host: str, port: int, prefix: str = "",
                        ready_timeout: float = READY_TIMEOUT) -> int:
    """Run ``command`` (a server) in its own process group; say "ready at ..." once
    ``http://host:port`` answers; on SIGTERM/SIGINT/SIGHUP stop the whole group (SIGKILL after
    :data:`STOP_GRACE` s). Returns the server's exit code, or 128 + the signal that stopped it."""
    # the server's own output goes to stderr: stdout carries only "ready at ..." (for scripts)
    server = subprocess.Popen(command, env=os.environ.copy(), start_new_session=True, stdout=sys.stderr)
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        _signal_group(server, signal.SIGTERM)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}{prefix}"
        if _wait_until_answering(server, f"http://{shown}:{port}/health", ready_timeout, received):
            click.echo(f"ready at {url}")  # click.echo flushes
        elif server.poll() is not None and not received:
            click.echo(f"Error: mlflow ui exited with code {server.returncode} before it answered at {url} "
                       f"(is port {port} already in use? choose another with --port)", err=True)
            return server.returncode or 1  # never 0: it did not serve
        code = _wait_then_stop(server, received)
    finally:
        _signal_group(server, signal.SIGKILL)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 + received[0] if received else code


def _wait_until_answering(server: subprocess.Popen, url: str, timeout: float, received: list[int]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None and not received:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def _wait_then_stop(server: subprocess.Popen, received: list[int]) -> int:
    """Wait for the server to end; after a stop signal give it :data:`STOP_GRACE` s, then SIGKILL."""
    while True:
        try:
            return server.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        if received:
            try:
                return server.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                _signal_group(server, signal.SIGKILL)
                return server.wait()


def _signal_group(server: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(server.pid, sig)  # the server's own session: its id is the server's pid
    except (ProcessLookupError, PermissionError):
        pass


COMMANDS = (info, uri, ui)
