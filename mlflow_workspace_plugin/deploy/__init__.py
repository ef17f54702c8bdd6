"""Deploy registered models as online endpoints: the ``mlflow.deployments`` plugin.

Entry points ``azureml-local`` (:mod:`.azureml_local_plugin`) and ``azureml``
(:mod:`.azureml_plugin`) both hand MLflow :class:`~.client.WorkspaceDeploymentClient`.
An *endpoint* is a stable scoring URI with keys; it holds *deployments* (model versions) that
share its traffic. Locally an endpoint is a front process (:mod:`.endpoint_proxy`: the router;
:mod:`.supervisor`: its scoring servers; :mod:`.upstream`: its client to them over Unix sockets)
running one MLflow scoring server per deployment (:mod:`.local_servers`); on a ``ray`` compute target it
is a Ray Serve application (:mod:`.ray_serve`, :mod:`.ray_app`).
"""
