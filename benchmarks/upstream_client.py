"""The endpoint front's upstream client vs aiohttp's, against the same uvicorn server on a Unix socket.

    python benchmarks/upstream_client.py [--requests 4000]

One uvicorn server (a minimal ASGI app answering like MLflow's scoring server, so the server's
own time is small and the clients' difference shows) on a Unix socket; the front's
:class:`~mlflow_workspace_plugin.deploy.upstream.Upstream` and an aiohttp ``ClientSession`` over a
kept-alive ``UnixConnector`` send the same ``POST /invocations`` one at a time, interleaved in
blocks of 200, under asyncio's default loop and under uvloop when it is installed.

Last line: ``upstream client: <aiohttp p50 / Upstream p50>x`` (> 1: the front's own client is faster).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    out = b'{"predictions": [151.0]}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})
'''
BLOCK = 200


class AiohttpUpstream:
    """What the front would do with aiohttp: one session, a kept-alive UnixConnector."""

    def __init__(self, socket_path: str) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket_path, keepalive_timeout=4.0),
                                             skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                                             auto_decompress=False)

    async def post(self, body: bytes, content_type: str) -> tuple[int, str, bytes]:
        async with self.session.post("http://scoring-server/invocations", data=body,
                                     headers={"Content-Type": content_type}) as response:
            return response.status, response.headers.get("Content-Type", ""), await response.read()

    async def close(self) -> None:
        await self.session.close()


async def timed(client, body: bytes, count: int, sink: list[float]) -> None:
    for _ in range(count):
        started = time.perf_counter()
        status, _, _ = await client.post(body, "application/json")
        sink.append(time.perf_counter() - started)
        assert status == 200


async def compare(socket_path: str, requests: int) -> tuple[float, float]:
    from mlflow_workspace_plugin.deploy.upstream import Upstream

    body = json.dumps({"dataframe_split": {"columns": [f"c{i}" for i in range(10)], "data": [[0.1] * 10]}}).encode()
    ours, theirs = Upstream(socket_path), AiohttpUpstream(socket_path)
    await timed(ours, body, BLOCK, [])  # warm-up
    await timed(theirs, body, BLOCK, [])
    lat_ours: list[float] = []
    lat_theirs: list[float] = []
    for _ in range(max(1, requests // BLOCK)):
        await timed(ours, body, BLOCK, lat_ours)
        await timed(theirs, body, BLOCK, lat_theirs)
    await ours.close()
    await theirs.close()
    return statistics.median(lat_ours), statistics.median(lat_theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000, help="requests per client per loop")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-upstream-"))
    (folder / "tiny_app.py").write_text(APP, encoding="utf-8")
    socket_path = str(folder / "s.sock")
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--uds", socket_path, "--app-dir", str(folder),
                               "tiny_app:app", "--log-level", "warning"])
    try:
        deadline = time.monotonic() + 60
        while not Path(socket_path).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        loops = [("asyncio", asyncio.run)]
        try:
            import uvloop

            loops.append(("uvloop", uvloop.run))
        except ImportError:
            pass
        ratios = []
        for name, run in loops:
            ours, theirs = run(compare(socket_path, args.requests))
            ratios.append(theirs / ours)
            print(f"{name:<8} Upstream p50 {ours * 1e6:6.0f} us   aiohttp p50 {theirs * 1e6:6.0f} us   "
                  f"(aiohttp adds {(theirs - ours) * 1e6:.0f} us per request)")
        print(f"upstream client: {statistics.median(ratios):.2f}x")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
