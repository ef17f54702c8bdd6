"""Pipeline test material: the step script, and writers for pipeline files and steps."""

from __future__ import annotations

from pathlib import Path

import yaml

STEP_SCRIPT = '''
import argparse, pathlib, sys, time
p = argparse.ArgumentParser()
p.add_argument("--inp", action="append", default=[])
p.add_argument("--out", default=None)
p.add_argument("--text", default="")
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--fail", action="store_true")
a = p.parse_args()
time.sleep(a.sleep)
if a.fail:
    print("step failed on purpose", file=sys.stderr)
    sys.exit(3)
got = []
for folder in a.inp:
    got += [f.read_text() for f in sorted(pathlib.Path(folder).rglob("*.txt"))]
if a.out:
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "data.txt").write_text("+".join(got + [a.text]))
print("step done:", a.text)
'''


def write_pipeline(folder: Path, jobs: dict, name: str = "pipeline.yml", **top) -> Path:
    raw = {"$schema": "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json", "type": "pipeline",
           "experiment_name": "pipelines", **top, "jobs": jobs}
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def step(text: str, *inputs: str, sleep: float = 0.0, **extra) -> dict:
    """A step using ./step.yml that reads ``inputs`` (other steps' ``out``) and writes ``text``."""
    values: dict = {"text": text, "sleep": sleep}
    if inputs:
        assert len(inputs) == 1
        values["inp"] = "${{parent.jobs." + inputs[0] + ".outputs.out}}"
    return {"type": "command", "component": "./step.yml", "inputs": values, **extra}
