"""The front process of one local endpoint: ``python -m mlflow_workspace_plugin.deploy.endpoint_proxy
<endpoint state folder>`` — the router.

It imports only the standard library, aiohttp and the plugin's stdlib-only helpers (no MLflow in
this process: it starts in about a second and stays small). It listens on the endpoint's stable port
(127.0.0.1, ``SO_REUSEADDR``: a front restarted right after a crash binds at once) and

- checks the caller: ``Authorization: Bearer <key>`` (auth mode ``key``) or a workspace token
  (``aml_token``: accepted when the workspace's MLflow API accepts it; cached for a minute);
- routes ``POST /invocations`` (or ``/score``) to one deployment: the one named by the
  ``azureml-model-deployment`` header, else by weighted random choice over the endpoint's traffic
  (a deployment deleted while the request was arriving: another one with traffic answers, or a
  clear 503); the response names the deployment that answered in that same header;
- forwards it over the deployment's Unix socket (:mod:`.upstream`) to the scoring server that
  :mod:`.supervisor` runs; a request waits (up to a minute) for a deployment that is restarting.

``GET /ping`` (no key) answers 200 when a deployment that receives traffic is ready. ``SIGHUP``
re-reads ``endpoint.json``; SIGTERM stops every server, then this process. With uvloop installed
the event loop is uvloop's.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import hmac
import itertools
import json
import logging
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from mlflow_workspace_plugin.deploy import processes
from mlflow_workspace_plugin.deploy.supervisor import ENDPOINT_FILE, STATUS_FILE, Slot, Supervisor
from mlflow_workspace_plugin.deploy.upstream import UPSTREAM_GONE

_logger = logging.getLogger("mlflow_workspace_plugin.endpoint")
DEPLOYMENT_HEADER = "azureml-model-deployment"
SCORE_PATHS = frozenset({"/invocations", "/score"})
PING_PATHS = frozenset({"/ping", "/health"})
KEYS_FILE = "keys.json"  # as in state.py
REQUEST_WAIT_S = 60.0  # how long a request waits for a restarting deployment
TOKEN_CACHE_S = 60.0
MAX_BODY_BYTES = 256 * 1024 * 1024


class EndpointProxy:
    """Auth, routing and forwarding of one endpoint's requests."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.spec: dict[str, Any] = processes.read_json(folder / ENDPOINT_FILE) or {}
        self.name = self.spec.get("name", folder.name)
        self.port = int(self.spec["port"])
        self.key_digests: list[bytes] = []
        self.token_cache: dict[bytes, float] = {}
        self.stopping = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None  # aml_token checks only
        self.supervisor = Supervisor(folder, self.name, self.stopping, self.load_auth, self.port, time.time())
        self._routes: tuple[dict[str, int], list[str], list[int]] = ({}, [], [])

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> int:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        loop = asyncio.get_running_loop()

        def make_request(message, payload, protocol, writer, task) -> web.BaseRequest:
            return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=MAX_BODY_BYTES)

        # aiohttp's low-level server: two paths need no router, middlewares or application
        runner = web.ServerRunner(web.Server(self.dispatch, request_factory=make_request, access_log=None),
                                  handle_signals=False)
        await runner.setup()
        supervisor = self.supervisor
        try:  # SO_REUSEADDR: ports left in TIME_WAIT by a killed front do not block a restart
            await web.TCPSite(runner, processes.LOOPBACK, self.port, reuse_address=True).start()
        except OSError as exc:
            supervisor.write_status(error=f"cannot listen on {processes.LOOPBACK}:{self.port}: {exc.strerror or exc}")
            _logger.error("endpoint %s: cannot listen on port %s: %s", self.name, self.port, exc)
            await runner.cleanup()
            await self.session.close()
            await supervisor.stop_all()
            return 2
        loop.add_signal_handler(signal.SIGHUP, supervisor.request_reload)
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        _logger.info("endpoint %s listening on %s:%s (pid %s)", self.name, processes.LOOPBACK, self.port,
                     os.getpid())
        supervisor.write_status()
        supervisor.request_reload()
        monitor = asyncio.create_task(supervisor.monitor())
        await self.stopping.wait()
        monitor.cancel()
        _logger.info("endpoint %s stopping", self.name)
        await runner.cleanup()
        await supervisor.stop_all()
        await self.session.close()
        (self.folder / STATUS_FILE).unlink(missing_ok=True)
        return 0

    # ------------------------------------------------------------------ auth
    def load_auth(self, spec: dict[str, Any]) -> None:
        """Called by the supervisor with each ``endpoint.json`` it applies."""
        self.spec = spec
        keys = processes.read_json(self.folder / KEYS_FILE) or {}
        self.key_digests = [_digest(value) for value in keys.values() if value]
        self.token_cache.clear()

    async def authorized(self, request: web.BaseRequest) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        token = header[7:].strip()
        if not token:
            return False
        digest = _digest(token)
        if self.spec.get("auth_mode", "key") == "key":
            ok = False
            for known in self.key_digests:  # every key compared: constant time whichever matches
                ok |= hmac.compare_digest(digest, known)
            return ok
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

    # ------------------------------------------------------------------ routing
    def pick(self) -> Slot | None:
        """A deployment by weighted random choice over the traffic (None: no deployment can answer)."""
        traffic, slots = self.supervisor.traffic, self.supervisor.slots
        if self._routes[0] is not traffic:  # the supervisor replaces the table on each change
            names = [n for n, w in traffic.items() if w > 0]
            self._routes = (traffic, names, list(itertools.accumulate(traffic[n] for n in names)))
        _, names, cumulative = self._routes
        if names:
            slot = slots.get(names[bisect.bisect_right(cumulative, random.random() * cumulative[-1])])
            if slot is not None and (slot.active is not None or slot.restarting):
                return slot
        usable = [(n, w) for n, w in traffic.items()
                  if w > 0 and n in slots and (slots[n].active is not None or slots[n].restarting)]
        if not usable:
            return None
        return slots[random.choices([n for n, _ in usable], weights=[w for _, w in usable])[0]]

    async def dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "GET" and request.path in PING_PATHS:
            return await self.handle_ping(request)
        return await self.handle_request(request)

    async def handle_ping(self, request: web.BaseRequest) -> web.Response:
        slots = self.supervisor.slots
        ready = [n for n, w in self.supervisor.traffic.items() if w > 0 and n in slots and slots[n].ready.is_set()]
        return web.Response(text="\n" if ready else "no deployment with traffic is ready\n",
                            status=200 if ready else 503, content_type="application/json" if ready else "text/plain")

    async def handle_request(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method != "POST" or request.path not in SCORE_PATHS:
            return _error(404, "ENDPOINT_NOT_FOUND",
                          f"{request.method} {request.path} is not served: POST /invocations (or /score)")
        if not await self.authorized(request):
            return _error(401, "UNAUTHENTICATED", "Missing or invalid credentials: send 'Authorization: Bearer "
                          "<endpoint key>'" if self.spec.get("auth_mode", "key") == "key" else
                          "Missing or invalid credentials: send 'Authorization: Bearer <workspace token>'")
        headers = request.headers
        chosen = headers.get(DEPLOYMENT_HEADER)
        if chosen is None:
            slot = self.pick()
            if slot is None:
                return self._no_traffic()
        else:
            slot = self.supervisor.slots.get(chosen)
            if slot is None:
                return self._no_such_deployment(chosen)
        body = await request.read()
        content_type = headers.get("Content-Type", "application/json")
        if "\r" in content_type or "\n" in content_type:
            content_type = content_type.replace("\r", "").replace("\n", "")
        return await self.forward(chosen, slot, body, content_type)

    async def forward(self, chosen: str | None, slot: Slot, body: bytes, content_type_in: str) -> web.StreamResponse:
        """Send to ``slot`` (``chosen`` by name, else picked by traffic); if that deployment is deleted
        while the request arrives or waits, the named one answers 404, a picked one is picked again."""
        last_error = "no server"
        deadline = time.monotonic() + REQUEST_WAIT_S
        while time.monotonic() < deadline:
            if self.supervisor.slots.get(slot.name) is not slot:  # deleted meanwhile
                if chosen is not None:
                    return self._no_such_deployment(chosen)
                picked = self.pick()
                if picked is None:
                    return self._no_traffic()
                slot = picked
            if not slot.ready.is_set():
                try:
                    await asyncio.wait_for(slot.ready.wait(), min(max(deadline - time.monotonic(), 0.01), 1.0))
                except asyncio.TimeoutError:
                    pass
                continue
            instance = slot.active
            if instance is None or instance.retiring:  # between a crash and its restart
                await asyncio.sleep(0.02)
                continue
            instance.inflight += 1
            try:
                status, content_type, payload = await instance.upstream.post(body, content_type_in)
                return web.Response(body=payload, status=status,
                                    headers={"Content-Type": content_type, DEPLOYMENT_HEADER: slot.name})
            except UPSTREAM_GONE as exc:  # server gone (crash, stale connection): retry
                last_error = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.05)
                self.supervisor.note_crash(slot, instance)
            finally:
                instance.inflight -= 1
        return _error(503, "TEMPORARILY_UNAVAILABLE", f"Deployment {slot.name!r} is not available ({slot.state}; "
                      f"{last_error})", deployment=slot.name)

    def _no_such_deployment(self, chosen: str) -> web.Response:
        return _error(404, "RESOURCE_DOES_NOT_EXIST", f"Endpoint {self.name!r} has no deployment {chosen!r}; "
                      f"deployments: {', '.join(sorted(self.supervisor.slots)) or 'none'}")

    def _no_traffic(self) -> web.Response:
        return _error(503, "TEMPORARILY_UNAVAILABLE", f"Endpoint {self.name!r} routes no traffic: set "
                      "traffic (e.g. {\"blue\": 100}) or name a deployment in the "
                      f"'{DEPLOYMENT_HEADER}' header")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _error(status: int, code: str, message: str, deployment: str | None = None) -> web.Response:
    headers = {DEPLOYMENT_HEADER: deployment} if deployment else None
    return web.Response(status=status, text=json.dumps({"error_code": code, "message": message}),
                        content_type="application/json", headers=headers)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not (Path(args[0]) / ENDPOINT_FILE).is_file():
        print("usage: python -m mlflow_workspace_plugin.deploy.endpoint_proxy <endpoint state folder>",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    folder = Path(args[0]).resolve()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(EndpointProxy(folder).run())
    return uvloop.run(EndpointProxy(folder).run())


if __name__ == "__main__":
    sys.exit(main())
