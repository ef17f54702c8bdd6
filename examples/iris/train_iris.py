"""Seed 003: an SVM on the iris data; the model is saved with joblib under ./outputs.

    python train_iris.py --kernel linear --penalty 1.0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import joblib
import mlflow
import mlflow.sklearn
from sklearn import datasets
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kernel", type=str, default="linear", help="kernel type of the SVM")
    parser.add_argument("--penalty", type=float, default=1.0, help="penalty parameter C")
    args = parser.parse_args()

    x, y = datasets.load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    with mlflow.start_run():
        mlflow.log_params({"kernel": args.kernel, "penalty": args.penalty})
        model = SVC(kernel=args.kernel, C=args.penalty).fit(x_train, y_train)
        accuracy = accuracy_score(y_test, model.predict(x_test))
        mlflow.log_metric("accuracy", accuracy)
        print(f"Accuracy of SVM classifier on test set: {accuracy:.2f}")
        # also as an MLflow model, so the registered version loads with mlflow.pyfunc.load_model
        mlflow.sklearn.log_model(model, name="model", input_example=x_test[:2])

    Path("outputs").mkdir(exist_ok=True)
    joblib.dump(model, "outputs/model.joblib")  # uploaded to the run's artifacts by the backend


if __name__ == "__main__":
    main()
