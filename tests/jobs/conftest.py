"""Fixtures for the job-definition tests: a job folder with code, data and an environment file."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def job_dir(tmp_path) -> Path:
    """``<tmp>/iris-project`` with ``src/main.py``, ``data/iris.csv``, ``data/images/`` and ``environment.yml``."""
    root = tmp_path / "iris-project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "data" / "images").mkdir(parents=True)
    (root / "data" / "iris.csv").write_text("a,b\n1,2\n")
    (root / "data" / "images" / "one.txt").write_text("1")
    (root / "environment.yml").write_text("name: x\ndependencies: [python=3.11]\n")
    return root


@pytest.fixture
def write_job(job_dir):
    """``write_job(text, name="job.yml") -> Path``: a YAML file in ``job_dir`` (text is dedented)."""

    def write(text: str, name: str = "job.yml") -> Path:
        path = job_dir / name
        path.write_text(textwrap.dedent(text))
        return path

    return write
