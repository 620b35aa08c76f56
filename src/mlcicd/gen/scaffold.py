"""``mlci-gen init``: write a commented mlci.yaml for an existing project.

Looks for data files (CSV/Parquet) and reads only their header row to guess the
label and sensitive columns, so it is instant even on large files.
"""

from __future__ import annotations

import csv
from pathlib import Path

import click

from mlcicd.config import parse_config
from mlcicd.errors import EXIT_PASS, EXIT_USAGE

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
    try:
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
"""


def scaffold_config(directory: str, *, force: bool, label: str | None, cis: tuple[str, ...] = ()) -> int:
    """Write mlci.yaml and, for each CI in ``cis``, its pipeline (rendered as `mlci-gen render` would)."""
    from mlcicd.gen import pipeline

    root = Path(directory).resolve()
    target = root / "mlci.yaml"
    unknown = [ci for ci in cis if ci not in pipeline.CIS]
    if unknown:
        click.echo(f"error: --ci: unknown CI {', '.join(unknown)}.\nFix: use github, gitlab or github,gitlab.",
                   err=True)
        return EXIT_USAGE
    outputs = {ci: root / pipeline.PIPELINE_PATHS[ci] for ci in cis}
    existing = [p for p in (target, *outputs.values()) if p.exists()]
    if existing and not force:
        # Checked before anything is written: init writes all of its files or none.
        click.echo(f"error: {', '.join(map(str, existing))} already exist(s).\n"
                   "Fix: edit them, or pass --force to overwrite them.", err=True)
        return EXIT_USAGE
    files = find_data_files(root)
    columns = header(files["train"]) if "train" in files else []
    if label is None:
        label = next((c for c in columns if c.lower() in LABEL_NAMES), None)
    if label is None:
        click.echo(
            "error: could not tell which column is the label"
            + (f" (columns: {', '.join(columns)})" if columns else " (no data files found under . or data/)")
            + ".\nFix: pass --label COLUMN.",
            err=True,
        )
        return EXIT_USAGE
    sensitive = [c for c in columns if c.lower() in SENSITIVE_NAMES]
    name = root.name.lower().replace("_", "-").replace(" ", "-") or "model"
    text = render(files, root, label, sensitive, name)
    import yaml

    cfg = parse_config(yaml.safe_load(text), str(target))  # what we write must load
    # The pipelines name the config relative to the repository root, which is DIR.
    rendered = {ci: pipeline.render(pipeline.options(ci, config="mlci.yaml"), cfg) for ci in cis}
    target.write_text(text)
    click.echo(f"wrote {target}: label {label!r}, sensitive {sensitive or 'none'}, data "
               + (", ".join(f"{k}={v.relative_to(root)}" for k, v in files.items()) or "not found (edit data.*)"))
    for ci, pipeline_text in rendered.items():
        path = pipeline.write_pipeline(pipeline.options(ci), pipeline_text, force=True, root=root)
        click.echo(f"wrote {path} (regenerate: {pipeline.options(ci).command()})")
    return EXIT_PASS
