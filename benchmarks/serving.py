"""Serving latency and throughput: a local endpoint (front process with key check and a 50/50
traffic split over two scoring servers) vs a plain ``mlflow models serve`` of the same model, in one
run: one worker for latency (the endpoint's servers run one each), two workers (``-w 2``) for
throughput, so both sides have two scoring processes.

    python benchmarks/serving.py [--requests 2000] [--clients 50] [--rounds 3]

Latency: both get the same single-row predictions over one keep-alive HTTP session each,
interleaved in blocks of 100 so machine load hits both alike; p50 / p99 and requests/s per side.
Throughput: ``--clients`` concurrent keep-alive clients (asyncio + aiohttp in this process) send
``--requests`` predictions per side per round, sides alternating for ``--rounds`` rounds; the
median requests/s per side. Then failed requests while ``update_deployment`` switches a deployment
to another model version under a request loop (one request every 20 ms).

Last lines: ``throughput under <n> clients: <endpoint / direct>x`` (target >= 0.95), then the
headline ``serving: <direct p50 / endpoint p50>x`` (1.0 = the front adds nothing; target >= 0.8).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

BLOCK = 100


def register_models(uri: str) -> None:
    import mlflow
    import sklearn
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression, Ridge

    mlflow.set_tracking_uri(uri)
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    for estimator in (LinearRegression(), Ridge(alpha=0.1)):
        with mlflow.start_run() as run:
            mlflow.sklearn.log_model(estimator.fit(x, y), name="model",
                                     pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
        mlflow.register_model(f"runs:/{run.info.run_id}/model", "bench-diabetes")


def start_plain_server(model_dir: str, port: int, log: Path, workers: int = 1) -> subprocess.Popen:
    bin_dir = Path(sys.executable).parent  # `mlflow models serve` execs `uvicorn` from PATH
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(log, "wb") as out:
        process = subprocess.Popen([str(bin_dir / "mlflow"), "models", "serve", "-m", model_dir, "-h", "127.0.0.1",
                                    "-p", str(port), "-w", str(workers), "--env-manager", "local"], stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return process
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError(f"mlflow models serve did not start; see {log}")


def timed_block(session: requests.Session, url: str, body: dict, count: int, latencies: list[float]) -> int:
    failures = 0
    for _ in range(count):
        started = time.perf_counter()
        response = session.post(url, json=body, timeout=60)
        latencies.append(time.perf_counter() - started)
        failures += response.status_code != 200
    return failures


def throughput(url: str, headers: dict, body: dict, clients: int, count: int) -> tuple[float, int]:
    """(requests/s, failed) of ``count`` predictions sent by ``clients`` concurrent keep-alive clients."""
    import asyncio
    import json

    import aiohttp

    payload = json.dumps(body).encode()
    headers = {**headers, "Content-Type": "application/json"}

    async def run() -> tuple[float, int]:
        left, failed = [count], [0]
        connector = aiohttp.TCPConnector(limit=clients, force_close=False)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def client() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    try:
                        async with session.post(url, data=payload, headers=headers) as response:
                            await response.read()
                            failed[0] += response.status != 200
                    except aiohttp.ClientError:
                        failed[0] += 1

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(clients)))
            return count / (time.perf_counter() - started), failed[0]

    return asyncio.run(run())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def requests_during_update(client, scoring_uri: str, key: str, body: dict) -> tuple[int, int, float]:
    """(requests sent, failed, seconds the update took) with a request every 20 ms."""
    results: list[bool] = []
    stop = threading.Event()

    def loop() -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        while not stop.is_set():
            try:
                results.append(session.post(scoring_uri, json=body, timeout=60).status_code == 200)
            except requests.RequestException:
                results.append(False)
            time.sleep(0.02)

    sender = threading.Thread(target=loop, daemon=True)
    sender.start()
    started = time.perf_counter()
    client.update_deployment("blue", "models:/bench-diabetes/2", endpoint="bench")
    took = time.perf_counter() - started
    time.sleep(0.5)
    stop.set()
    sender.join(60)
    return len(results), results.count(False), took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="single-row predictions per side")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients for the throughput figure")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per side (median reported)")
    args = parser.parse_args()

    from mlflow.deployments import get_deploy_client
    from sklearn.datasets import load_diabetes

    from mlflow_workspace_plugin.deploy.processes import free_port, stop_group
    from mlflow_workspace_plugin.local_workspace import local_tracking_uri

    folder = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    uri = local_tracking_uri(folder / "ws")
    register_models(uri)
    client = get_deploy_client(uri)
    plain = plain2 = None
    try:
        client.create_endpoint("bench")
        client.create_deployment("blue", "models:/bench-diabetes/1", endpoint="bench")
        client.create_deployment("green", "models:/bench-diabetes/1", endpoint="bench",
                                 config={"traffic": {"blue": 50, "green": 50}})
        endpoint = client.get_endpoint("bench")
        model_dir = client.get_deployment("blue", "bench")["model_path"]
        port, port2 = free_port(), free_port()
        plain = start_plain_server(model_dir, port, folder / "plain.log")
        plain2 = start_plain_server(model_dir, port2, folder / "plain2.log", workers=2)

        row = load_diabetes(as_frame=True).data.head(1)
        body = {"dataframe_split": row.to_dict(orient="split")}
        direct, front = requests.Session(), requests.Session()
        front.headers["Authorization"] = f"Bearer {endpoint['keys']['primary_key']}"
        direct_url, front_url = f"http://127.0.0.1:{port}/invocations", endpoint["scoring_uri"]
        timed_block(direct, direct_url, body, 50, [])  # warm-up
        timed_block(front, front_url, body, 50, [])
        lat_direct: list[float] = []
        lat_front: list[float] = []
        failed = {"direct": 0, "endpoint": 0}
        wall = {"direct": 0.0, "endpoint": 0.0}
        for _ in range(max(1, args.requests // BLOCK)):
            for name, session, url, sink in (("direct", direct, direct_url, lat_direct),
                                             ("endpoint", front, front_url, lat_front)):
                started = time.perf_counter()
                failed[name] += timed_block(session, url, body, BLOCK, sink)
                wall[name] += time.perf_counter() - started

        print(f"{'':<34}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'failed':>8}")
        for name, latencies in (("direct (mlflow models serve)", lat_direct),
                                ("endpoint (key + 50/50 split)", lat_front)):
            key = "direct" if name.startswith("direct") else "endpoint"
            print(f"{name:<34}{percentile(latencies, .5) * 1000:>9.2f}{percentile(latencies, .99) * 1000:>9.2f}"
                  f"{len(latencies) / wall[key]:>9.0f}{failed[key]:>8}")
        overhead = statistics.median(lat_front) - statistics.median(lat_direct)
        print(f"front process adds {overhead * 1000:.2f} ms at p50")

        rates: dict[str, list[float]] = {"direct": [], "endpoint": []}
        for _ in range(args.rounds):
            auth = {"Authorization": front.headers["Authorization"]}
            for name, url, headers in (("direct", f"http://127.0.0.1:{port2}/invocations", {}),
                                       ("endpoint", front_url, auth)):
                rate, lost = throughput(url, headers, body, args.clients, args.requests)
                rates[name].append(rate)
                failed[name] += lost
        direct_rate, front_rate = statistics.median(rates["direct"]), statistics.median(rates["endpoint"])
        print(f"{args.clients} concurrent clients: direct (-w 2) {direct_rate:.0f} req/s, "
              f"endpoint {front_rate:.0f} req/s "
              f"(medians of {args.rounds}; failed: direct {failed['direct']}, endpoint {failed['endpoint']})")

        sent, lost, took = requests_during_update(client, front_url, endpoint["keys"]["primary_key"], body)
        print(f"update_deployment (blue -> version 2) took {took:.1f} s; {sent} requests during it, {lost} failed")
        print(f"throughput under {args.clients} clients: {front_rate / direct_rate:.2f}x")
        print(f"serving: {percentile(lat_direct, .5) / percentile(lat_front, .5):.2f}x")
    finally:
        for server in (plain, plain2):
            if server is not None:
                stop_group(server.pid)
                server.wait(10)
        client.delete_endpoint("bench")
        if os.environ.get("KEEP_BENCH_FOLDER") is None:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
