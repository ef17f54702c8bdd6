"""A 6-step diamond pipeline (a -> b, c, d, e -> f; each step sleeps ``--step-seconds`` and writes its output)
against what a user does without pipelines: the same six command jobs, one after another, each with
``mlflow-workspace job create --stream`` (outputs passed by hand as local folders). Then the same pipeline
submitted again unchanged: every step is reused.

    python benchmarks/pipeline.py [--step-seconds 3]

Last line: ``pipeline: <sequential jobs / pipeline>x`` (above 1 means the pipeline is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CLI = [sys.executable, "-m", "mlflow_workspace_plugin.cli"]
STEPS = {"a": [], "b": ["a"], "c": ["a"], "d": ["a"], "e": ["a"], "f": ["b", "c", "d", "e"]}
SCRIPT = """
import pathlib, sys, time
out, seconds, inputs = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
time.sleep(seconds)
pathlib.Path(out).mkdir(parents=True, exist_ok=True)
text = "+".join(pathlib.Path(i, "data.txt").read_text() for i in inputs)
(pathlib.Path(out) / "data.txt").write_text(text + "|" + pathlib.Path(out).name)
"""


def write_pipeline(root: Path, seconds: float) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "step.py").write_text(SCRIPT)
    jobs = {}
    for name, upstream in STEPS.items():
        inputs = {f"in_{up}": f"${{{{parent.jobs.{up}.outputs.out}}}}" for up in upstream}
        reads = " ".join(f"${{{{inputs.in_{up}}}}}" for up in upstream)
        jobs[name] = {"type": "command", "code": "./src", "inputs": inputs, "outputs": {"out": {"type": "uri_folder"}},
                      "command": f"python step.py ${{{{outputs.out}}}} {seconds} {reads}".strip()}
    path = root / "pipeline.yml"
    path.write_text(yaml.safe_dump({"type": "pipeline", "experiment_name": "bench-pipeline", "jobs": jobs}))
    return path


def write_jobs(root: Path, seconds: float) -> list[Path]:
    """The six steps as plain command jobs; each reads the folders the earlier ones wrote (by hand)."""
    files = []
    for name, upstream in STEPS.items():
        reads = " ".join(str(root / "by-hand" / up) for up in upstream)
        job = {"code": str(root / "src"), "experiment_name": "bench-pipeline-by-hand",
               "command": f"python step.py {root / 'by-hand' / name} {seconds} {reads}".strip()}
        path = root / f"job-{name}.yml"
        path.write_text(yaml.safe_dump(job))
        files.append(path)
    return files


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv[2:6])} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--step-seconds", type=float, default=3.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    pipeline = write_pipeline(root, args.step_seconds)
    jobs = write_jobs(root, args.step_seconds)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_WORKSPACE_CONFIG")}
    env["MLFLOW_WORKSPACE_HOME"] = str(root / "workspace")
    timed([*CLI, "job", "create", "-f", str(jobs[0]), "--stream"], env)  # warm-up: the store, first imports
    by_hand = sum(timed([*CLI, "job", "create", "-f", str(job), "--stream"], env) for job in jobs)
    ours = timed([*CLI, "job", "create", "-f", str(pipeline), "--stream", "--set", "settings.force_rerun=true"], env)
    reused = timed([*CLI, "job", "create", "-f", str(pipeline), "--stream"], env)
    print(json.dumps({"step_seconds": args.step_seconds, "six_jobs_one_after_another_s": round(by_hand, 1),
                      "pipeline_s": round(ours, 1), "pipeline_fully_reused_s": round(reused, 1),
                      "cpus": os.cpu_count()}, indent=2))
    print(f"pipeline reused: {by_hand / reused:.1f}x")
    print(f"pipeline: {by_hand / ours:.2f}x")


if __name__ == "__main__":
    main()
