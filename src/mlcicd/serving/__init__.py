"""The model server (``python -m mlcicd.serving``): MLflow-compatible ``/invocations``,
``/health``, ``/ready``, ``/version`` and Prometheus ``/metrics``.

Importing this package is cheap; mlflow and pandas load only in the server process.
"""

# Where prometheus_client keeps the values of every worker process (its multiprocess mode);
# set by the supervisor before any process imports prometheus_client.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
