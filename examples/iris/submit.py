"""Seed 003 driver: run the iris project through the workspace backend, then register the
model file it wrote under ./outputs with its framework name and version.

    python examples/iris/submit.py [--kernel rbf] [--penalty 0.5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mlflow
import sklearn

from mlflow_workspace_plugin import Workspace

MODEL_NAME = "sklearn-iris"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kernel", default="linear")
    parser.add_argument("--penalty", type=float, default=1.0)
    parser.add_argument("--compute", default=None, help="compute target name (default: this machine)")
    args = parser.parse_args()

    mlflow.set_tracking_uri(Workspace.from_config().get_mlflow_tracking_uri())
    mlflow.set_experiment("train-iris")
    backend_config = {"USE_CONDA": False} if args.compute is None else {"COMPUTE": args.compute}
    run = mlflow.projects.run(
        uri=str(Path(__file__).parent),
        parameters={"kernel": args.kernel, "penalty": args.penalty},
        backend="azureml",
        env_manager="local",
        backend_config=backend_config,
    )
    # The run saved outputs/model.joblib (seed 003) and logged the same model in MLflow format;
    # the MLflow model is registered, with the seed's framework tags, so that
    # mlflow.pyfunc.load_model("models:/sklearn-iris/<version>") works.
    (model,) = mlflow.search_logged_models(filter_string=f"source_run_id = '{run.run_id}'", output_format="list")
    version = mlflow.register_model(
        f"models:/{model.model_id}", MODEL_NAME,
        tags={"framework": "ScikitLearn", "framework_version": sklearn.__version__,
              "joblib_file": "outputs/model.joblib"},
    )
    print(f"run {run.run_id} finished; registered {MODEL_NAME} version {version.version}")


if __name__ == "__main__":
    main()
