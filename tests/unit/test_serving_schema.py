"""The fast path gives exactly what MLflow's schema enforcement + predict give, or steps aside."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcicd.serving.schema import FastPath

FEATURES = {"age": [30.0, 41.0, 55.0], "income": [1.0, np.nan, 3.0], "lines": [1, 2, 3], "region": ["n", "s", "n"]}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    x = pd.DataFrame(FEATURES)
    pipe = make_pipeline(
        ColumnTransformer([("num", SimpleImputer(), ["age", "income", "lines"]),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])]),
        LogisticRegression())
    pipe.fit(x, [0, 1, 0])
    path = tmp_path_factory.mktemp("m") / "model"
    mlflow.sklearn.save_model(pipe, path, signature=infer_signature(x, pipe.predict(x)),
                              serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
    return mlflow.pyfunc.load_model(str(path))


def _enforced(model, frame):
    from mlflow.models.utils import _enforce_schema

    return _enforce_schema(frame, model.metadata.get_input_schema())


@pytest.mark.parametrize("frame", [
    pd.DataFrame(FEATURES),
    pd.DataFrame(FEATURES)[["region", "lines", "income", "age"]],  # another order
    pd.DataFrame({**FEATURES, "extra": [1, 2, 3]}),  # extra columns are dropped
    pd.DataFrame(FEATURES).astype({"region": object}),
    pd.DataFrame(FEATURES).drop(columns=["income"]),  # optional (it had missing values): may be absent
])
def test_a_conforming_frame_is_exactly_what_enforcement_returns(model, frame):
    fast = FastPath.plan(model)
    assert fast is not None
    mine = fast.conformed(frame)
    assert mine is not None
    pd.testing.assert_frame_equal(mine, _enforced(model, frame))
    try:
        expected = list(model.predict(frame))
    except ValueError as exc:  # the pipeline itself needs the optional column: same error either way
        with pytest.raises(ValueError, match=str(exc)):
            fast.predict(mine)
        return
    assert list(fast.predict(mine)) == expected


@pytest.mark.parametrize("frame", [
    pd.DataFrame(FEATURES).drop(columns=["age"]),  # MLflow's "missing inputs" error
    pd.DataFrame(FEATURES).astype({"lines": "int32"}),  # int32 -> long: a conversion
    pd.DataFrame(FEATURES).astype({"age": "int64"}),  # int -> double: a conversion
    pd.DataFrame(FEATURES).astype({"age": object}),  # objects in a double column: infer or refuse
    pd.DataFrame([[1.0, 2.0, 1, "n", 5]], columns=["age", "income", "lines", "region", "age"]),  # duplicate
    np.array([[1.0, 2.0]]),
])
def test_anything_else_goes_through_mlflow(model, frame):
    assert FastPath.plan(model).conformed(frame) is None  # type: ignore[union-attr]


def test_no_fast_path_for_other_flavors_or_params(model, tmp_path):
    import mlflow.pyfunc

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    mlflow.pyfunc.save_model(tmp_path / "echo", python_model=Echo(), pip_requirements=["mlflow"],
                             input_example=pd.DataFrame({"a": [1.0]}))
    assert FastPath.plan(mlflow.pyfunc.load_model(str(tmp_path / "echo"))) is None
