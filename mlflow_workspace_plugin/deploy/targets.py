"""Which workspace a deployment target URI names, and where its deployment state lives.

``azureml-local:///<folder>`` (or just ``azureml-local``: the discovered local workspace) keeps its
state in ``<folder>/deployments``; ``azureml://…`` (or just ``azureml``: the discovered cloud
workspace) keeps it under ``$MLFLOW_WORKSPACE_HOME/deployments/<workspace>-<hash>`` on this machine.
The target URI is also the tracking and registry URI models are resolved against (as with
azureml-mlflow: "the target_uri is the same as the tracking uri").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from mlflow.exceptions import MlflowException

from mlflow_workspace_plugin import local_workspace
from mlflow_workspace_plugin.deploy.errors import DeploymentError
from mlflow_workspace_plugin.errors import WorkspaceConfigError
from mlflow_workspace_plugin.uri import SCHEME as CLOUD_SCHEME
from mlflow_workspace_plugin.uri import parse_workspace_uri
from mlflow_workspace_plugin.workspace import ComputeTarget, Workspace

LOCAL_SCHEME = local_workspace.LOCAL_SCHEME
STATE_DIR = "deployments"


@dataclass(frozen=True)
class DeployTarget:
    """A resolved deployment target: tracking URI of the workspace and its state folder."""

    tracking_uri: str
    state_root: Path
    workspace_name: str

    @property
    def is_local(self) -> bool:
        return self.tracking_uri.startswith(f"{LOCAL_SCHEME}:")

    @cached_property
    def workspace(self) -> Workspace | None:
        """The discovered workspace config, if it describes this target (for compute targets)."""
        try:
            found = Workspace.from_config()
        except WorkspaceConfigError:
            return None
        uri = local_workspace.local_tracking_uri(found.local_path) if found.is_local else found.scope.tracking_uri
        return found if uri == self.tracking_uri else None

    def compute_target(self, name: str) -> tuple[ComputeTarget, Workspace | None]:
        """The named compute target of this workspace (``local`` always exists)."""
        if name == "local":
            return ComputeTarget("local", "local"), None
        workspace = self.workspace
        if workspace is None:
            raise DeploymentError(
                f"Compute target {name!r} is unknown: no workspace config found for {self.tracking_uri} "
                "(set MLFLOW_WORKSPACE_CONFIG to the config.json that lists it under \"compute\"), or use "
                "\"compute\": \"local\""
            )
        return workspace.get_compute_target(name), workspace


def resolve_target(target_uri: str) -> DeployTarget:
    """Parse a target URI into a :class:`DeployTarget`; a bad one gives an error showing the shapes."""
    if target_uri in (LOCAL_SCHEME, CLOUD_SCHEME):
        workspace = Workspace.from_config()
        uri = workspace.get_mlflow_tracking_uri()
        if not uri.startswith(f"{target_uri}:"):
            raise DeploymentError(
                f"Target {target_uri!r} means the discovered workspace, but that is {uri}; pass the full "
                f"target URI (e.g. the output of `mlflow-workspace uri`)"
            )
        target_uri = uri
    scheme = urlsplit(target_uri).scheme
    if scheme == LOCAL_SCHEME:
        try:
            folder = local_workspace.folder_from_uri(target_uri)
        except MlflowException as exc:
            raise DeploymentError(str(exc.message)) from None
        return DeployTarget(local_workspace.local_tracking_uri(folder), folder / STATE_DIR, folder.name)
    if scheme == CLOUD_SCHEME:
        scope = parse_workspace_uri(target_uri)
        digest = hashlib.sha256(scope.tracking_uri.encode()).hexdigest()[:10]
        root = local_workspace.default_home() / STATE_DIR / f"{scope.workspace_name}-{digest}"
        return DeployTarget(scope.tracking_uri, root, scope.workspace_name)
    raise DeploymentError(
        f"Deployment target {target_uri!r} is not a workspace URI: use {LOCAL_SCHEME}:///<folder>, "
        f"azureml://<host>/mlflow/v1.0/subscriptions/…/workspaces/<name> (the workspace's tracking URI), "
        f"or just '{LOCAL_SCHEME}' / 'azureml' for the discovered workspace"
    )

