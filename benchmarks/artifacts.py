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
fresh artifact paths, and every download is checked byte for byte against the source. Prints the
time of each phase per target and its ratio (MLflow time / plugin time, above 1 = plugin faster),
and last ``artifacts: <smallest ratio>x``. Usage: ``python benchmarks/artifacts.py``
(``--small N`` / ``--large-mb M`` for a quicker run).
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

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests" / sub) for sub in ("tracking", "")]

import ws_servers  # noqa: E402

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
        expected_small = tree_of(small)
        large = tmp / "large" / "weights.bin"
        large.parent.mkdir()
        large_sha = make_large_file(large, args.large_mb)

        with ws_servers.server_behind_front_door(tmp / "server", token) as (server, door):
            targets = {"mlflow http": MlflowClient(server.url),
                       "plugin": MlflowClient(ws_servers.workspace_uri(door.port))}
            runs = {}
            warm = tmp / "warm.txt"
            warm.write_text("warm up")
            for name, client in targets.items():  # connections, server caches, server-info probes
                exp_id = client.create_experiment(f"bench-artifacts-{name.replace(' ', '-')}")
                runs[name] = client.create_run(exp_id).info.run_id
                client.log_artifact(runs[name], str(warm), "warm")
                client.download_artifacts(runs[name], "warm", str(_fresh(tmp / "warm-out" / name)))

            def upload_small(client: MlflowClient, run_id: str, tag: str) -> None:
                client.log_artifacts(run_id, str(small), f"small-{tag}")

            def download_small(client: MlflowClient, run_id: str, tag: str) -> None:
                out = _fresh(tmp / "out")
                client.download_artifacts(run_id, f"small-{tag}", str(out))
                got = tree_of(out / f"small-{tag}")
                assert got == expected_small, f"downloaded tree differs ({len(got)} vs {len(expected_small)} files)"

            def upload_large(client: MlflowClient, run_id: str, tag: str) -> None:
                client.log_artifact(run_id, str(large), f"large-{tag}")

            def download_large(client: MlflowClient, run_id: str, tag: str) -> None:
                out = _fresh(tmp / "out")
                client.download_artifacts(run_id, f"large-{tag}/{large.name}", str(out))
                assert sha256_of(out / large.name) == large_sha, "downloaded large file differs"

            phases: list[tuple[str, Callable]] = [
                (f"upload {args.small} files", upload_small),
                (f"download {args.small} files", download_small),
                (f"upload {args.large_mb} MB file", upload_large),
                (f"download {args.large_mb} MB file", download_large)]
            times = {name: [0.0] * len(phases) for name in targets}
            for index, (label, phase) in enumerate(phases):
                for rnd, order in enumerate((list(targets), list(reversed(targets)))):  # A-B-B-A
                    for name in order:
                        started = time.perf_counter()
                        phase(targets[name], runs[name], str(rnd))
                        times[name][index] += time.perf_counter() - started
                print(f"  {label}: mlflow http {times['mlflow http'][index]:.2f}s, plugin {times['plugin'][index]:.2f}s"
                      " (2 runs each)", file=sys.stderr, flush=True)
            shutil.rmtree(tmp / "out", ignore_errors=True)
            for name, client in targets.items():
                client.set_terminated(runs[name])

    workers = os.environ.get("MLFLOW_WORKSPACE_TRANSFER_WORKERS", "default")
    print(f"{'phase':<26}{'mlflow http':>13}{'plugin':>10}{'ratio':>8}   (plugin workers: {workers})")
    ratios = []
    for index, (label, _) in enumerate(phases):
        baseline, plugin = times["mlflow http"][index] / 2, times["plugin"][index] / 2
        ratios.append(baseline / plugin)
        print(f"{label:<26}{baseline:>12.2f}s{plugin:>9.2f}s{ratios[-1]:>7.2f}x")
    print(f"artifacts: {min(ratios):.2f}x")


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


if __name__ == "__main__":
    main()
