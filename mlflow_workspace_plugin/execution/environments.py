"""Environment tools every door checks for before a run exists."""

from __future__ import annotations

import os
import shutil


def conda_executable() -> str | None:
    """Path of the conda executable MLflow would use, if it exists."""
    from mlflow.utils.conda import get_conda_bin_executable

    candidate = get_conda_bin_executable("conda")
    if os.path.isabs(candidate):
        return candidate if os.access(candidate, os.X_OK) else None
    return shutil.which(candidate)
