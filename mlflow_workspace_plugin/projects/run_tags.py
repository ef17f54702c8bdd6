"""The tags and params of a projects run, as MLflow's own ``_create_run`` records them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlflow.entities import SourceType
from mlflow.projects.utils import get_git_commit, get_git_repo_url
from mlflow.tracking import fluent
from mlflow.utils.mlflow_tags import (
    MLFLOW_GIT_BRANCH,
    MLFLOW_GIT_COMMIT,
    MLFLOW_GIT_REPO_URL,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_PROJECT_BACKEND,
    MLFLOW_PROJECT_ENTRY_POINT,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
)

from mlflow_workspace_plugin import mlflow_compat

if TYPE_CHECKING:
    from mlflow_workspace_plugin.mlflow_compat import Project

BACKEND_NAME = "azureml"


def project_run_tags(uri: str, work_dir: str, version: str | None, entry_point: str) -> dict[str, str]:
    """Source, user, git and parent-run tags, plus ``mlflow.project.backend=azureml``."""
    if mlflow_compat.is_local_project_uri(uri):
        source_name = mlflow_compat.git_url_if_present(mlflow_compat.expand_project_uri(uri))
    else:
        source_name = mlflow_compat.expand_project_uri(uri)
    tags = {
        MLFLOW_USER: mlflow_compat.current_user(),
        MLFLOW_SOURCE_NAME: source_name,
        MLFLOW_SOURCE_TYPE: SourceType.to_string(SourceType.PROJECT),
        MLFLOW_PROJECT_ENTRY_POINT: entry_point,
        MLFLOW_PROJECT_BACKEND: BACKEND_NAME,
    }
    commit = get_git_commit(work_dir)
    if commit is not None:
        tags[MLFLOW_GIT_COMMIT] = commit
    repo_url = get_git_repo_url(work_dir)
    if repo_url is not None:
        tags[MLFLOW_GIT_REPO_URL] = repo_url
    if mlflow_compat.is_valid_branch_name(work_dir, version):
        tags[MLFLOW_GIT_BRANCH] = version
    parent = fluent.active_run()
    if parent is not None:
        tags[MLFLOW_PARENT_RUN_ID] = parent.info.run_id
    return tags


def project_run_params(project: Project, entry_point: str, params: dict[str, str]) -> dict[str, str]:
    """Every parameter of the entry point (defaults included) plus the extra ones given."""
    entry = project.get_entry_point(entry_point)
    if entry is None:
        return dict(params)
    final, extra = entry.compute_parameters(params, storage_dir=None)
    return {key: str(value) for key, value in {**final, **extra}.items()}
