"""Pipeline test fixtures: a code folder with one step script and its component."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from pipeline_files import STEP_SCRIPT


@pytest.fixture
def pipeline_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "pipe"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "step.py").write_text(textwrap.dedent(STEP_SCRIPT))
    component = {
        "$schema": "https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json",
        "name": "step", "version": 1, "type": "command", "code": "./src",
        "inputs": {"inp": {"type": "uri_folder", "optional": True}, "text": {"type": "string", "default": "x"},
                   "sleep": {"type": "number", "default": 0}},
        "outputs": {"out": {"type": "uri_folder"}},
        "command": "python step.py $[[--inp ${{inputs.inp}}]] --text ${{inputs.text}} --sleep ${{inputs.sleep}} "
                   "--out ${{outputs.out}}",
    }
    (folder / "step.yml").write_text(yaml.safe_dump(component, sort_keys=False))
    return folder
