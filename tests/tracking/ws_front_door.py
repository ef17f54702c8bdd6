"""Test-only front door: a small reverse proxy that plays the managed workspace gateway.

It serves only ``/mlflow/v1.0/<scope>/...`` and ``/mlflow/v2.0/<scope>/...`` for one workspace
scope, checks ``Authorization: Bearer <token>`` (401 otherwise; any other path is 404), strips
the prefix and forwards the rest to a plain MLflow server. Runs in a thread (tests) or as a
process (``python ws_front_door.py --upstream URL --scope PATH --token-env VAR``, benchmark).

Fault injection hook: every authorised request is first offered to ``FrontDoor.faults``
(:class:`Faults`); a later issue can make it answer 429/503, drop connections or delay.
"""

from __future__ import annotations

import argparse
import collections
import hmac
import os
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import requests

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "content-length", "host", "authorization"}


@dataclass
class Request:
    """What a fault rule sees about one incoming request."""

    method: str
    path: str  # upstream path (prefix stripped), with query string
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    """A canned answer a fault rule may return instead of forwarding."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False


@dataclass
class Faults:
    """Mutable fault plan, consulted for every authorised request before it is forwarded.

    ``rules`` are callables ``(Request) -> Reply | None``; the first non-None reply wins.
    Empty by default (no faults).
    """

    rules: list[Callable[[Request], Reply | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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

    def __init__(self, upstream: str, scope_path: str, tokens: set[str] | None = None) -> None:
        self.upstream = upstream.rstrip("/")
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

    def start(self, port: int = 0) -> "FrontDoor":
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
        for prefix in self.prefixes:
            if path.startswith(prefix + "/") or path.startswith(prefix + "?"):
                rest = path[len(prefix):]
                return rest if rest.startswith("/") else "/" + rest
        return None

    def authorised(self, header: str | None) -> bool:
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
        body = self._read_body()
        door.count("requests")
        upstream_path = door.route(self.path)
        if upstream_path is None:
            door.count("not_found")
            self._reply(Reply(404, b"Not Found: no such workspace", {"Content-Type": "text/plain"}))
            return
        if not door.authorised(self.headers.get("Authorization")):
            door.count("unauthorised")
            self._reply(Reply(401, b"Unauthorized: missing or invalid bearer token",
                              {"Content-Type": "text/plain", "WWW-Authenticate": 'Bearer realm="workspace"'}))
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        fault = door.faults.decide(Request(self.command, upstream_path, headers, body))
        if fault is not None:
            door.count("faults")
            self._reply(fault)
            return
        try:
            resp = door.session().request(self.command, door.upstream + upstream_path, headers=headers,
                                          data=body or None, stream=True, allow_redirects=False,
                                          timeout=120)
            content = resp.raw.read(decode_content=False)
        except requests.RequestException as exc:
            door.count("upstream_errors")
            self._reply(Reply(502, f"Bad Gateway: {type(exc).__name__}".encode()))
            return
        door.count("forwarded")
        out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
        self._reply(Reply(resp.status_code, content, out))


def main(argv: list[str] | None = None) -> None:
    """Run as a process: prints ``PORT <n>`` once listening; the token comes from an env var."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--scope", required=True, help="subscriptions/.../workspaces/<ws>")
    parser.add_argument("--token-env", required=True, help="env var holding the accepted token")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    door = FrontDoor(args.upstream, args.scope, {os.environ[args.token_env]})
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
