"""Pipeline jobs (``type: pipeline``) and command components: a graph of ordinary job runs.

``load_pipeline(path)`` -> :class:`PipelineSpec` (validated, nothing runs); ``run_pipeline(spec)`` ->
:class:`PipelineHandle` (imported on first use). See :mod:`.spec`, :mod:`.controller`, :mod:`.reuse`.
"""

from mlflow_workspace_plugin.jobs.pipeline.component import Component, load_component_file
from mlflow_workspace_plugin.jobs.pipeline.spec import PipelineSpec, Step, Upstream, load_pipeline


def __getattr__(name: str):
    if name in ("run_pipeline", "PipelineHandle"):
        from mlflow_workspace_plugin.jobs.pipeline import controller

        return getattr(controller, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Component", "PipelineHandle", "PipelineSpec", "Step", "Upstream", "load_component_file", "load_pipeline",
           "run_pipeline"]
