"""The interpreter running the plugin is the one that runs the user's command."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def interpreter_first_on_path(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the folder of the running interpreter first on PATH, so ``python`` in a
    command (or in a Ray job started by a head we launch) is this Python, even from an
    un-activated virtualenv."""
    folder = str(Path(sys.executable).parent)
    rest = [part for part in env.get("PATH", os.defpath).split(os.pathsep) if part and part != folder]
    return {**env, "PATH": os.pathsep.join([folder, *rest])}
