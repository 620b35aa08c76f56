"""The model behind the server: MLflow's request formats in, JSON-safe predictions out.

The protocol follows MLflow's scoring server (``/invocations`` with the
``dataframe_split`` / ``dataframe_records`` / ``instances`` / ``inputs`` bodies or
CSV), so clients written for ``mlflow models serve`` work unchanged.

mlflow, pandas and numpy are imported by :meth:`ModelService.load` (and the conversions),
so a process that only answers "loading" (the supervisor) never pays for them.
"""

from __future__ import annotations

import io
import json
import threading
from typing import Any

from mlcicd.serving.schema import FastPath

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
ACCEPTED = (
    'a JSON object with exactly one of "dataframe_split" ({"columns": [...], "data": [[...]]}), '
    '"dataframe_records" ([{column: value}, ...]), "instances" or "inputs" (optionally with "params"), '
    "or a CSV body with Content-Type: text/csv"
)
MAX_BODY = 64 * 1024 * 1024
_FLOAT_TYPES = {"float", "double"}


class BadRequest(Exception):
    """The body cannot be turned into model input; the client gets a 400."""


class ModelService:
    """The loaded model plus the request-to-input and output-to-JSON conversions."""

    def __init__(self, model_name: str, model_version: str, run_id: str | None) -> None:
        self.model_name = model_name
        self.model_version = model_version
        self.run_id = run_id
        self.model: Any = None
        self.ready = threading.Event()
        self.columns: list[str] = []  # input names of a column-based signature, in order
        self.float_columns: list[str] = []
        self.fast: FastPath | None = None

    def load(self, model_dir: str) -> None:
        import mlflow.pyfunc
        import numpy  # noqa: F401 - imported here so the first request does not pay for it
        import pandas  # noqa: F401

        model = mlflow.pyfunc.load_model(model_dir)
        schema = model.metadata.get_input_schema()
        if schema is not None and not schema.is_tensor_spec() and schema.has_input_names():
            self.columns = list(schema.input_names())
            self.float_columns = [str(c.name) for c in schema.inputs
                                  if str(getattr(c.type, "name", c.type)) in _FLOAT_TYPES]
        self.fast = FastPath.plan(model)
        self.model = model
        self.ready.set()

    # -- request body -> model input -------------------------------------------------------
    def parse(self, body: bytes, content_type: str) -> tuple[Any, dict[str, Any] | None]:
        import pandas as pd

        ctype = content_type.split(";", 1)[0].strip().lower()
        if ctype == "text/csv":
            try:
                frame = pd.read_csv(io.BytesIO(body))
            except Exception as exc:  # pandas raises several unrelated types for bad CSV
                raise BadRequest(f"the CSV body could not be read: {exc}") from None
            return self._conform(frame), None
        if ctype not in ("", "application/json"):
            raise BadRequest(f"unsupported Content-Type {ctype!r}")
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise BadRequest("the JSON body must be an object")
        keys = [k for k in FORMATS if k in doc]
        unknown = sorted(set(doc) - set(FORMATS) - {"params"})
        if len(keys) != 1 or unknown:
            found = ", ".join(sorted(doc)) or "nothing"
            raise BadRequest(f"unrecognised body (found keys: {found})")
        params = doc.get("params")
        if params is not None and not isinstance(params, dict):
            raise BadRequest('"params" must be a JSON object')
        try:
            data = self._to_input(keys[0], doc[keys[0]])
        except BadRequest:
            raise
        except (ValueError, TypeError) as exc:
            raise BadRequest(f'"{keys[0]}" could not be turned into model input: {exc}') from None
        return data, params

    def _to_input(self, key: str, payload: Any) -> Any:
        import numpy as np
        import pandas as pd

        if key == "dataframe_split":
            if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
                raise BadRequest('"dataframe_split" must be an object with a "data" list')
            return self._conform(pd.DataFrame(data=payload["data"], columns=payload.get("columns"),
                                              index=payload.get("index")))
        if key == "dataframe_records":
            if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
                raise BadRequest('"dataframe_records" must be a list of objects')
            return self._conform(pd.DataFrame(data=payload))
        # instances / inputs: TF-serving style. Rows of objects or a dict of columns are frames;
        # a plain array is a tensor, given column names when the model's signature has them.
        if isinstance(payload, dict):
            if self.columns:
                return self._conform(pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in payload.items()}))
            return {k: np.asarray(v) for k, v in payload.items()}
        if not isinstance(payload, list):
            raise BadRequest(f'"{key}" must be a list or an object')
        if payload and all(isinstance(r, dict) for r in payload):
            return self._conform(pd.DataFrame(data=payload))
        array = np.asarray(payload)
        if self.columns and array.ndim == 2 and array.shape[1] == len(self.columns):
            return self._conform(pd.DataFrame(array, columns=self.columns))
        if self.columns and array.ndim == 1 and len(self.columns) == 1:
            return self._conform(pd.DataFrame({self.columns[0]: array}))
        if array.size == 0:
            raise BadRequest("no rows in the input")
        return array

    def _conform(self, frame: Any) -> Any:
        """Whole numbers sent for float columns become floats, as MLflow's own server does.

        JSON has no int/float distinction (``1`` vs ``1.0``) and MLflow's schema check
        refuses int64 -> float64 as unsafe, so without this a client sending ``1``
        would get an error.
        """
        if len(frame) == 0:
            raise BadRequest("no rows in the input")
        for name in self.float_columns:
            if name in frame.columns and frame[name].dtype.kind in "iub":
                frame[name] = frame[name].astype("float64")
        return frame

    def predict(self, data: Any, params: dict[str, Any] | None) -> Any:
        if self.fast is not None and not params:
            frame = self.fast.conformed(data)
            if frame is not None:  # enforcement would only select columns (schema.py)
                return self.fast.predict(frame)
        return self.model.predict(data, params=params) if params else self.model.predict(data)


def to_json_predictions(raw: Any) -> tuple[Any, list[Any]]:
    """(JSON-safe predictions, one value per row for the prediction metric)."""
    import numpy as np
    import pandas as pd

    if isinstance(raw, pd.DataFrame):
        records = _clean(raw.to_dict(orient="records"))
        rows = [next(iter(r.values())) for r in records] if raw.shape[1] == 1 else ["multi"] * len(records)
        return records, rows
    if isinstance(raw, pd.Series):
        values = _clean(raw.tolist())
        return values, values
    if isinstance(raw, np.ndarray):
        values = _clean(raw.tolist())
        if raw.ndim == 1:
            return values, values
        return values, ["multi"] * (raw.shape[0] if raw.ndim else 1)
    if isinstance(raw, dict):
        return _clean(raw), ["multi"]
    if isinstance(raw, list | tuple):
        values = _clean(list(raw))
        return values, [v if not isinstance(v, list | dict) else "multi" for v in values]
    value = _clean(raw)
    return value, [value]


def _clean(obj: Any) -> Any:
    """numpy scalars -> Python, NaN/inf -> null (JSON has neither)."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, str | int | bool) or obj is None:
        return obj
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    item = getattr(obj, "item", None)  # numpy scalar, pandas Timestamp-like
    if callable(item):
        return _clean(item())
    if hasattr(obj, "tolist"):
        return _clean(obj.tolist())
    return str(obj)
