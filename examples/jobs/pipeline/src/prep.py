"""Split the iris CSV into train.csv and test.csv (stratified, fixed seed)."""

import argparse
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--raw", required=True)
parser.add_argument("--test-fraction", type=float, default=0.3)
parser.add_argument("--train", required=True)
parser.add_argument("--test", required=True)
args = parser.parse_args()

table = pd.read_csv(args.raw)
train, test = train_test_split(table, test_size=args.test_fraction, random_state=0, stratify=table["species"])
for folder, part in ((args.train, train), (args.test, test)):
    Path(folder).mkdir(parents=True, exist_ok=True)
    part.to_csv(Path(folder) / "data.csv", index=False)
print(f"{len(train)} training rows, {len(test)} test rows")
