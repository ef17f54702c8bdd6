"""Seed 002's ``model-diabetes``: blue/green deployment behind one endpoint, traffic split, promotion.

    python examples/deploy/deploy_diabetes.py [--keep]

Uses the last two versions of ``model-diabetes`` (``examples/diabetes_lab.py`` registers them; two
small ones are registered here if the workspace has fewer). ``blue`` serves the older version,
``green`` the newer one with 10% of the traffic; curl calls (with the endpoint key) show the split,
then green is promoted to 100% and blue is removed — requests keep being answered throughout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections import Counter

import mlflow
import sklearn
from mlflow.deployments import get_deploy_client
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression, Ridge

from mlflow_workspace_plugin import Workspace

MODEL_NAME = "model-diabetes"
ENDPOINT = "diabetes"


def two_versions(client: mlflow.MlflowClient) -> tuple[str, str]:
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{MODEL_NAME}'"))
    if len(versions) < 2:
        x, y = load_diabetes(return_X_y=True, as_frame=True)
        mlflow.set_experiment("experiment-diabetes")
        for estimator in (LinearRegression(), Ridge(alpha=0.1)):
            with mlflow.start_run() as run:
                mlflow.sklearn.log_model(estimator.fit(x, y), name="model",
                                         pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
            versions.append(int(mlflow.register_model(f"runs:/{run.info.run_id}/model", MODEL_NAME).version))
    return str(versions[-2]), str(versions[-1])


def curl(url: str, key: str, body: str) -> tuple[str, list]:
    """POST with curl; returns (deployment that answered, predictions)."""
    out = subprocess.run(["curl", "-s", "-i", "-X", "POST", url, "-H", "Content-Type: application/json",
                          "-H", f"Authorization: Bearer {key}", "-d", body], capture_output=True, text=True, check=True)
    headers, _, payload = out.stdout.partition("\n\n")  # text mode turned CRLF into LF
    served = next(line.split(":", 1)[1].strip() for line in headers.splitlines()
                  if line.lower().startswith("azureml-model-deployment:"))
    return served, json.loads(payload)["predictions"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the endpoint running")
    args = parser.parse_args()

    ws = Workspace.from_config()
    mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())
    older, newer = two_versions(mlflow.MlflowClient())

    deployments = get_deploy_client(ws.get_mlflow_tracking_uri())
    deployments.delete_endpoint(ENDPOINT)
    deployments.create_endpoint(ENDPOINT)  # auth mode "key": two generated keys
    deployments.create_deployment("blue", f"models:/{MODEL_NAME}/{older}", endpoint=ENDPOINT)
    deployments.create_deployment("green", f"models:/{MODEL_NAME}/{newer}", endpoint=ENDPOINT,
                                  config={"traffic": {"blue": 90, "green": 10}})
    endpoint = deployments.get_endpoint(ENDPOINT)
    print(f"endpoint {ENDPOINT} at {endpoint['scoring_uri']}, traffic {endpoint['traffic']}")

    rows = load_diabetes(as_frame=True).data.head(2)
    print("client (split):", deployments.predict(endpoint=ENDPOINT, inputs=rows)["predictions"])
    print("client (green):", deployments.predict("green", rows, endpoint=ENDPOINT)["predictions"])
    body = json.dumps({"dataframe_split": rows.to_dict(orient="split")})
    served = Counter(curl(endpoint["scoring_uri"], endpoint["keys"]["primary_key"], body)[0] for _ in range(50))
    print(f"50 curl calls answered by: {dict(served)}")

    deployments.update_endpoint(ENDPOINT, config={"traffic": {"blue": 0, "green": 100}})
    deployments.delete_deployment("blue", endpoint=ENDPOINT)
    print("promoted green:", deployments.get_endpoint(ENDPOINT)["traffic"])

    if args.keep:
        print(f"endpoint {ENDPOINT} keeps running; `mlflow-workspace endpoint show {ENDPOINT}`")
    else:
        deployments.delete_endpoint(ENDPOINT)
        print(f"endpoint {ENDPOINT} deleted")


if __name__ == "__main__":
    main()
