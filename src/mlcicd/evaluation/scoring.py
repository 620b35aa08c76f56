"""Load a logged MLflow model and score the evaluation rows with it.

Labels come from the pyfunc ``predict`` (what the model server will answer); the
positive-class score for ROC AUC comes from the underlying scikit-learn model's
``predict_proba`` when it has one. Before scoring, the frame is conformed to the
model's signature the way a JSON request would be: integer columns become floats
where the signature says double (MLflow refuses that cast as "unsafe", yet a CSV
column of whole numbers is the common case), and columns the model does not take
(the sensitive attribute, ids) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcicd.errors import DataError, UsageError
from mlcicd.evaluation.metrics import plain, positive_label
from mlcicd.registry import RegistryUnavailable

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Scored:
    """One model's answers on the evaluation rows."""

    uri: str
    model: Any  # the loaded pyfunc, kept for the latency benchmark
    inputs: pd.DataFrame  # the conformed feature frame it was scored on
    y_pred: np.ndarray
    classes: list[Any] | None  # the model's classes_, when it exposes them
    y_proba: np.ndarray | None = None  # predict_proba, columns in ``classes`` order
    no_score_reason: str = ""

    def positive_score(self, positive: Any) -> np.ndarray | None:
        if self.y_proba is None or self.classes is None or positive not in self.classes:
            return None
        return self.y_proba[:, self.classes.index(positive)]

    def positive(self, y_true: np.ndarray) -> Any:
        return positive_label(np.concatenate([np.asarray(y_true), self.y_pred]), self.classes)


def _unreachable(exc: BaseException) -> bool:
    text = str(exc)
    return "API request" in text and ("failed" in text or "Max retries" in text)


def load_model(uri: str, *, role: str, where: str) -> Any:
    """``mlflow.pyfunc.load_model`` with errors a user can act on."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        if _unreachable(exc):
            raise RegistryUnavailable(f"MLflow at {mlflow.get_tracking_uri()} is unreachable: {exc}") from exc
        detail = " ".join(str(exc).split())[:400]
        raise UsageError(
            f"the {role} model {uri} cannot be loaded from {mlflow.get_tracking_uri()}: {detail}",
            where=where,
            fix="pass the train stage's model-uri output (runs:/<run-id>/model) and the same tracking-uri "
            "the model was logged to",
        ) from None
    except (OSError, ImportError) as exc:
        raise UsageError(
            f"the {role} model {uri} was found but cannot be loaded here: {exc}",
            where=where,
            fix="install the libraries the model needs (its requirements.txt) in the gate job",
        ) from None


def conform(frame: pd.DataFrame, model: Any, *, shown: str, uri: str = "") -> pd.DataFrame:
    """The feature columns the model takes, in its order and types."""
    schema = model.metadata.get_input_schema()
    names = _signature_columns(schema) or _fitted_columns(model)
    if names is None:
        return frame
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise DataError(
            f"the evaluation data lacks columns the model {uri} was trained on: {', '.join(missing)}",
            where=shown,
            fix="evaluate on data with the training features (same names), or pass the matching model-uri",
        )
    out = frame[names]
    if schema is not None and not schema.is_tensor_spec():
        casts = {}
        for spec in schema.inputs:
            wanted = spec.type.to_numpy()
            if spec.name in out.columns and wanted.kind == "f" and out[spec.name].dtype.kind in "iub":
                casts[spec.name] = wanted
        if casts:
            out = out.astype(casts)
    return out


def _signature_columns(schema: Any) -> list[str] | None:
    if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
        return None
    return [str(n) for n in schema.input_names()]


def _fitted_columns(model: Any) -> list[str] | None:
    raw = _raw(model)
    names = getattr(raw, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else None


def _raw(model: Any) -> Any:
    try:
        return model.get_raw_model()
    except Exception:  # pyfunc flavours without a raw model raise differing errors; none is fatal
        return None


def score(uri: str, model: Any, features: pd.DataFrame, *, shown: str) -> Scored:
    """Predict labels (and positive-class scores where the model offers them)."""
    from mlflow.exceptions import MlflowException

    inputs = conform(features, model, shown=shown, uri=uri)
    try:
        raw_pred = model.predict(inputs)
    except MlflowException as exc:
        detail = " ".join(str(exc).split())
        # The schema error quotes the data: keep the part that says what is wrong.
        detail = detail[detail.find("Error:"):] if "Error:" in detail else detail[:400]
        raise DataError(
            f"the model {uri} cannot score the evaluation data: {detail}",
            where=shown,
            fix="give the evaluation data the columns and types of the model's signature (its MLmodel file)",
        ) from None
    y_pred = _labels(raw_pred, uri)
    raw = _raw(model)
    classes_attr = getattr(raw, "classes_", None)
    classes = [plain(c) for c in classes_attr] if classes_attr is not None else None
    scored = Scored(uri, model, inputs, y_pred, classes)
    if raw is None or not hasattr(raw, "predict_proba"):
        scored.no_score_reason = "the model has no predict_proba (not a scikit-learn probabilistic classifier)"
        return scored
    try:
        scored.y_proba = np.asarray(raw.predict_proba(inputs), dtype=float)
    except Exception as exc:  # any failure only costs the roc_auc figure: say why, do not stop the gate
        scored.no_score_reason = f"predict_proba failed: {type(exc).__name__}: {exc}"[:300]
    return scored


def check_label_types(y_true: np.ndarray, y_pred: np.ndarray, *, label: str, shown: str, uri: str) -> None:
    """Numbers vs strings never compare equal: without this the gate would report 0% accuracy."""
    numeric_true, numeric_pred = y_true.dtype.kind in "biuf", y_pred.dtype.kind in "biuf"
    if numeric_true != numeric_pred:
        raise DataError(
            f"the label column {label!r} holds {'numbers' if numeric_true else 'text'} (e.g. {plain(y_true[0])!r}) "
            f"but the model {uri} predicts {'numbers' if numeric_pred else 'text'} (e.g. {plain(y_pred[0])!r})",
            where=shown,
            fix="evaluate on data labelled the way the model was trained (same label values and type)",
        )


def _labels(raw: Any, uri: str) -> np.ndarray:
    values = raw.to_numpy() if hasattr(raw, "to_numpy") else np.asarray(raw)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise UsageError(
            f"the model {uri} returns {values.shape[1] if values.ndim == 2 else values.shape} values per row; "
            "the gate judges models that return one label or one number per row",
            where="input model-uri",
            fix="log a classifier whose predict returns class labels, or a regressor that returns one value per row",
        )
    return values
