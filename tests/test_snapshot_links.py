"""Symbolic links in a run's code: stored as links, never as their targets' bytes; links out are never followed.

A hostile code folder holds ``env.txt -> /proc/self/environ`` (the process environment, with its
tokens), ``passwd -> /etc/passwd``, a relative link out, a chain out, a linked folder out and a loop,
next to links that stay inside. The CLI processes run with a canary variable in their environment:
it must reach no artifact, no private working copy and nothing in Ray's working folders.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import uuid
import zipfile
from pathlib import Path

import pytest
from helpers import artifact_paths
from mlflow import MlflowClient

from mlflow_workspace_plugin import Workspace
from mlflow_workspace_plugin.capture.links import LINKS_MANIFEST, restore_links
from mlflow_workspace_plugin.capture.snapshot import collect_snapshot
from mlflow_workspace_plugin.capture.source_package import build_source_zip
from mlflow_workspace_plugin.capture.uploads import snapshot_upload_files, stage_snapshot

# made at import, so no file (this one included, inside another job's package on a shared Ray) holds them
CANARY = f"canary-{uuid.uuid4().hex}"
OUTSIDE_SECRET = f"outside-secret-{uuid.uuid4().hex}"
CLI = [sys.executable, "-m", "mlflow_workspace_plugin.cli"]
OUT_LINKS = {"env.txt", "passwd", "etc", "chain", "hop", "up", "loop"}
IN_LINKS = {"data.csv": "real/data.csv", "latest": "real", "abs_inside": "real/data.csv"}
CHECKS = ("test -L data.csv && test -L latest && cat data.csv latest/data.csv abs_inside && "
          "for f in env.txt passwd etc chain hop up loop; do test ! -e $f && test ! -L $f || exit 7; done")


def hostile_code(folder: Path) -> Path:
    """``folder`` with real files, links inside and links pointing out."""
    (folder / "real").mkdir(parents=True)
    (folder / "real" / "data.csv").write_text("a,b\n", encoding="utf-8")
    (folder / "run.sh").write_text(CHECKS + "\n", encoding="utf-8")
    (folder.parent / "outside.txt").write_text(OUTSIDE_SECRET, encoding="utf-8")
    links = {"data.csv": "real/data.csv", "latest": "real", "abs_inside": str(folder / "real" / "data.csv"),
             "env.txt": "/proc/self/environ", "passwd": "/etc/passwd", "etc": "/etc", "chain": "hop",
             "hop": "/proc/self/environ", "up": "../outside.txt", "loop": "loop"}
    for name, target in links.items():
        os.symlink(target, folder / name)
    return folder


def test_snapshot_keeps_inside_links_as_relative_links_and_leaves_out_the_others(tmp_path, caplog):
    code = hostile_code(tmp_path / "src")
    with caplog.at_level(logging.WARNING, logger="mlflow.projects.azureml"):
        snapshot = collect_snapshot(code)
        collect_snapshot(code)  # again (a job's second look): no second warning
    assert set(snapshot.files) == {"real/data.csv", "run.sh"}
    assert dict(snapshot.links) == IN_LINKS
    assert set(snapshot.skipped_links) == OUT_LINKS
    warnings = [r.getMessage() for r in caplog.records if "symbolic link" in r.getMessage()]
    assert len(warnings) == 1 and all(name in warnings[0] for name in OUT_LINKS), warnings

    staged = stage_snapshot(snapshot, tmp_path / "copy")
    assert {p.name for p in staged.iterdir()} == {"real", "run.sh", *IN_LINKS}
    assert os.readlink(staged / "abs_inside") == "real/data.csv"  # relative: the copy never points back
    assert (staged / "latest" / "data.csv").read_text() == "a,b\n"
    files, links = snapshot_upload_files(staged)
    assert sorted(p.relative_to(staged).as_posix() for p in files) == ["real/data.csv", "run.sh"]
    assert set(links) == set(IN_LINKS)


def test_source_package_stores_links_as_links_and_the_job_side_restores_them(tmp_path):
    code = hostile_code(tmp_path / "src")
    package = build_source_zip(collect_snapshot(code), tmp_path / "source.zip")
    secrets = [Path("/etc/passwd").read_bytes()[:40], OUTSIDE_SECRET.encode()]
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        assert names == {"real/data.csv", "run.sh", LINKS_MANIFEST, *IN_LINKS}
        for name in IN_LINKS:
            info = archive.getinfo(name)
            assert stat.S_ISLNK(info.external_attr >> 16) and archive.read(name).decode() == IN_LINKS[name]
        assert not any(secret in archive.read(name) for name in names for secret in secrets)
    # Ray's own extractor writes zip links as plain files; the job runner turns them back into links
    from ray._private.runtime_env.packaging import unzip_package

    extracted = tmp_path / "extracted"
    unzip_package(str(package), str(extracted), remove_top_level_directory=False, unlink_zip=False)
    assert not (extracted / "data.csv").is_symlink()
    assert sorted(restore_links(extracted)) == sorted(IN_LINKS)
    assert (extracted / "data.csv").is_symlink() and (extracted / "latest" / "data.csv").read_text() == "a,b\n"
    files, links = snapshot_upload_files(tmp_path / "extracted")
    assert set(links) == set(IN_LINKS) and LINKS_MANIFEST not in {p.name for p in files}


def test_a_hand_made_links_manifest_cannot_point_out(tmp_path):
    (tmp_path / "job" / ".mlflow-job").mkdir(parents=True)
    (tmp_path / "job" / "ok.txt").write_text("ok")
    manifest = {"up": "../../etc/passwd", "/abs": "ok.txt", "deep/../../x": "ok.txt", "abs": "/etc/passwd",
                "sub/ok": "../ok.txt", "sub/out": "../../outside", "fine": "ok.txt"}
    (tmp_path / "job" / LINKS_MANIFEST).write_text(json.dumps(manifest))
    assert sorted(restore_links(tmp_path / "job")) == ["fine", "sub/ok"]
    assert (tmp_path / "job" / "sub" / "ok").read_text() == "ok"


@pytest.mark.slow
def test_job_runner_in_a_ray_extracted_package_restores_links_and_uploads_no_target(local_tracking, tmp_path):
    """The job side without a cluster: Ray's own extractor, then the real job runner process."""
    from ray._private.runtime_env.packaging import unzip_package

    code = hostile_code(tmp_path / "src")
    package = build_source_zip(collect_snapshot(code), tmp_path / "source.zip")
    extracted = tmp_path / "working_dir"
    unzip_package(str(package), str(extracted), remove_top_level_directory=False, unlink_zip=False)
    client = MlflowClient(local_tracking)
    run = client.create_run(client.create_experiment("runner-links"))
    env = {**os.environ, "MLFLOW_RUN_ID": run.info.run_id, "MLFLOW_TRACKING_URI": local_tracking}
    result = subprocess.run([sys.executable, "-m", "mlflow_workspace_plugin.compute.job_runner", "--", "bash run.sh"],
                            cwd=extracted, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "a,b\na,b\na,b\n" in result.stdout
    snapshot = {p.removeprefix("snapshot/") for p in artifact_paths(client, run.info.run_id, "snapshot")}
    assert snapshot == {"real/data.csv", "run.sh"}
    assert len(warning_lines(result.stderr, "not uploaded to snapshot/")) == 1, result.stderr


# ---------------------------------------------------------------- end to end through the CLIs
def cli_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    return {**env, "LEAK_CANARY_TOKEN": CANARY, **extra}


def downloaded_text(client: MlflowClient, run_id: str, destination: Path) -> str:
    folder = Path(client.download_artifacts(run_id, "", str(destination)))
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def warning_lines(stderr: str, text: str) -> list[str]:
    return [line for line in stderr.splitlines() if text in line]


@pytest.mark.slow
def test_local_job_and_projects_run_leak_no_link_target(tmp_path):
    code = hostile_code(tmp_path / "src")
    job = tmp_path / "job.yml"
    job.write_text(textwrap.dedent("""
        code: src
        command: bash run.sh
        experiment_name: links
    """), encoding="utf-8")
    env = cli_env()
    result = subprocess.run([*CLI, "job", "create", "-f", str(job), "--stream"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "a,b\na,b\na,b\n" in result.stdout  # the links inside work in the private copy
    assert len(warning_lines(result.stderr, "pointing outside")) == 1, result.stderr
    assert len(warning_lines(result.stderr, "not uploaded to snapshot/")) == 1, result.stderr

    # a projects run works in the project folder itself (its links are the user's); its snapshot is shared code
    (code / "MLproject").write_text("name: links\nentry_points:\n  main:\n    command: cat data.csv\n")
    projects = subprocess.run([sys.executable, "-m", "mlflow", "run", str(code), "--backend", "azureml",
                               "--env-manager", "local", "--experiment-name", "links-project"],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert projects.returncode == 0, projects.stdout + projects.stderr
    client = MlflowClient(Workspace.local(os.environ["MLFLOW_WORKSPACE_HOME"]).get_mlflow_tracking_uri())
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()
                               if e.name in ("links", "links-project")])
    assert len(runs) == 2
    for run in runs:
        snapshot = {p.removeprefix("snapshot/") for p in artifact_paths(client, run.info.run_id, "snapshot")}
        assert snapshot <= {"real/data.csv", "run.sh", "MLproject"} and "run.sh" in snapshot
        text = downloaded_text(client, run.info.run_id, tmp_path / run.info.run_id)
        assert CANARY not in text and OUTSIDE_SECRET not in text and "root:x:0:0" not in text


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ray_job_package_and_travelling_data_leak_no_link_target(ray_head, tmp_path):
    from ray_cluster import compute_targets, write_workspace

    config = write_workspace(tmp_path / "ws", compute_targets(ray_head.address))
    hostile_code(tmp_path / "src")
    data = hostile_code(tmp_path / "data" / "set")  # a data input whose folder links out too
    (data / "run.sh").unlink()
    job = tmp_path / "job.yml"
    job.write_text(textwrap.dedent("""
        code: src
        command: bash run.sh && cd ${{inputs.set}} && test -L data.csv && cat latest/data.csv && test ! -e env.txt
        inputs: {set: {type: uri_folder, path: data/set}}
        compute: azureml:fast-cluster
        experiment_name: ray-links
    """), encoding="utf-8")
    env = cli_env(MLFLOW_WORKSPACE_CONFIG=str(config))
    result = subprocess.run([*CLI, "job", "create", "-f", str(job), "--stream"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "a,b\na,b\na,b\na,b\n" in result.stdout
    client = MlflowClient(Workspace.from_config(str(config)).get_mlflow_tracking_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("ray-links").experiment_id])
    snapshot = {p.removeprefix("snapshot/") for p in artifact_paths(client, run.info.run_id, "snapshot")}
    assert snapshot - {".amlignore"} == {"real/data.csv", "run.sh"}  # (.amlignore: staged with the data)
    text = downloaded_text(client, run.info.run_id, tmp_path / "artifacts")
    assert CANARY not in text and OUTSIDE_SECRET not in text
    leaked = subprocess.run(["grep", "-rlaF", "-e", CANARY, "-e", OUTSIDE_SECRET, str(ray_head.temp_dir)],
                            capture_output=True, text=True)
    assert leaked.stdout == "", f"link targets reached Ray's folders: {leaked.stdout}"
