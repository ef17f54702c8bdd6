"""ONE run lifecycle for every door (projects backend, YAML jobs, sweeps) and every compute:

    plan (compute target, snapshot, where files go) -> RunRequest (frozen) -> launch: validate
    everything -> resolve tracking -> create + tag the run -> start on the executor of its compute
    target -> a typed run handle (WatchedRun), tracked until it ends (live_runs: one ordered
    shutdown) -> control: attach / cancel from any process by run id (the run's tags say where it runs)

Capture (console log, live logs, snapshot, outputs, final status) is done by the executor with
:mod:`mlflow_workspace_plugin.capture`, the same way locally and inside remote jobs.

Built for what comes next: a controller (a sweep's today, a pipeline's DAG of steps next) builds one
``RunRequest`` per child run with ``mlflow.parentRunId``, registers itself with
:func:`.live_runs.track_controller` and is stopped first at exit; :func:`.control.cancel` of the
parent reaches every child still going, whichever process runs it. A run of N instances (distributed
today on one machine, placement groups on a Ray cluster next) is one request with one ``ProcessSpec``
per instance and one handle whose ``pids`` (local) or job (remote) cover all of them.
"""

from mlflow_workspace_plugin.compute.environment import EnvironmentSpec
from mlflow_workspace_plugin.compute.handles import CANCEL_REASON_TAG, WatchedRun
from mlflow_workspace_plugin.compute.process_set import ProcessSpec
from mlflow_workspace_plugin.execution.lifecycle import launch
from mlflow_workspace_plugin.execution.plan import Plan, plan
from mlflow_workspace_plugin.execution.request import RunRequest

__all__ = ["CANCEL_REASON_TAG", "EnvironmentSpec", "Plan", "ProcessSpec", "RunRequest", "WatchedRun", "launch",
           "plan"]
