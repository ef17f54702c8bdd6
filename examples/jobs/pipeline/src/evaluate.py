"""Score <model>/model.joblib on <data>/data.csv and log the accuracy on the step's run."""

import argparse
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from sklearn.metrics import accuracy_score

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--data", required=True)
args = parser.parse_args()

model = joblib.load(Path(args.model) / "model.joblib")
table = pd.read_csv(Path(args.data) / "data.csv")
accuracy = accuracy_score(table["species"], model.predict(table.drop(columns="species")))
with mlflow.start_run():
    mlflow.log_metric("accuracy", accuracy)
print(f"Accuracy on the test set: {accuracy:.2f}")
