"""Test and benchmark front door: a small reverse proxy that plays the managed workspace gateway.

It serves only ``/mlflow/v1.0/<scope>/...`` and ``/mlflow/v2.0/<scope>/...`` for one workspace
scope, checks ``Authorization: Bearer <token>`` (401 otherwise; any other path is 404), strips
the prefix and forwards the rest to a plain MLflow server. Runs in a thread (tests) or as a
process (``python -m mlflow_workspace_plugin.testing.front_door --upstream URL --scope PATH --token-env VAR``,
benchmarks).

Fault injection: every authorised request is first offered to ``FrontDoor.faults``
(:class:`Faults`), whose rules can answer 429 with ``Retry-After``, 503, drop the connection
before forwarding, forward and then drop the answer (a lost acknowledgement), delay, or forward
and rewrite the answer's body (a compromised or misconfigured server).

Bodies stream through in both directions (as a real gateway streams them: a 200 MB upload is never
held in memory) unless a fault rule is installed, in which case the request body is read first so
that rules can see it.
"""

from __future__ import annotations

import argparse
import collections
import hmac
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "content-length", "host", "authorization"}
STREAM_BLOCK = 256 * 1024


@dataclass
class Request:
    """What a fault rule sees about one incoming request."""

    method: str
    path: str  # upstream path (prefix stripped), with query string
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    """What a fault rule makes the door do instead of simply forwarding.

    ``forward=False``: answer ``status``/``body``/``headers`` (or drop the connection).
    ``forward=True``: forward to the server first (after ``delay`` seconds), then either pass its
    answer on (its body through ``rewrite`` if given) or, with ``drop_connection``, close the
    connection without answering.
    """

    status: int = 0
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False
    forward: bool = False
    delay: float = 0.0
    rewrite: Callable[[bytes], bytes] | None = None


class Rule:
    """A counted fault: requests whose path contains ``path`` (and, if given, with ``method``)
    get ``reply``, at most ``times`` times (None: until removed); ``fired`` counts them."""

    def __init__(self, reply: Reply, path: str = "", times: int | None = None, method: str | None = None) -> None:
        self.reply, self.path, self.times, self.method = reply, path, times, method
        self.fired = 0
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply | None:
        if self.path not in request.path or (self.method and request.method != self.method):
            return None
        with self._lock:
            if self.times is not None and self.fired >= self.times:
                return None
            self.fired += 1
        return self.reply


def _mlflow_error(code: str, message: str) -> bytes:
    return json.dumps({"error_code": code, "message": message}).encode()


@dataclass
class Faults:
    """Mutable fault plan, consulted for every authorised request before it is forwarded.

    ``rules`` are callables ``(Request) -> Reply | None``; the first non-None reply wins.
    Empty by default (no faults).
    """

    rules: list[Callable[[Request], Reply | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, rule: Rule) -> Rule:
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def throttle(self, retry_after: float = 1.0, path: str = "", times: int | None = None) -> Rule:
        """429 Too Many Requests with ``Retry-After``."""
        return self.add(Rule(Reply(429, _mlflow_error("REQUEST_LIMIT_EXCEEDED", "Too many requests"),
                                   {"Content-Type": "application/json", "Retry-After": f"{retry_after:g}"}),
                             path, times))

    def unavailable(self, path: str = "", times: int | None = None, retry_after: float | None = None) -> Rule:
        """503 Service Unavailable (with ``Retry-After`` if given)."""
        headers = {"Content-Type": "text/plain"}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        return self.add(Rule(Reply(503, b"Service Unavailable: restarting", headers), path, times))

    def drop(self, path: str = "", times: int | None = None) -> Rule:
        """Close the connection without forwarding (the request never reaches the server)."""
        return self.add(Rule(Reply(drop_connection=True), path, times))

    def lose_ack(self, path: str = "", times: int | None = None) -> Rule:
        """Forward (the server applies the request), then close without answering."""
        return self.add(Rule(Reply(forward=True, drop_connection=True), path, times))

    def delay(self, seconds: float, path: str = "", times: int | None = None) -> Rule:
        """Forward after ``seconds``."""
        return self.add(Rule(Reply(forward=True, delay=seconds), path, times))

    def rewrite(self, transform: Callable[[bytes], bytes], path: str = "", times: int | None = None) -> Rule:
        """Forward, then pass the server's answer on with its body replaced by ``transform(body)``."""
        return self.add(Rule(Reply(forward=True, rewrite=transform), path, times))

    def decide(self, request: Request) -> Reply | None:
        with self.lock:
            rules = list(self.rules)
        for rule in rules:
            reply = rule(request)
            if reply is not None:
                return reply
        return None


class FrontDoor:
    """The proxy: routing, auth and forwarding; ``start()`` serves it on 127.0.0.1 in a thread."""

    def __init__(self, upstream: str, scope_path: str, tokens: set[str] | None = None, *,
                 latency: float = 0.0, plain: bool = False) -> None:
        self.upstream = upstream.rstrip("/")
        self.latency = latency  # seconds every request waits before it is forwarded (a link's round trip)
        self.plain = plain  # a plain reverse proxy: every path, no token (a self-hosted server behind nginx)
        self.prefixes = tuple(f"/mlflow/{version}/{scope_path.strip('/')}" for version in ("v1.0", "v2.0"))
        self.tokens: set[str] = set(tokens or ())
        self.faults = Faults()
        self.stats: collections.Counter[str] = collections.Counter()
        self.seen_tokens: collections.Counter[str] = collections.Counter()
        self._stats_lock = threading.Lock()
        self._local = threading.local()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        assert self._server is not None, "front door not started"
        return self._server.server_address[1]

    def start(self, port: int = 0) -> FrontDoor:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.door = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="front-door", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ------------------------------------------------------------------ request handling
    def route(self, path: str) -> str | None:
        """Upstream path for an incoming path, or None if it is not under this workspace."""
        if self.plain:
            return path
        for prefix in self.prefixes:
            if path.startswith(prefix + "/") or path.startswith(prefix + "?"):
                rest = path[len(prefix):]
                return rest if rest.startswith("/") else "/" + rest
        return None

    def authorised(self, header: str | None) -> bool:
        if self.plain:
            return True
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        ok = any(hmac.compare_digest(token.encode(), known.encode()) for known in list(self.tokens))
        if ok:
            with self._stats_lock:
                self.seen_tokens[token] += 1
        return ok

    def count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    door: FrontDoor


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid the 40 ms stall
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        return

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, reply: Reply) -> None:
        if reply.drop_connection:
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _handle(self) -> None:
        door = self.server.door
        door.count("requests")
        upstream_path = door.route(self.path)
        allowed = upstream_path is not None and door.authorised(self.headers.get("Authorization"))
        streaming = allowed and not door.faults.rules and self._has_length_body()
        body = b"" if streaming else self._read_body()  # a refused request's body is read, not left behind
        if upstream_path is None:
            door.count("not_found")
            self._reply(Reply(404, b"Not Found: no such workspace", {"Content-Type": "text/plain"}))
            return
        if not allowed:
            door.count("unauthorised")
            self._reply(Reply(401, b"Unauthorized: missing or invalid bearer token",
                              {"Content-Type": "text/plain", "WWW-Authenticate": 'Bearer realm="workspace"'}))
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if door.latency:
            time.sleep(door.latency)
        if streaming:
            self._stream(door, upstream_path, headers)
            return
        fault = door.faults.decide(Request(self.command, upstream_path, headers, body))
        if fault is not None:
            door.count("faults")
            if fault.delay:
                time.sleep(fault.delay)
            if not fault.forward:
                self._reply(fault)
                return
        answer = self._forward(door, upstream_path, headers, body)
        if fault is not None and fault.rewrite is not None:
            answer = Reply(answer.status, fault.rewrite(answer.body), answer.headers)
        if fault is not None and fault.drop_connection:
            answer = Reply(0, drop_connection=True)
        self._reply(answer)

    def _has_length_body(self) -> bool:
        return self.headers.get("Transfer-Encoding", "").lower() != "chunked"

    def _stream(self, door: FrontDoor, upstream_path: str, headers: dict[str, str]) -> None:
        """Forward with both bodies streamed (no fault rules installed)."""
        length = int(self.headers.get("Content-Length") or 0)
        data = _BodyReader(self.rfile, length) if length else None
        if length:
            headers["Content-Length"] = str(length)
        try:
            resp = door.session().request(self.command, door.upstream + upstream_path, headers=headers,
                                          data=data, stream=True, allow_redirects=False, timeout=120)
        except requests.RequestException as exc:
            door.count("upstream_errors")
            self.close_connection = True  # the request body may be half read
            self._reply(Reply(502, f"Bad Gateway: {type(exc).__name__}".encode()))
            return
        door.count("forwarded")
        with resp:
            size = resp.headers.get("Content-Length")
            if size is None:  # a chunked answer: pass it on whole
                content = resp.raw.read(decode_content=False)
                self._reply(Reply(resp.status_code, content,
                                  {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}))
                return
            self.send_response(resp.status_code)
            for name, value in resp.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", size)
            self.end_headers()
            if self.command != "HEAD":
                for block in resp.raw.stream(STREAM_BLOCK, decode_content=False):
                    self.wfile.write(block)

    def _forward(self, door: FrontDoor, upstream_path: str, headers: dict[str, str], body: bytes) -> Reply:
        try:
            resp = door.session().request(self.command, door.upstream + upstream_path, headers=headers,
                                          data=body or None, stream=True, allow_redirects=False,
                                          timeout=120)
            content = resp.raw.read(decode_content=False)
        except requests.RequestException as exc:
            door.count("upstream_errors")
            return Reply(502, f"Bad Gateway: {type(exc).__name__}".encode())
        door.count("forwarded")
        out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
        return Reply(resp.status_code, content, out)


class _BodyReader:
    """The first ``length`` bytes of a request's body, read as the upstream request sends them."""

    def __init__(self, rfile, length: int) -> None:
        self._rfile, self._left, self._length = rfile, length, length

    def __len__(self) -> int:
        return self._length

    def read(self, amount: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if amount is None or amount < 0 else min(amount, self._left)
        data = self._rfile.read(want)
        self._left -= len(data)
        return data


def main(argv: list[str] | None = None) -> None:
    """Run as a process: prints ``PORT <n>`` once listening; the token comes from an env var."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--scope", default="", help="subscriptions/.../workspaces/<ws>")
    parser.add_argument("--token-env", default="", help="env var holding the accepted token")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before forwarding each request")
    parser.add_argument("--plain", action="store_true", help="no workspace prefix, no token: a plain proxy")
    args = parser.parse_args(argv)
    if not args.plain and not (args.scope and args.token_env):
        parser.error("--scope and --token-env are required unless --plain")
    door = FrontDoor(args.upstream, args.scope, {os.environ[args.token_env]} if args.token_env else set(),
                     latency=args.latency_ms / 1000, plain=args.plain)
    server = _Server(("127.0.0.1", args.port), _Handler)
    server.door = door
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
