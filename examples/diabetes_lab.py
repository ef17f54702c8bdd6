"""Seed 002 lab: train and track two regressors on the diabetes data, compare, register the best.

Works unchanged against any workspace: the local default, or an ``azureml://`` workspace when a
``config.json`` is found (``Workspace.from_config()``)::

    python examples/diabetes_lab.py [--chart r2.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
from sklearn.datasets import load_diabetes  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.tree import DecisionTreeRegressor  # noqa: E402

from mlflow_workspace_plugin import Workspace  # noqa: E402

EXPERIMENT = "experiment-diabetes"
MODEL_NAME = "model-diabetes"


def train(estimator, name: str, x_train, y_train) -> str:
    with mlflow.start_run() as run:
        mlflow.log_param("estimator", name)
        estimator.fit(x_train, y_train)
    return run.info.run_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chart", default=None, help="also save the R2 bar chart to this PNG file")
    args = parser.parse_args()

    ws = Workspace.from_config()
    mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())
    mlflow.set_experiment(EXPERIMENT)
    mlflow.autolog()

    features, target = load_diabetes(return_X_y=True, as_frame=True)
    x_train, _, y_train, _ = train_test_split(features, target, test_size=0.3, random_state=0)
    train(LinearRegression(), "LinearRegression", x_train, y_train)
    train(DecisionTreeRegressor(max_depth=5), "DecisionTreeRegressor", x_train, y_train)
    mlflow.autolog(disable=True)

    print("experiments:", [e.name for e in mlflow.search_experiments()])
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    runs = mlflow.search_runs(experiment.experiment_id, order_by=["start_time DESC"], max_results=2)
    print(runs[["run_id", "params.estimator", "metrics.training_r2_score"]].to_string(index=False))

    figure, axis = plt.subplots(figsize=(6, 4))
    axis.bar(runs["params.estimator"], runs["metrics.training_r2_score"])
    axis.set_xlabel("estimator")
    axis.set_ylabel("training R2")
    axis.set_ylim(0, 1)
    best = runs.sort_values("metrics.training_r2_score", ascending=False).iloc[0]
    with tempfile.TemporaryDirectory() as folder:
        chart = Path(folder) / "r2_by_estimator.png"
        figure.savefig(chart)
        if args.chart:
            figure.savefig(args.chart)
        with mlflow.start_run(run_id=best.run_id):
            mlflow.log_artifact(str(chart), artifact_path="charts")

    # autolog logged the model as an MLflow 3 LoggedModel of the run: register that model itself
    (model,) = mlflow.search_logged_models(filter_string=f"source_run_id = '{best.run_id}'", output_format="list")
    version = mlflow.register_model(f"models:/{model.model_id}", MODEL_NAME)
    print(f"best: {best['params.estimator']} (R2={best['metrics.training_r2_score']:.3f}); "
          f"registered {MODEL_NAME} version {version.version}")


if __name__ == "__main__":
    main()
