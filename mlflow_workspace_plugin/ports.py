"""Free TCP ports on this machine (standard library only: the endpoint's front process uses it too)."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"
RAY_WORKER_PORTS = range(10002, 20000)  # Ray's default worker port range: keep other servers out of it


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct TCP ports free on ``host`` a moment ago, outside Ray's worker port range."""
    sockets: list[socket.socket] = []
    try:
        while len(sockets) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            if sock.getsockname()[1] in RAY_WORKER_PORTS:
                sock.close()
                continue
            sockets.append(sock)  # held open until all are chosen: the ports are distinct
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port free on ``host`` right now, outside Ray's worker port range."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in RAY_WORKER_PORTS:
            return port
