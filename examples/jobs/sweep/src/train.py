"""Seed 004's sweep trial with scikit-learn: an SGD logistic regression on the iris CSV, one epoch at a time.

    python train.py --iris-csv ../../iris/data/iris.csv --learning-rate 0.05 --penalty l2

Logs ``test-multi_logloss`` (the sweep's primary metric, as LightGBM's autolog names it in the seed)
once per epoch, so early-termination policies have a curve to judge; the final model is written to
``./outputs`` (uploaded with the run; ``job download --all`` of the sweep fetches the best trial's).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iris-csv", required=True, help="CSV with four feature columns and 'species'")
    parser.add_argument("--learning-rate", type=float, required=True, help="constant SGD step size (eta0)")
    parser.add_argument("--penalty", default="l2", help="l2, l1 or elasticnet")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--epoch-seconds", type=float, default=0.3,
                        help="pause after each epoch, so the sweep's 1 s polls see the curve grow")
    args = parser.parse_args()

    table = pd.read_csv(args.iris_csv)
    x, y = table.drop(columns="species"), table["species"]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    model = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=args.learning_rate,
                          penalty=args.penalty, random_state=0)
    classes = sorted(y.unique())
    with mlflow.start_run():  # inside a trial: the trial's run (MLFLOW_RUN_ID)
        for epoch in range(args.epochs):
            model.partial_fit(x_train, y_train, classes=classes)
            loss = log_loss(y_test, model.predict_proba(x_test), labels=classes)
            mlflow.log_metric("test-multi_logloss", loss, step=epoch)
            print(f"epoch {epoch}: test-multi_logloss {loss:.4f}", flush=True)
            time.sleep(args.epoch_seconds)
        accuracy = accuracy_score(y_test, model.predict(x_test))
        mlflow.log_metric("accuracy", accuracy)
    Path("outputs").mkdir(exist_ok=True)
    joblib.dump({"scaler": scaler, "model": model}, "outputs/model.joblib")
    print(f"accuracy {accuracy:.3f}; model written to outputs/model.joblib")


if __name__ == "__main__":
    main()
