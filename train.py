"""Main job of this repository's MLflow project: ElasticNet on scikit-learn's bundled diabetes data.

Run it through the workspace backend: ``mlflow run . --backend azureml --env-manager local``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mlflow
from sklearn.datasets import load_diabetes
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alpha", type=float, default=0.5, help="regularisation strength")
    args = parser.parse_args()

    mlflow.autolog()
    features, target = load_diabetes(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(features, target, test_size=0.25, random_state=42)
    with mlflow.start_run():
        model = ElasticNet(alpha=args.alpha, l1_ratio=0.5, random_state=42).fit(x_train, y_train)
        predictions = model.predict(x_test)
        rmse = mean_squared_error(y_test, predictions) ** 0.5
        r2 = r2_score(y_test, predictions)
        mlflow.log_metrics({"test_rmse": rmse, "test_r2": r2})
        print(f"ElasticNet(alpha={args.alpha}): test RMSE={rmse:.3f} R2={r2:.3f}")

        outputs = Path("outputs")
        outputs.mkdir(exist_ok=True)
        (outputs / "metrics.txt").write_text(f"rmse={rmse}\nr2={r2}\n", encoding="utf-8")


if __name__ == "__main__":
    main()
