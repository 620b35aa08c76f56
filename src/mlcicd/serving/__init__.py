"""The model server (``python -m mlcicd.serving``): MLflow-compatible ``/invocations``,
``/health``, ``/ready``, ``/version`` and Prometheus ``/metrics``.

Importing this package is cheap; mlflow and pandas load only in the server process.
"""
