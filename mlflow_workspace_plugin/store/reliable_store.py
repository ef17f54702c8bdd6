"""Tracking-store mixin: run data through the journal and background sender; reads flush first.

* ``log_metric`` / ``log_param`` / ``set_tag`` / ``log_batch`` journal and return at once;
  ``log_batch_async`` (MLflow's ``synchronous=False`` / ``MLFLOW_ENABLE_ASYNC_LOGGING``) does the
  same and returns a ``RunOperations`` whose ``wait()`` ends when the server acknowledged the data
  (or raises its rejection).
* ``update_run_info`` (``set_terminated`` / ``end_run``) is queued behind the run's data, then the
  run is flushed (bounded) and rejections of the run's data are raised with the server's message.
* Reads and other calls touching a run (``get_run``, ``get_metric_history``, ``search_runs``,
  ``delete_tag``, ``log_inputs``, ...) flush that run (or everything, for searches) first.
* ``flush_async_logging`` flushes everything and raises pending rejections.

``MLFLOW_WORKSPACE_ASYNC_LOGGING=false`` switches all this off (MLflow's blocking calls).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from mlflow.entities import Run, RunData, RunInfo, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import ErrorCode
from mlflow.protos.service_pb2 import GetRun
from mlflow.utils.async_logging.run_operations import RunOperations
from mlflow.utils.proto_json_utils import parse_dict
from mlflow.utils.rest_utils import http_request, verify_rest_response

from mlflow_workspace_plugin import mlflow_compat
from mlflow_workspace_plugin.reliable import entries, settings
from mlflow_workspace_plugin.reliable.pipeline import Pipeline, pipeline_for
from mlflow_workspace_plugin.uri import WorkspaceScope

_logger = logging.getLogger(__name__)
_ending = threading.local()  # set_terminated: shut_down_async_logging, then get_run for the URL
QUICK_READ_TIMEOUT = 5


class ReliableLogging:
    """Mixin placed before MLflow's ``RestStore`` in the MRO."""

    _pipeline: Pipeline | None

    def _init_reliable(self, scope: WorkspaceScope, tracking_uri: str) -> None:
        self._pipeline = pipeline_for(scope, tracking_uri) if settings.async_enabled() else None
        self._run_names: dict[str, tuple[str, str | None]] = {}  # run id -> (experiment id, name)

    def create_run(self, *args: Any, **kwargs: Any) -> Any:
        run = super().create_run(*args, **kwargs)
        self._remember(run)
        return run

    # ------------------------------------------------------------------ writes
    def log_metric(self, run_id: str, metric: Any) -> None:
        if self._pipeline is None:
            return super().log_metric(run_id, metric)
        self._pipeline.append(entries.from_batch(run_id, metrics=[metric]))

    def log_param(self, run_id: str, param: Any) -> None:
        if self._pipeline is None:
            return super().log_param(run_id, param)
        self._pipeline.append(entries.from_batch(run_id, params=[param]))

    def set_tag(self, run_id: str, tag: Any) -> None:
        if self._pipeline is None:
            return super().set_tag(run_id, tag)
        self._pipeline.append(entries.from_batch(run_id, tags=[tag]))

    def log_batch(self, run_id: str, metrics: Any, params: Any, tags: Any) -> None:
        if self._pipeline is None:
            return super().log_batch(run_id, metrics, params, tags)
        self._pipeline.append(entries.from_batch(run_id, metrics or (), params or (), tags or ()))

    def log_batch_async(self, run_id: str, metrics: Any, params: Any, tags: Any) -> RunOperations:
        if self._pipeline is None:
            return super().log_batch_async(run_id, metrics, params, tags)
        future = self._pipeline.append(entries.from_batch(run_id, metrics or (), params or (), tags or ()),
                                       want_future=True)
        return RunOperations([future])

    def update_run_info(self, run_id: str, run_status: Any, end_time: Any, run_name: Any) -> Any:
        """Queued behind the run's data; returns the server's RunInfo, or None if it is still
        journaled when the flush limit is reached (it will be sent later)."""
        if self._pipeline is None:
            return super().update_run_info(run_id, run_status, end_time, run_name)
        _ending.url_read = False
        future = self._pipeline.append([entries.run_update(run_id, run_status, end_time, run_name)],
                                       want_future=True)
        self._pipeline.kick_replay()
        self._flush_and_raise(run_id, release=True)
        if future is not None and future.done() and future.exception() is None:
            return future.result()
        return None

    # ------------------------------------------------------------------ MLflow's async hooks
    def flush_async_logging(self) -> None:
        if self._pipeline is None:
            return super().flush_async_logging()
        self._flush_and_raise(None, patient=True)

    def end_async_logging(self) -> None:
        if self._pipeline is None:
            return super().end_async_logging()

    def shut_down_async_logging(self) -> None:
        """``update_run_info`` (called right after by ``set_terminated``) flushes; here we only note
        that the ``get_run`` in between merely prints the run's URL (see :meth:`get_run`)."""
        if self._pipeline is None:
            return super().shut_down_async_logging()
        _ending.url_read = True

    # ------------------------------------------------------------------ reads flush first
    def get_run(self, run_id: str) -> Any:
        if self._pipeline is not None and getattr(_ending, "url_read", False):
            _ending.url_read = False
            return self._get_run_for_url(run_id)
        self._flush(run_id)
        run = super().get_run(run_id)
        self._remember(run)
        return run

    def _get_run_for_url(self, run_id: str) -> Any:
        """``set_terminated`` reads the run only to print its URL: one quick attempt, and if the
        workspace does not answer, what we know of the run - so ending a run never waits for
        MLflow's minutes-long retries, and its final status still gets journaled."""
        endpoint, method = mlflow_compat.tracking_endpoint(GetRun)
        try:
            response = http_request(self.get_host_creds(), endpoint, method, params={"run_id": run_id},
                                    max_retries=0, timeout=QUICK_READ_TIMEOUT)
            proto = GetRun.Response()
            parse_dict(verify_rest_response(response, endpoint).json(), proto)
            return Run.from_proto(proto.run)
        except Exception as exc:
            _logger.debug("mlflow-workspace: quick read of run %s failed: %s", run_id, exc)
        experiment_id, name = self._run_names.get(run_id, ("", None))
        info = RunInfo(run_id=run_id, experiment_id=experiment_id, user_id="",
                       status=RunStatus.to_string(RunStatus.RUNNING), start_time=0, end_time=None,
                       lifecycle_stage="active", run_name=name)
        return Run(info, RunData())

    def get_metric_history(self, run_id: str, metric_key: str, *args: Any, **kwargs: Any) -> Any:
        self._flush(run_id)
        return super().get_metric_history(run_id, metric_key, *args, **kwargs)

    def search_runs_page(self, *args: Any, **kwargs: Any) -> Any:
        self._flush(None)
        return super().search_runs_page(*args, **kwargs)

    def delete_run(self, run_id: str) -> None:
        self._flush(run_id)
        return super().delete_run(run_id)

    def restore_run(self, run_id: str) -> None:
        self._flush(run_id)
        return super().restore_run(run_id)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._flush(run_id)
        return super().delete_tag(run_id, key)

    def log_inputs(self, run_id: str, *args: Any, **kwargs: Any) -> Any:
        self._flush(run_id)
        return super().log_inputs(run_id, *args, **kwargs)

    def log_outputs(self, run_id: str, *args: Any, **kwargs: Any) -> Any:
        self._flush(run_id)
        return super().log_outputs(run_id, *args, **kwargs)

    def record_logged_model(self, run_id: str, mlflow_model: Any) -> Any:
        self._flush(run_id)
        return super().record_logged_model(run_id, mlflow_model)

    # ------------------------------------------------------------------ helpers
    def _remember(self, run: Any) -> None:
        info = getattr(run, "info", None)
        if info is not None and self._pipeline is not None:
            self._run_names[info.run_id] = (info.experiment_id, info.run_name)

    def _flush(self, run_id: str | None) -> None:
        if self._pipeline is not None:
            self._pipeline.flush(run_id)

    def _flush_and_raise(self, run_id: str | None, release: bool = False, patient: bool = False) -> None:
        pipeline = self._pipeline
        assert pipeline is not None
        left = pipeline.flush(run_id, release=release, patient=patient)
        errors = pipeline.take_errors(run_id)
        if errors:
            raise rejection_error(errors)
        problem = pipeline.auth_problem()
        if left and problem is not None:
            raise problem


def rejection_error(errors: list[MlflowException]) -> MlflowException:
    """One exception carrying the server's message(s) for rejected logged data."""
    if len(errors) == 1:
        return errors[0]
    shown = "\n".join(f"- {e.message}" for e in errors[:20])
    more = f"\n- ... and {len(errors) - 20} more" if len(errors) > 20 else ""
    return MlflowException(f"{len(errors)} logged values were rejected by the workspace:\n{shown}{more}",
                           error_code=ErrorCode.Value(errors[0].error_code))
