"""The front process of one local endpoint: ``python <this file> <endpoint state folder>``.

It imports only the standard library, aiohttp and :mod:`.processes` (run as a script, not through
the package, so it starts in about a second and stays small: no MLflow in this process).

It listens on the endpoint's stable port (127.0.0.1) and

- checks the caller: ``Authorization: Bearer <key>`` (auth mode ``key``) or a workspace token
  (``aml_token``: accepted when the workspace's MLflow API accepts it; cached for a minute);
- routes ``POST /invocations`` (or ``/score``) to one deployment: the one named by the
  ``azureml-model-deployment`` header, else by weighted random choice over the endpoint's traffic;
  the response says which deployment answered in that same header;
- supervises one MLflow scoring server per deployment (children in their own process groups,
  SIGTERM'd by the kernel if this process dies): on ``SIGHUP`` it re-reads ``endpoint.json`` and
  rolls out what changed — a new server starts on a fresh port, routing switches to it once it
  answers ``/ping``, and the old one is stopped after its in-flight requests finish, so no request is
  dropped; a server that exits unexpectedly is restarted (requests wait for it, with backoff);
- writes what it observes to ``status.json`` (pids, ports, states, restarts, errors, log paths).

``GET /ping`` (no key) answers 200 when a deployment that receives traffic is ready.
SIGTERM stops every server, then this process.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

if __package__:
    from mlflow_workspace_plugin.deploy import processes
else:  # run as a script: this folder is sys.path[0]
    import processes  # type: ignore[no-redef]

read_json, write_json = processes.read_json, processes.write_json

_logger = logging.getLogger("mlflow_workspace_plugin.endpoint")
DEPLOYMENT_HEADER = "azureml-model-deployment"
SCORE_PATHS = ("/invocations", "/score")
ENDPOINT_FILE, KEYS_FILE, STATUS_FILE = "endpoint.json", "keys.json", "status.json"  # as in state.py
REQUEST_WAIT_S = 60.0  # how long a request waits for a restarting deployment
DRAIN_TIMEOUT_S = 30.0
TOKEN_CACHE_S = 60.0
MAX_BODY_BYTES = 256 * 1024 * 1024


class UpstreamPool:
    """Keep-alive HTTP/1.1 connections to one scoring server, for ``POST /invocations`` only.

    A minimal client on asyncio streams: about half the CPU per request of a general HTTP client,
    which is most of what this process adds to a prediction's latency."""

    IDLE_S = 4.0  # below uvicorn's 5 s keep-alive, so the server never closes a connection we reuse

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def post(self, body: bytes, content_type: str) -> tuple[int, str, bytes]:
        head = (f"POST /invocations HTTP/1.1\r\nHost: {processes.LOOPBACK}:{self.port}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode("latin-1")
        while True:
            connection = self._take()
            fresh = connection is None
            reader, writer = await asyncio.open_connection(processes.LOOPBACK, self.port) if fresh else connection
            try:
                writer.write(head + body)
                status, content_type_out, payload, keep = await _read_response(reader)
            except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
                writer.close()
                if fresh:
                    raise
                continue  # a kept-alive connection went stale: send again on a fresh one
            if keep:
                self.idle.append((reader, writer, time.monotonic()))
            else:
                writer.close()
            return status, content_type_out, payload

    def _take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        now = time.monotonic()
        while self.idle:
            reader, writer, since = self.idle.pop()
            if now - since < self.IDLE_S and not reader.at_eof():
                return reader, writer
            writer.close()
        return None

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, str, bytes, bool]:
    """(status, content type, body, keep-alive) of one HTTP/1.1 response."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("connection closed before a response")
    status = int(status_line.split(None, 2)[1])
    length, content_type, keep, chunked = None, "application/json", True, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length":
            length = int(value)
        elif name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"connection":
            keep = value.lower() != b"close"
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    if chunked:
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                break
            parts.append(await reader.readexactly(size))
            await reader.readline()
        return status, content_type, b"".join(parts), keep
    if length is None:
        return status, content_type, await reader.read(), False
    return status, content_type, await reader.readexactly(length), keep


@dataclass(eq=False)
class Instance:
    """One running scoring server process of a deployment generation."""

    deployment: str
    generation: int
    port: int
    process: subprocess.Popen
    log_path: Path
    started_at: float = field(default_factory=time.time)
    inflight: int = 0
    retiring: bool = False
    pool: UpstreamPool = field(init=False)

    def __post_init__(self) -> None:
        self.pool = UpstreamPool(self.port)

    @property
    def url(self) -> str:
        return f"http://{processes.LOOPBACK}:{self.port}"


@dataclass(eq=False)
class Slot:
    """A deployment as this process serves it."""

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


class EndpointProxy:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.spec: dict[str, Any] = read_json(folder / ENDPOINT_FILE) or {}
        self.name = self.spec.get("name", folder.name)
        self.port = int(self.spec["port"])
        self.slots: dict[str, Slot] = {}
        self.traffic: dict[str, int] = {}
        self.key_digests: list[bytes] = []
        self.token_cache: dict[bytes, float] = {}
        self.applied_generation = -1
        self.lock = asyncio.Lock()
        self.reload_pending = False
        self.stopping = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        self.started_at = time.time()

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> int:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=4.0),  # < uvicorn's 5 s keep-alive
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        )
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/ping", self.handle_ping)
        app.router.add_get("/health", self.handle_ping)
        app.router.add_route("*", "/{tail:.*}", self.handle_request)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, processes.LOOPBACK, self.port, reuse_address=False).start()
        except OSError as exc:
            self.write_status(error=f"cannot listen on {processes.LOOPBACK}:{self.port}: {exc.strerror or exc}")
            _logger.error("endpoint %s: cannot listen on port %s: %s", self.name, self.port, exc)
            await runner.cleanup()
            await self.session.close()
            return 2
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        _logger.info("endpoint %s listening on %s:%s (pid %s)", self.name, processes.LOOPBACK, self.port,
                     os.getpid())
        self.write_status()
        self.request_reload()
        monitor = asyncio.create_task(self.monitor())
        await self.stopping.wait()
        monitor.cancel()
        _logger.info("endpoint %s stopping", self.name)
        await runner.cleanup()
        await asyncio.gather(*(self.retire(slot.active, drain=False) for slot in self.slots.values() if slot.active))
        await self.session.close()
        (self.folder / STATUS_FILE).unlink(missing_ok=True)
        return 0

    def request_reload(self) -> None:
        if self.lock.locked():
            self.reload_pending = True
        else:
            asyncio.ensure_future(self.reconcile())

    # ------------------------------------------------------------------ reconcile
    async def reconcile(self) -> None:
        async with self.lock:
            while True:
                self.reload_pending = False
                await self._apply(read_json(self.folder / ENDPOINT_FILE) or {})
                if not self.reload_pending:
                    break

    async def _apply(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.load_auth()
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
        _logger.info("deployment %s: generation %s serving on port %s (pid %s)", name, generation, instance.port,
                     instance.process.pid)
        if old is not None:
            asyncio.ensure_future(self.retire(old))

    async def start_instance(self, name: str, spec: dict[str, Any], generation: int) -> Instance:
        last_error: Exception | None = None
        for _ in range(3):  # a port taken between choosing and binding: try another one
            port = processes.free_port()
            log_path = self.folder / "logs" / f"{name}.log"
            argv = [arg.replace("{port}", str(port)) for arg in spec["command"]]
            process = processes.spawn(argv, dict(spec.get("command_env", {})), log_path,
                                      f"scoring server for {spec.get('model_uri')} on {processes.LOOPBACK}:{port}")
            instance = Instance(name, generation, port, process, log_path)
            try:
                await self.wait_ready(instance, float(spec.get("timeout", 300)))
                return instance
            except Exception as exc:
                last_error = exc
                await self.retire(instance, drain=False)
                if "address already in use" not in processes.log_tail(log_path, 5).lower():
                    break
        raise last_error

    async def wait_ready(self, instance: Instance, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping.is_set():
            if instance.process.poll() is not None:
                raise RuntimeError(f"the scoring server exited with code {instance.process.returncode}; "
                                   f"log {instance.log_path}:\n{processes.log_tail(instance.log_path)}")
            try:
                async with self.session.get(f"{instance.url}/ping", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the scoring server did not answer /ping within {timeout:.0f} s; "
                           f"log {instance.log_path}:\n{processes.log_tail(instance.log_path)}")

    async def retire(self, instance: Instance, drain: bool = True) -> None:
        """Stop an instance once its in-flight requests are done (or at once)."""
        instance.retiring = True
        deadline = time.monotonic() + (DRAIN_TIMEOUT_S if drain else 0)
        while instance.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        instance.pool.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, processes.stop_group, instance.process.pid, 10.0)
        await loop.run_in_executor(None, instance.process.wait)
        _logger.info("deployment %s: stopped server pid %s (port %s)", instance.deployment, instance.process.pid,
                     instance.port)
        self.write_status()

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
                _logger.info("deployment %s: restarted on port %s (pid %s)", slot.name, instance.port,
                             instance.process.pid)
                break
        finally:
            slot.restarting = False
            self.write_status()

    # ------------------------------------------------------------------ requests
    def load_auth(self) -> None:
        keys = read_json(self.folder / KEYS_FILE) or {}
        self.key_digests = [_digest(value) for value in keys.values() if value]
        self.token_cache.clear()

    async def authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            return False
        digest = _digest(header[7:].strip())
        if self.spec.get("auth_mode", "key") == "key":
            return any(hmac.compare_digest(digest, known) for known in self.key_digests)
        return await self.workspace_accepts(header, digest)

    async def workspace_accepts(self, header: str, digest: bytes) -> bool:
        """``aml_token``: a token is valid when the workspace's MLflow API accepts it (cached)."""
        if self.token_cache.get(digest, 0) > time.monotonic():
            return True
        url = self.spec.get("token_check_url")
        if not url:
            return False
        try:
            async with self.session.get(url, headers={"Authorization": header},
                                        timeout=aiohttp.ClientTimeout(total=10)) as resp:
                ok = resp.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False
        if ok:
            self.token_cache[digest] = time.monotonic() + TOKEN_CACHE_S
        return ok

    async def handle_ping(self, request: web.Request) -> web.Response:
        ready = [n for n, w in self.traffic.items() if w > 0 and self.slots.get(n) and self.slots[n].ready.is_set()]
        return web.Response(text="\n" if ready else "no deployment with traffic is ready\n",
                            status=200 if ready else 503, content_type="application/json" if ready else "text/plain")

    async def handle_request(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST" or request.path not in SCORE_PATHS:
            return _error(404, "ENDPOINT_NOT_FOUND",
                          f"{request.method} {request.path} is not served: POST /invocations (or /score)")
        if not await self.authorized(request):
            return _error(401, "UNAUTHENTICATED", "Missing or invalid credentials: send 'Authorization: Bearer "
                          "<endpoint key>'" if self.spec.get("auth_mode", "key") == "key" else
                          "Missing or invalid credentials: send 'Authorization: Bearer <workspace token>'")
        chosen = request.headers.get(DEPLOYMENT_HEADER)
        if chosen is not None and chosen not in self.slots:
            return _error(404, "RESOURCE_DOES_NOT_EXIST", f"Endpoint {self.name!r} has no deployment {chosen!r}; "
                          f"deployments: {', '.join(sorted(self.slots)) or 'none'}")
        if chosen is None:
            weighted = [(n, w) for n, w in self.traffic.items()
                        if w > 0 and n in self.slots and (self.slots[n].active or self.slots[n].restarting)]
            if not weighted:
                return _error(503, "TEMPORARILY_UNAVAILABLE", f"Endpoint {self.name!r} routes no traffic: set "
                              "traffic (e.g. {\"blue\": 100}) or name a deployment in the "
                              f"'{DEPLOYMENT_HEADER}' header")
            chosen = random.choices([n for n, _ in weighted], weights=[w for _, w in weighted])[0]
        body = await request.read()
        content_type = request.headers.get("Content-Type", "application/json").replace("\r", "").replace("\n", "")
        return await self.forward(self.slots[chosen], body, content_type)

    async def forward(self, slot: Slot, body: bytes, content_type_in: str) -> web.StreamResponse:
        last_error = "no server"
        deadline = time.monotonic() + REQUEST_WAIT_S
        while time.monotonic() < deadline:
            if not slot.ready.is_set():
                try:
                    await asyncio.wait_for(slot.ready.wait(), max(deadline - time.monotonic(), 0.01))
                except asyncio.TimeoutError:
                    break
            instance = slot.active
            if instance is None:
                break
            instance.inflight += 1
            try:
                status, content_type, payload = await instance.pool.post(body, content_type_in)
                return web.Response(body=payload, status=status,
                                    headers={"Content-Type": content_type, DEPLOYMENT_HEADER: slot.name})
            except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError) as exc:  # server gone: retry
                last_error = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.05)
                self.note_crash(slot, instance)
            finally:
                instance.inflight -= 1
        return _error(503, "TEMPORARILY_UNAVAILABLE", f"Deployment {slot.name!r} is not available ({slot.state}; "
                      f"{last_error})", deployment=slot.name)

    # ------------------------------------------------------------------ status
    def write_status(self, error: str | None = None) -> None:
        deployments = {}
        for name, slot in self.slots.items():
            instance = slot.active
            deployments[name] = {
                "state": slot.state, "generation": slot.generation, "failed_generation": slot.failed_generation,
                "error": slot.error, "restarts": slot.restarts,
                "pid": instance.process.pid if instance else None, "port": instance.port if instance else None,
                "started_at": instance.started_at if instance else None,
                "log": str(self.folder / "logs" / f"{name}.log"),
            }
        write_json(self.folder / STATUS_FILE, {
            "pid": os.getpid(), "port": self.port, "listening": error is None, "error": error,
            "applied_generation": self.applied_generation, "deployments": deployments,
            "traffic": self.traffic, "updated_at": time.time(), "started_at": self.started_at,
        })


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _error(status: int, code: str, message: str, deployment: str | None = None) -> web.Response:
    headers = {DEPLOYMENT_HEADER: deployment} if deployment else None
    return web.Response(status=status, text=json.dumps({"error_code": code, "message": message}),
                        content_type="application/json", headers=headers)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not (Path(args[0]) / ENDPOINT_FILE).is_file():
        print("usage: python endpoint_proxy.py <endpoint state folder>", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    return asyncio.run(EndpointProxy(Path(args[0]).resolve()).run())


if __name__ == "__main__":
    sys.exit(main())
