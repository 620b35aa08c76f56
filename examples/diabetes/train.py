"""Train the example regression model (disease progression) and log it to the MLflow run ml-cicd started.

`mlci run train` runs this with MLFLOW_RUN_ID, MLFLOW_TRACKING_URI, MLCI_TRAIN_DATA and
MLCI_LABEL set. `--alpha` sets the ridge penalty, so a second release differs a little.
"""

from __future__ import annotations

import argparse
import os

import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mlcicd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alpha", type=float, default=1.0)
    args = parser.parse_args()

    label = os.environ.get("MLCI_LABEL", "progression")
    train = pd.read_csv(os.environ.get("MLCI_TRAIN_DATA", "data/train.csv"))
    # Requests send every measurement as a float: train on that type.
    X, y = train.drop(columns=[label]).astype("float64"), train[label]
    model = make_pipeline(StandardScaler(), Ridge(alpha=args.alpha)).fit(X, y)
    mlcicd.log_model(model, input_example=X.head(5), params={"alpha": args.alpha},
                     metrics={"train_r2": float(model.score(X, y))})


if __name__ == "__main__":
    main()
