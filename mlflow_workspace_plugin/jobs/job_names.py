"""Job names: generated when a job file has none (``<adjective>_<noun>_<hex>``, as Azure ML's studio shows
them), and the run tags that identify a run as a job."""

from __future__ import annotations

import secrets

JOB_NAME_TAG = "azureml.job.name"
JOB_TYPE_TAG = "azureml.job.type"
JOB_FILE_TAG = "azureml.job.file"
DISPLAY_NAME_TAG = "azureml.job.display_name"
COMMAND_TAG = "azureml.job.command"
DISTRIBUTION_TAG = "azureml.job.distribution"
ENVIRONMENT_TAG = "azureml.job.environment"

_ADJECTIVES = (
    "amber", "bold", "brave", "calm", "clever", "crisp", "eager", "gentle", "happy", "honest", "keen",
    "lively", "loyal", "mellow", "nimble", "patient", "quiet", "sharp", "shy", "sunny", "swift", "tidy",
    "witty", "zen",
)
_NOUNS = (
    "apple", "basket", "bottle", "brush", "candle", "cloud", "coconut", "engine", "feather", "garden",
    "island", "kettle", "lemon", "library", "lizard", "mango", "napkin", "night", "pencil", "pillow",
    "river", "rocket", "tomato", "window",
)


def generate_job_name() -> str:
    """A fresh name such as ``sharp_bottle_3f9a1c2d`` (32 random bits: collisions are checked anyway)."""
    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}_{secrets.token_hex(4)}"
