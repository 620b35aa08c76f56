"""Train the example credit-default model and log it to the MLflow run ml-cicd started.

`mlci run train` runs this with MLFLOW_RUN_ID, MLFLOW_TRACKING_URI, MLCI_TRAIN_DATA
and MLCI_LABEL set. `--variant no-imputer` reproduces a classic training/serving
skew bug (the model cannot handle missing incomes) so the demo can show a canary
that passes the offline gate and still fails on live traffic.
"""

from __future__ import annotations

import argparse
import os

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import mlcicd

NUMERIC = ["age", "income", "debt_ratio", "credit_lines", "late_payments"]
CATEGORICAL = ["employment", "region"]


def build(variant: str, c: float) -> Pipeline:
    numeric = (
        make_pipeline(StandardScaler())
        if variant == "no-imputer"
        else make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    )
    features = ColumnTransformer(
        [("num", numeric, NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)]
    )
    return Pipeline([("features", features), ("clf", LogisticRegression(C=c, max_iter=500))])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", choices=["default", "no-imputer"], default="default")
    parser.add_argument("--C", type=float, default=1.0)
    args = parser.parse_args()

    label = os.environ.get("MLCI_LABEL", "default")
    train = pd.read_csv(os.environ.get("MLCI_TRAIN_DATA", "data/train.csv"))
    X, y = train.drop(columns=[label]), train[label]
    # Production sends numbers as floats and any of them may be missing: train on that type.
    X = X.astype({c: "float64" for c in NUMERIC})
    model = build(args.variant, args.C).fit(X, y)
    mlcicd.log_model(
        model,
        input_example=X.head(5),
        params={"variant": args.variant, "C": args.C},
        metrics={"train_accuracy": float(model.score(X, y))},
    )


if __name__ == "__main__":
    main()
