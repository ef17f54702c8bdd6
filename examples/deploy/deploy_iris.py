"""Seed 003's ``Model.deploy(ws, "scikit-learn-service", [model])`` with MLflow's deployments API.

    python examples/deploy/deploy_iris.py [--keep]

Uses the registered model ``sklearn-iris`` (a joblib file with ``framework`` / ``framework_version``
tags, as ``examples/iris/submit.py`` registers it; one is trained and registered here if the
workspace has none). It is served without any scoring code: the plugin wraps the joblib file as an
MLflow pyfunc model. The endpoint is called with the client and with curl plus its key (read from
``get_endpoint``, sent in the header, never printed), then deleted unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import joblib
import mlflow
import sklearn
from mlflow.deployments import get_deploy_client
from sklearn.datasets import load_iris
from sklearn.svm import SVC

from mlflow_workspace_plugin import Workspace

MODEL_NAME = "sklearn-iris"
SERVICE = "scikit-learn-service"


def ensure_registered(client: mlflow.MlflowClient) -> str:
    """The latest version of sklearn-iris, registering one like examples/iris/submit.py if needed."""
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    if versions:
        return max(versions, key=lambda v: int(v.version)).version
    x, y = load_iris(return_X_y=True)
    mlflow.set_experiment("train-iris")
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as folder:
        joblib.dump(SVC(kernel="linear").fit(x, y), Path(folder) / "model.joblib")
        mlflow.log_artifacts(folder, "outputs")
    client.create_registered_model(MODEL_NAME)
    version = client.create_model_version(
        MODEL_NAME, source=f"{run.info.artifact_uri}/outputs", run_id=run.info.run_id,
        tags={"framework": "ScikitLearn", "framework_version": sklearn.__version__,
              "model_path": "outputs/model.joblib"})
    return version.version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the endpoint running")
    args = parser.parse_args()

    ws = Workspace.from_config()
    mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())
    version = ensure_registered(mlflow.MlflowClient())

    deployments = get_deploy_client(ws.get_mlflow_tracking_uri())
    deployments.delete_endpoint(SERVICE)  # start from scratch (idempotent)
    deployment = deployments.create_deployment(SERVICE, f"models:/{MODEL_NAME}/{version}")
    print(f"deployed {MODEL_NAME} v{version}: {deployment['state']}, log {deployment['log']}")

    rows = load_iris(as_frame=True).data.iloc[[0, 60, 120]]
    print("client predictions:", deployments.predict(SERVICE, rows)["predictions"])

    endpoint = deployments.get_endpoint(SERVICE)
    body = json.dumps({"dataframe_split": rows.to_dict(orient="split")})
    print(f"curl -X POST {endpoint['scoring_uri']} -H 'Content-Type: application/json' "
          "-H \"Authorization: Bearer $KEY\" -d '<rows>'   "
          f"(KEY: mlflow-workspace endpoint show {SERVICE} --show-keys)")
    curl = subprocess.run(["curl", "-s", "-X", "POST", endpoint["scoring_uri"], "-H", "Content-Type: application/json",
                           "-H", f"Authorization: Bearer {endpoint['keys']['primary_key']}", "-d", body],
                          capture_output=True, text=True, check=True)
    print("curl predictions:  ", json.loads(curl.stdout)["predictions"])

    if args.keep:
        print(f"endpoint {SERVICE} keeps running at {endpoint['scoring_uri']}; stop it with "
              f"`mlflow-workspace endpoint stop {SERVICE} --delete`")
    else:
        deployments.delete_endpoint(SERVICE)
        print(f"endpoint {SERVICE} deleted")


if __name__ == "__main__":
    main()
