"""Seed 004's iris job with scikit-learn: read the CSV input, train an SVM, write the model to the output.

    python main.py --iris-csv ../data/iris.csv --kernel linear --penalty 1.0 --model-dir /tmp/model

The model is written twice under --model-dir (joblib and MLflow's format) and logged to the run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import joblib
import mlflow
import mlflow.sklearn
import pandas as pd
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iris-csv", required=True, help="CSV with four feature columns and 'species'")
    parser.add_argument("--kernel", default="linear", help="kernel type of the SVM")
    parser.add_argument("--penalty", type=float, default=1.0, help="penalty parameter C")
    parser.add_argument("--model-dir", required=True, help="folder the model is written to")
    args = parser.parse_args()

    table = pd.read_csv(args.iris_csv)
    x, y = table.drop(columns="species"), table["species"]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    with mlflow.start_run():  # inside a job: the job's run (MLFLOW_RUN_ID)
        mlflow.log_params({"kernel": args.kernel, "penalty": args.penalty, "rows": len(table)})
        model = SVC(kernel=args.kernel, C=args.penalty).fit(x_train, y_train)
        accuracy = accuracy_score(y_test, model.predict(x_test))
        mlflow.log_metric("accuracy", accuracy)
        mlflow.sklearn.log_model(model, name="model", input_example=x_test.head(3))
        print(f"Accuracy of SVM classifier on test set: {accuracy:.2f}")

    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    mlflow.sklearn.save_model(model, model_dir / "mlflow-model")
    print(f"model written to {model_dir}")


if __name__ == "__main__":
    main()
