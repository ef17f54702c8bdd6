"""The scoring servers of one local endpoint, as its front process runs them.

One MLflow scoring server per deployment, each a child in its own process group (SIGTERM'd by the
kernel if the front dies), listening on a Unix socket in a private folder (mode 0700, made by the
front at start) — no TCP port, so nothing but this user's processes can reach a model without the
endpoint's key. On a reload it applies ``endpoint.json``: a changed deployment gets a new server on a
fresh socket, routing switches to it once it answers ``/ping``, and the old one stops after its
in-flight requests finish; a server that exits unexpectedly is restarted (with backoff). What it
observes goes to ``status.json`` (mode 0600).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow_workspace_plugin.deploy import processes
from mlflow_workspace_plugin.deploy.upstream import Upstream

_logger = logging.getLogger("mlflow_workspace_plugin.endpoint")
ENDPOINT_FILE, STATUS_FILE = "endpoint.json", "status.json"  # as in state.py
DRAIN_TIMEOUT_S = 30.0
SOCKET_PLACEHOLDER, PORT_PLACEHOLDER = "{socket}", "{port}"  # as in local_servers.py
UDS_ENV = "UVICORN_UDS"  # uvicorn reads its options from UVICORN_*; --uds wins over --host/--port


@dataclass(eq=False)
class Instance:
    """One running scoring server process of a deployment generation."""

    deployment: str
    generation: int
    socket_path: str
    process: subprocess.Popen
    log_path: Path
    started_at: float = field(default_factory=time.time)
    inflight: int = 0
    retiring: bool = False
    upstream: Upstream = field(init=False)

    def __post_init__(self) -> None:
        self.upstream = Upstream(self.socket_path)


@dataclass(eq=False)
class Slot:
    """A deployment as the front serves it."""

    name: str
    spec: dict[str, Any] = field(default_factory=dict)
    generation: int = 0
    active: Instance | None = None
    state: str = "Creating"
    error: str | None = None
    failed_generation: int | None = None
    restarts: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    restarting: bool = False


def socket_folder(endpoint: str) -> Path:
    """A new private (0700) folder for the endpoint's server sockets, short enough for AF_UNIX paths."""
    base = tempfile.gettempdir()
    if len(base) > 60:  # sun_path holds 107 bytes
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix=f"mlflow-ep-{endpoint[:12]}-", dir=base))


class Supervisor:
    """Deployments (slots), their servers, and the traffic table the router reads."""

    def __init__(self, folder: Path, name: str, stopping: asyncio.Event,
                 on_spec: Callable[[dict[str, Any]], None], port: int, started_at: float) -> None:
        self.folder, self.name, self.stopping, self.on_spec = folder, name, stopping, on_spec
        self.port, self.started_at = port, started_at
        self.slots: dict[str, Slot] = {}
        self.traffic: dict[str, int] = {}
        self.applied_generation = -1
        self.lock = asyncio.Lock()
        self.reload_pending = False
        self.sockets = socket_folder(name)
        self._serial = itertools.count(1)

    # ------------------------------------------------------------------ reconcile
    def request_reload(self) -> None:
        if self.lock.locked():
            self.reload_pending = True
        else:
            asyncio.ensure_future(self.reconcile())

    async def reconcile(self) -> None:
        async with self.lock:
            while True:
                self.reload_pending = False
                await self._apply(processes.read_json(self.folder / ENDPOINT_FILE) or {})
                if not self.reload_pending:
                    break

    async def _apply(self, spec: dict[str, Any]) -> None:
        self.on_spec(spec)
        desired = spec.get("deployments", {})
        for name in [n for n in self.slots if n not in desired]:
            slot = self.slots.pop(name)
            _logger.info("deployment %s removed", name)
            if slot.active is not None:
                asyncio.ensure_future(self.retire(slot.active))
        changed = [(name, d) for name, d in desired.items()
                   if name not in self.slots or self.slots[name].generation != d["generation"]]
        # Traffic moves only to ready deployments: roll out first, then switch the traffic table.
        self.traffic = {n: w for n, w in self.traffic.items() if n in self.slots}
        await asyncio.gather(*(self.roll_out(name, d) for name, d in changed))
        self.traffic = {n: int(w) for n, w in spec.get("traffic", {}).items() if n in self.slots}
        self.applied_generation = int(spec.get("generation", 0))
        self.write_status()

    async def roll_out(self, name: str, spec: dict[str, Any]) -> None:
        slot = self.slots.setdefault(name, Slot(name))
        generation = int(spec["generation"])
        _logger.info("deployment %s: starting generation %s (%s)", name, generation, spec.get("model_uri"))
        try:
            instance = await self.start_instance(name, spec, generation)
        except Exception as exc:  # the server did not come up: keep what was serving before
            slot.failed_generation, slot.error = generation, str(exc)
            if slot.active is None:
                slot.state, slot.generation = "Failed", generation
            _logger.error("deployment %s: generation %s failed: %s", name, generation, exc)
            return
        old, slot.active = slot.active, instance
        slot.spec, slot.generation, slot.state = spec, generation, "Healthy"
        slot.error = slot.failed_generation = None
        slot.ready.set()
        _logger.info("deployment %s: generation %s serving on %s (pid %s)", name, generation, instance.socket_path,
                     instance.process.pid)
        if old is not None:
            asyncio.ensure_future(self.retire(old))

    # ------------------------------------------------------------------ processes
    async def start_instance(self, name: str, spec: dict[str, Any], generation: int) -> Instance:
        socket_path = str(self.sockets / f"{next(self._serial)}.sock")
        log_path = self.folder / "logs" / f"{name}.log"
        # {port}: `mlflow models serve` (env managers) still wants one; UVICORN_UDS makes uvicorn ignore it
        argv = [arg.replace(SOCKET_PLACEHOLDER, socket_path).replace(PORT_PLACEHOLDER, str(processes.free_port()))
                for arg in spec["command"]]
        env = {**spec.get("command_env", {}), UDS_ENV: socket_path}
        process = processes.spawn(argv, env, log_path, f"scoring server for {spec.get('model_uri')} on {socket_path}")
        instance = Instance(name, generation, socket_path, process, log_path)
        try:
            await self.wait_ready(instance, float(spec.get("timeout", 300)))
        except BaseException:
            await self.retire(instance, drain=False)
            raise
        return instance

    async def wait_ready(self, instance: Instance, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping.is_set():
            if instance.process.poll() is not None:
                raise RuntimeError(f"the scoring server exited with code {instance.process.returncode}; "
                                   f"log {instance.log_path}:\n{processes.log_tail(instance.log_path)}")
            if os.path.exists(instance.socket_path) and await instance.upstream.ping():
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the scoring server did not answer /ping on {instance.socket_path} within "
                           f"{timeout:.0f} s; log {instance.log_path}:\n{processes.log_tail(instance.log_path)}")

    async def retire(self, instance: Instance, drain: bool = True) -> None:
        """Stop an instance once its in-flight requests are done (or at once)."""
        instance.retiring = True
        deadline = time.monotonic() + (DRAIN_TIMEOUT_S if drain else 0)
        while instance.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await instance.upstream.close()
        with contextlib.suppress(FileNotFoundError):  # no new connection from here on; gone before the process
            os.unlink(instance.socket_path)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, processes.stop_group, instance.process.pid, 10.0)
        await loop.run_in_executor(None, instance.process.wait)
        _logger.info("deployment %s: stopped server pid %s (%s)", instance.deployment, instance.process.pid,
                     instance.socket_path)
        self.write_status()

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.retire(slot.active, drain=False) for slot in self.slots.values() if slot.active))
        shutil.rmtree(self.sockets, ignore_errors=True)

    # ------------------------------------------------------------------ crash restarts
    async def monitor(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            for slot in list(self.slots.values()):
                instance = slot.active
                if instance is None or instance.retiring or slot.restarting:
                    continue
                if instance.process.poll() is not None:
                    self.note_crash(slot, instance)

    def note_crash(self, slot: Slot, instance: Instance) -> None:
        """Start restarting ``slot`` if ``instance`` (its active server) has exited."""
        if slot.restarting or instance.retiring or slot.active is not instance or instance.process.poll() is None:
            return
        slot.restarting = True
        slot.ready.clear()
        asyncio.ensure_future(self.restart(slot, instance))

    async def restart(self, slot: Slot, crashed: Instance) -> None:
        slot.state = "Restarting"
        _logger.warning("deployment %s: scoring server pid %s exited with code %s; restarting", slot.name,
                        crashed.process.pid, crashed.process.returncode)
        await self.retire(crashed, drain=False)
        delay = 0.5
        try:
            while not self.stopping.is_set() and self.slots.get(slot.name) is slot and slot.active is crashed:
                slot.restarts += 1
                self.write_status()
                try:
                    instance = await self.start_instance(slot.name, slot.spec, slot.generation)
                except Exception as exc:
                    slot.error = str(exc)
                    _logger.error("deployment %s: restart failed (retrying in %.1f s): %s", slot.name, delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                if self.slots.get(slot.name) is not slot or slot.active is not crashed:  # replaced meanwhile
                    await self.retire(instance, drain=False)
                    break
                slot.active, slot.state, slot.error = instance, "Healthy", None
                slot.ready.set()
                _logger.info("deployment %s: restarted on %s (pid %s)", slot.name, instance.socket_path,
                             instance.process.pid)
                break
        finally:
            slot.restarting = False
            self.write_status()

    # ------------------------------------------------------------------ status
    def write_status(self, error: str | None = None) -> None:
        """``status.json`` (0600: it names the servers' sockets)."""
        deployments = {}
        for name, slot in self.slots.items():
            instance = slot.active
            deployments[name] = {
                "state": slot.state, "generation": slot.generation, "failed_generation": slot.failed_generation,
                "error": slot.error, "restarts": slot.restarts,
                "pid": instance.process.pid if instance else None,
                "socket": instance.socket_path if instance else None,
                "started_at": instance.started_at if instance else None,
                "log": str(self.folder / "logs" / f"{name}.log"),
            }
        processes.write_json(self.folder / STATUS_FILE, {
            "pid": os.getpid(), "port": self.port, "listening": error is None, "error": error,
            "applied_generation": self.applied_generation, "deployments": deployments, "sockets": str(self.sockets),
            "traffic": self.traffic, "updated_at": time.time(), "started_at": self.started_at,
        }, mode=0o600)
