"""Helpers a user's training script calls: log the model in one line.

``mlci run train`` starts an MLflow run and hands its id to the training command
through ``MLFLOW_RUN_ID``; :func:`log_model` logs into that run with explicit
``pip_requirements`` (MLflow's requirement inference costs ~8 s per model).
"""

from __future__ import annotations

import os
from importlib import metadata
from typing import Any

MODEL_ARTIFACT = "model"


def pinned(*packages: str) -> list[str]:
    """``name==version`` for installed packages, so the served model gets the same versions."""
    reqs = []
    for name in packages:
        try:
            reqs.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            reqs.append(name)
    return reqs


def own_types(model: Any) -> list[str]:
    """Types skops does not trust by default but that this freshly trained model uses.

    MLflow saves scikit-learn models with skops (no arbitrary code on load) and refuses
    types outside skops' allow-list; we vouch only for the types of the object we were
    handed, and MLflow stores that list next to the model for loading.
    """
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def log_model(
    model: Any,
    *,
    input_example: Any = None,
    pip_requirements: list[str] | None = None,
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
) -> str:
    """Log a scikit-learn model (or pipeline) to the current MLflow run; return its model URI.

    Works inside ``mlci run train`` (the run is already active via ``MLFLOW_RUN_ID``) and
    standalone (a run is started). The model is always logged under the name ``model`` so
    that the train stage can find it as ``runs:/<run-id>/model``.
    """
    import mlflow
    import mlflow.sklearn

    requirements = pip_requirements or pinned("scikit-learn", "pandas", "numpy", "skops")
    active = mlflow.active_run()
    started = None
    if active is None:
        started = mlflow.start_run(run_id=os.environ.get("MLFLOW_RUN_ID"))
    try:
        if params:
            mlflow.log_params(params)
        if metrics:
            mlflow.log_metrics(metrics)
        signature = None
        if input_example is not None:
            from mlflow.models import infer_signature

            signature = infer_signature(input_example, model.predict(input_example))
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            skops_trusted_types=own_types(model),
            pip_requirements=requirements,
            signature=signature,
            input_example=input_example,
        )
        current: Any = mlflow.active_run()  # the run started above: never None here
        run_id = current.info.run_id
        mlflow.set_tag("mlci.model_uri", f"runs:/{run_id}/{MODEL_ARTIFACT}")
        mlflow.set_tag("mlci.logged_model_id", getattr(info, "model_id", "") or "")
        return f"runs:/{run_id}/{MODEL_ARTIFACT}"
    finally:
        if started is not None:
            mlflow.end_run()
