"""Artifact transfers: MLflow's own ``http://`` client vs the plugin's ``azureml://`` store.

One ``mlflow server --serve-artifacts`` (SQLite, 1 worker) and the test front door (its own
process, checking the bearer token, playing the workspace gateway) run on 127.0.0.1, exactly as in
``benchmarks/tracking.py``. The same workload goes through ``MlflowClient(<server http URL>)``
(MLflow's ``MlflowArtifactsRepository``: uploads one file at a time, downloads with its thread pool)
and through ``MlflowClient(azureml://127.0.0.1:<front door>/...)`` (the plugin's parallel, pooled
transfers, ``MLFLOW_WORKSPACE_TRANSFER_WORKERS`` workers):

* ``log_artifacts`` of 1,000 small files (0.2-4 KB in 20 nested folders, some empty, some with
  unicode names) and ``download_artifacts`` of that folder;
* ``log_artifact`` of one 200 MB file (random bytes) and ``download_artifacts`` of it.

Every phase runs twice per target in A-B-B-A order (each target once first, once second) into
fresh artifact paths, and every download is checked byte for byte against the source.

Loopback is the worst case for parallel transfers: every request costs only CPU, and the server,
the door and the client share this machine's cores. A remote workspace is reached over a link
whose round trip each request waits for; a second table emulates one (``--link-ms``, default 20 ms,
each request waits that long in a gateway before it is forwarded): ``--link-files`` small files
(default 300) up and down, MLflow's client through a plain gateway (a self-hosted server behind a
proxy) and the plugin through the workspace's door, both with the same delay.

Prints the time of each phase per target and its ratio (MLflow time / plugin time, above 1 =
plugin faster), and last ``artifacts: <smallest loopback ratio>x``. Usage:
``python benchmarks/artifacts.py`` (``--small N`` / ``--large-mb M`` / ``--link-ms 0`` for a
quicker run).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow_workspace_plugin.testing import servers as ws_servers

BLOCK = 8 * 1024 * 1024


def make_small_files(root: Path, count: int) -> None:
    """``count`` files of 0.2-4 KB in 20 nested folders; a few empty, a few with unicode names."""
    for i in range(count):
        folder = root / f"pkg{i % 20:02d}" / ("sub" if i % 3 == 0 else "")
        name = f"módulo_{i:04d}.py" if i % 50 == 0 else f"file_{i:04d}.txt"
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"" if i % 97 == 0 else (f"line {i} ".encode() * (20 + (i * 37) % 400)))


def make_large_file(path: Path, megabytes: int) -> str:
    """``megabytes`` MB of random bytes; returns the SHA-256."""
    digest = hashlib.sha256()
    left = megabytes * 1024 * 1024
    with open(path, "wb") as out:
        while left > 0:
            block = os.urandom(min(BLOCK, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def tree_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1000, help="number of small files (1000)")
    parser.add_argument("--large-mb", type=int, default=200, help="size of the large file in MB (200)")
    parser.add_argument("--link-ms", type=float, default=20.0, help="round trip of the emulated link (20; 0 skips it)")
    parser.add_argument("--link-files", type=int, default=300, help="small files sent over the link (300)")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # same quiet console for both

    from mlflow import MlflowClient

    token = "bench-" + secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="bench-artifacts-") as tmpdir:
        tmp = Path(tmpdir)
        os.environ["MLFLOW_WORKSPACE_HOME"] = str(tmp / "workspace-home")
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
        small = tmp / "small"
        make_small_files(small, args.small)
        linked = tmp / "linked"
        make_small_files(linked, args.link_files)
        large = tmp / "large" / "weights.bin"
        large.parent.mkdir()
        large_sha = make_large_file(large, args.large_mb)

        with ws_servers.server_behind_front_door(tmp / "server", token) as (server, door):
            loopback = measure(tmp, {"mlflow http": MlflowClient(server.url),
                                     "plugin": MlflowClient(ws_servers.workspace_uri(door.port))},
                               small_phases(small, args.small) + large_phases(large, large_sha, args.large_mb))
            link = None
            if args.link_ms > 0:
                gateway = ws_servers.start_front_door_process(server.url, None, latency_ms=args.link_ms)
                slow_door = ws_servers.start_front_door_process(server.url, token, latency_ms=args.link_ms)
                try:
                    link = measure(tmp, {"mlflow http": MlflowClient(f"http://127.0.0.1:{gateway.port}"),
                                         "plugin": MlflowClient(ws_servers.workspace_uri(slow_door.port))},
                                   small_phases(linked, args.link_files))
                finally:
                    gateway.stop()
                    slow_door.stop()

    workers = os.environ.get("MLFLOW_WORKSPACE_TRANSFER_WORKERS", "default")
    print(f"plugin workers: {workers}")
    if link is not None:
        report(f"over a {args.link_ms:g} ms link (both through a gateway)", link)
    ratios = report("loopback (MLflow's client straight to the server, the plugin through the workspace's door)",
                    loopback)
    print(f"artifacts: {min(ratios):.2f}x")


Phase = tuple[str, Callable[[Any, str, str, Path], None]]


def small_phases(folder: Path, count: int) -> list[Phase]:
    """Upload ``folder`` with ``log_artifacts`` and download it back (checked file by file)."""
    expected = tree_of(folder)

    def upload(client: Any, run_id: str, tag: str, tmp: Path) -> None:
        client.log_artifacts(run_id, str(folder), f"{folder.name}-{tag}")

    def download(client: Any, run_id: str, tag: str, tmp: Path) -> None:
        out = _fresh(tmp / "out")
        client.download_artifacts(run_id, f"{folder.name}-{tag}", str(out))
        got = tree_of(out / f"{folder.name}-{tag}")
        assert got == expected, f"downloaded tree differs ({len(got)} vs {len(expected)} files)"

    return [(f"upload {count} files", upload), (f"download {count} files", download)]


def large_phases(large: Path, sha: str, megabytes: int) -> list[Phase]:
    """Upload one large file with ``log_artifact`` and download it back (checked by SHA-256)."""
    def upload(client: Any, run_id: str, tag: str, tmp: Path) -> None:
        client.log_artifact(run_id, str(large), f"large-{tag}")

    def download(client: Any, run_id: str, tag: str, tmp: Path) -> None:
        out = _fresh(tmp / "out")
        client.download_artifacts(run_id, f"large-{tag}/{large.name}", str(out))
        assert sha256_of(out / large.name) == sha, "downloaded large file differs"

    return [(f"upload {megabytes} MB file", upload), (f"download {megabytes} MB file", download)]


def measure(tmp: Path, targets: dict[str, Any], phases: list[Phase]) -> list[tuple[str, float, float]]:
    """(phase, MLflow seconds, plugin seconds) per phase, each the mean of two A-B-B-A rounds."""
    runs = {}
    warm = tmp / "warm.txt"
    warm.write_text("warm up")
    for name, client in targets.items():  # connections, server caches, server-info probes
        exp_id = client.create_experiment(f"bench-artifacts-{name.replace(' ', '-')}-{secrets.token_hex(4)}")
        runs[name] = client.create_run(exp_id).info.run_id
        client.log_artifact(runs[name], str(warm), "warm")
        client.download_artifacts(runs[name], "warm", str(_fresh(tmp / "warm-out" / name)))
    rows = []
    for label, phase in phases:
        times = dict.fromkeys(targets, 0.0)
        for rnd, order in enumerate((list(targets), list(reversed(targets)))):  # A-B-B-A
            for name in order:
                started = time.perf_counter()
                phase(targets[name], runs[name], str(rnd), tmp)
                times[name] += time.perf_counter() - started
        print(f"  {label}: mlflow http {times['mlflow http']:.2f}s, plugin {times['plugin']:.2f}s (2 runs each)",
              file=sys.stderr, flush=True)
        rows.append((label, times["mlflow http"] / 2, times["plugin"] / 2))
    shutil.rmtree(tmp / "out", ignore_errors=True)
    for name, client in targets.items():
        client.set_terminated(runs[name])
    return rows


def report(title: str, rows: list[tuple[str, float, float]]) -> list[float]:
    """Print one table; returns its ratios (MLflow time / plugin time)."""
    print(title)
    print(f"  {'phase':<24}{'mlflow http':>13}{'plugin':>10}{'ratio':>8}")
    ratios = []
    for label, baseline, plugin in rows:
        ratios.append(baseline / plugin)
        print(f"  {label:<24}{baseline:>12.2f}s{plugin:>9.2f}s{ratios[-1]:>7.2f}x")
    return ratios


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


if __name__ == "__main__":
    main()
