"""The Ray Serve application of one endpoint (imported on the cluster, never by the client).

Config ``import_path: mlflow_workspace_plugin.deploy.ray_app:build`` with ``args``::

    {"endpoint": "<name>", "generation": <n>, "tracking_uri": "<workspace URI>",
     "key_sha256": ["<hex digest of each key>"], "traffic": {"blue": 90, "green": 10},
     "deployments": {"blue": {"model_uri": "models:/m/1", "num_replicas": 1, "num_cpus": 1.0,
                              "generation": <n>}, ...}}

``build`` binds one :class:`MLflowModel` Serve deployment per MLflow deployment (it loads the model
once per replica, resolving the URI in the workspace exactly as the local target does, including the
no-code wrapper) and an :class:`EndpointRouter` ingress that checks the key, splits traffic (or
honours the ``azureml-model-deployment`` header) and answers like MLflow's scoring server. Keys
never reach the cluster: only their SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import tempfile
from pathlib import Path
from typing import Any

from ray import serve
from starlette.requests import Request
from starlette.responses import Response

DEPLOYMENT_HEADER = "azureml-model-deployment"
ROUTER_NAME = "router"
MODEL_PREFIX = "model-"  # Serve deployment of MLflow deployment "blue": "model-blue"


@serve.deployment
class MLflowModel:
    """One MLflow deployment: a pyfunc model behind MLflow's own request parsing and response format."""

    def __init__(self, model_uri: str, tracking_uri: str) -> None:
        import mlflow.pyfunc

        from mlflow_workspace_plugin.deploy import model_source

        source = model_source.resolve(model_uri, tracking_uri)
        folder = Path(tempfile.mkdtemp(prefix="mlflow-serve-model-")) / "model"
        model_source.materialize(source, folder, tracking_uri)
        self.model = mlflow.pyfunc.load_model(str(folder))
        self.input_schema = self.model.metadata.get_input_schema()

    def invoke(self, body: bytes, content_type: str) -> tuple[str, int, str]:
        from mlflow.exceptions import MlflowException
        from mlflow.pyfunc import scoring_server

        try:
            result = scoring_server.invocations(body, content_type, self.model, self.input_schema)
            return result.response, result.status, result.mimetype
        except MlflowException as exc:
            return exc.serialize_as_json(), exc.get_http_status_code(), "application/json"


@serve.deployment(ray_actor_options={"num_cpus": 0})
class EndpointRouter:
    """Ingress of the endpoint: key check, traffic split, MLflow scoring-server responses."""

    def __init__(self, endpoint: str, key_sha256: list[str], traffic: dict[str, int], models: dict[str, Any]) -> None:
        self.endpoint = endpoint
        self.digests = [bytes.fromhex(d) for d in key_sha256]
        self.traffic = {name: share for name, share in traffic.items() if share > 0 and name in models}
        self.models = models

    async def __call__(self, request: Request) -> Response:
        path = request.url.path.rstrip("/")
        if request.method == "GET" and path.endswith(("/ping", "/health")):
            return Response("\n", status_code=200 if self.traffic else 503, media_type="application/json")
        if request.method != "POST" or not path.endswith(("/invocations", "/score")):
            return _error(404, "ENDPOINT_NOT_FOUND", f"{request.method} {path} is not served: POST /invocations")
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.startswith("Bearer ") else ""
        digest = hashlib.sha256(token.encode()).digest()
        if not token or not any(hmac.compare_digest(digest, known) for known in self.digests):
            return _error(401, "UNAUTHENTICATED", "Missing or invalid credentials: send 'Authorization: Bearer "
                                                  "<endpoint key>'")
        name = request.headers.get(DEPLOYMENT_HEADER)
        if name is not None and name not in self.models:
            return _error(404, "RESOURCE_DOES_NOT_EXIST", f"Endpoint {self.endpoint!r} has no deployment {name!r}")
        if name is None:
            if not self.traffic:
                return _error(503, "TEMPORARILY_UNAVAILABLE", f"Endpoint {self.endpoint!r} routes no traffic")
            name = random.choices(list(self.traffic), weights=list(self.traffic.values()))[0]
        body = await request.body()
        content_type = request.headers.get("content-type", "application/json")
        text, status, mimetype = await self.models[name].invoke.remote(body, content_type)
        return Response(text, status_code=status, media_type=mimetype, headers={DEPLOYMENT_HEADER: name})


def _error(status: int, code: str, message: str) -> Response:
    return Response(json.dumps({"error_code": code, "message": message}), status_code=status,
                    media_type="application/json")


def build(args: dict[str, Any]):
    """Serve application builder: one model deployment per MLflow deployment plus the router."""
    models = {
        name: MLflowModel.options(name=f"{MODEL_PREFIX}{name}", num_replicas=int(spec.get("num_replicas", 1)),
                                  ray_actor_options={"num_cpus": float(spec.get("num_cpus", 1.0))})
        .bind(spec["model_uri"], args["tracking_uri"])
        for name, spec in args.get("deployments", {}).items()
    }
    return EndpointRouter.options(name=ROUTER_NAME).bind(args["endpoint"], list(args.get("key_sha256", [])),
                                                         dict(args.get("traffic", {})), models)
