"""Train an SVM on <data>/data.csv and write it to <model>/model.joblib."""

import argparse
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from sklearn.svm import SVC

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--kernel", default="linear")
parser.add_argument("--penalty", type=float, default=1.0)
parser.add_argument("--model", required=True)
args = parser.parse_args()

table = pd.read_csv(Path(args.data) / "data.csv")
model = SVC(kernel=args.kernel, C=args.penalty).fit(table.drop(columns="species"), table["species"])
Path(args.model).mkdir(parents=True, exist_ok=True)
joblib.dump(model, Path(args.model) / "model.joblib")
with mlflow.start_run():  # the step's run
    mlflow.log_params({"kernel": args.kernel, "penalty": args.penalty, "rows": len(table)})
print(f"model written to {args.model}")
