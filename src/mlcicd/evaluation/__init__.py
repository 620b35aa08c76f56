"""Offline evaluation behind the ``gate`` stage: metrics, champion comparison, fairness, latency.

The statistics are plain numpy: the gate must not pay ~2.5 s to import fairlearn or ~2.3 s
for scikit-learn just to count agreements, and the statistics are vectorised so a
100k-row evaluation set costs milliseconds. MLflow and pandas are imported inside the
functions that need them, so importing this package costs nothing.

``metrics``   accuracy, precision, recall, f1, fpr, roc_auc, error_rate from labels/scores
``compare``   MLflow-style change thresholds and a paired non-inferiority test
``fairness``  per-group selection rates and the demographic parity difference
``latency``   single-row inference latency of a loaded model (p50/p99)
``scoring``   load an MLflow model, conform the data to its signature, predict labels and scores
``judge``     the gate's rules: figures of candidate and champion -> checks, summary, version tags
"""
