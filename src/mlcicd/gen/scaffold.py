"""What ``mlci-gen init`` writes: a commented mlci.yaml for an existing project.

Looks for data files (CSV/Parquet) and reads only their header row to guess the
label and sensitive columns, so it is instant even on large files.
"""

from __future__ import annotations

import csv
from pathlib import Path

LABEL_NAMES = ("label", "target", "y", "class", "outcome", "default", "churn", "fraud")
SENSITIVE_NAMES = ("gender", "sex", "race", "ethnicity", "age_group", "religion", "disability", "nationality")
ROLES = {"train": ("train",), "eval": ("eval", "test", "valid", "holdout"), "reference": ("reference", "ref")}


def find_data_files(root: Path) -> dict[str, Path]:
    candidates = sorted(
        p for pattern in ("*.csv", "*.parquet", "data/*.csv", "data/*.parquet") for p in root.glob(pattern)
    )
    found: dict[str, Path] = {}
    for role, words in ROLES.items():
        for path in candidates:
            if any(w in path.stem.lower() for w in words) and path not in found.values():
                found[role] = path
                break
    return found


def header(path: Path) -> list[str]:
    if path.suffix == ".csv":
        with path.open(newline="") as fh:
            return next(csv.reader(fh), [])
    try:  # pyarrow is heavy and optional (the data extra): imported only for a Parquet file
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    except ImportError:
        return []


def render(files: dict[str, Path], root: Path, label: str, sensitive: list[str], name: str) -> str:
    def rel(role: str) -> str:
        return str(files[role].relative_to(root)) if role in files else f"data/{role}.csv"

    sens = ", ".join(sensitive)
    return f"""\
# ml-cicd configuration, written by `mlci-gen init`; edit freely (it is not regenerated).
# Every stage reads it; inputs and MLCI_* environment variables override single keys.
version: 1
project: {name}

data:
  train: {rel("train")}
  eval: {rel("eval")}
  reference: {rel("reference")}   # drift is measured against this set
  label: {label}
  sensitive: [{sens}]     # fairness is checked across these groups
  quality:
    max_missing_pct: 5
    max_duplicate_pct: 1
  drift:
    p_value: 0.01
    fail: true

train:
  command: python train.py      # runs under an MLflow run; log the model with mlcicd.log_model(model)

mlflow:
  model_name: {name}
  tracking_uri: sqlite:///.mlci/mlflow.db   # or https://mlflow.example.com

gate:
  thresholds:
    accuracy: {{min: 0.7}}
  non_inferiority: {{metric: accuracy, margin: 0.01, confidence: 0.95}}
  fairness: {{max_demographic_parity_difference: 0.1}}

deploy:
  target: local
  canary: {{weight: 10, duration: 300, interval: 10, min_requests: 200}}

# Notifications: one message on rollback, promote, inconclusive, gate-failed and drift (or the
# events in `on:`); a failed notification never fails a stage. Secrets stay in CI variables:
# name the variable here, never paste the URL or key. Uncomment the targets you use.
# notify:
#   slack: {{webhook_url_env: SLACK_WEBHOOK_URL, on: [rollback, inconclusive, gate-failed]}}
#   webhook: {{url: "https://ops.example.com/mlci", secret_env: MLCI_WEBHOOK_SECRET}}   # HMAC-SHA256 signed
#   sns: {{topic_arn: "arn:aws:sns:eu-west-1:123456789012:ml-alerts"}}
"""


def guess_label(columns: list[str]) -> str | None:
    return next((c for c in columns if c.lower() in LABEL_NAMES), None)


def guess_sensitive(columns: list[str]) -> list[str]:
    return [c for c in columns if c.lower() in SENSITIVE_NAMES]


def project_name(root: Path) -> str:
    return root.name.lower().replace("_", "-").replace(" ", "-") or "model"
