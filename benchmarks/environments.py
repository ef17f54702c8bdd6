"""Job environments: a cached env reused vs a fresh ``python -m venv`` + ``pip install`` of the same
requirements (what a job that installs its own packages would otherwise pay on every run).

Requirements: ``six==1.16.0`` and ``tomli==2.0.1`` (small, from the package index). In a private
``MLFLOW_WORKSPACE_HOME``:

* **first build**: ``ensure_environment`` builds the cached venv (uv, layered over this interpreter);
* **cached reuse**: ``ensure_environment`` of the same requirements again (``--runs`` times: a ``stat``
  of the layered site-packages and one small JSON read);
* **baseline**: ``python -m venv <tmp>`` then ``<tmp>/bin/python -m pip install`` of the same
  requirements (``--runs`` times, each in a new folder; pip's own download cache stays warm).

Prints each median and last ``environments: <baseline median / cached reuse median>x``.
Usage: ``python benchmarks/environments.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REQUIREMENTS = ["six==1.16.0", "tomli==2.0.1"]


def baseline(folder: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *REQUIREMENTS], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlflow-ws-bench-env-") as scratch:
        os.environ["MLFLOW_WORKSPACE_HOME"] = str(Path(scratch) / "home")
        from mlflow_workspace_plugin.environments.venv_cache import ensure_environment

        first = ensure_environment(REQUIREMENTS, description="benchmark", progress=lambda message: None)
        reuse = []
        for _ in range(args.runs):
            started = time.perf_counter()
            again = ensure_environment(REQUIREMENTS, description="benchmark", progress=lambda message: None)
            reuse.append(time.perf_counter() - started)
            assert not again.built and again.path == first.path
        fresh = [baseline(Path(scratch) / f"venv-{index}") for index in range(args.runs)]
    cached, plain = statistics.median(reuse), statistics.median(fresh)
    print(f"first build (uv, layered):            {first.seconds:8.3f} s")
    print(f"cached reuse, median of {args.runs}:          {cached * 1000:8.3f} ms")
    print(f"python -m venv + pip install, median: {plain:8.3f} s")
    print(f"environments: {plain / cached:.0f}x")


if __name__ == "__main__":
    main()
