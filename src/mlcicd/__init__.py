"""ml-cicd: reusable CI/CD building blocks for shipping ML models.

Importing the package is cheap on purpose: heavy libraries (mlflow, pandas,
scikit-learn, fairlearn, great_expectations, boto3) are imported inside the
functions that need them, so a stage pays only for what it uses.
"""

from mlcicd.tracking import log_model
from mlcicd.version import __version__

__all__ = ["__version__", "log_model"]
