"""Offline evaluation behind the ``gate`` stage: metrics, champion comparison, fairness, latency.

Heavy libraries (scikit-learn, pandas, MLflow, fairlearn) are imported inside the functions
that need them, so importing this package costs nothing; ``tasks`` is standard library only,
because :mod:`mlcicd.config` checks metric names with it.

``tasks``              task types (binary, multiclass, regression) and the metric names of each
``metrics``            scikit-learn metrics per task, task detection, per-row losses
``compare``            change rules and tolerances against the champion; paired non-inferiority
``fairness``           per-group metrics and disparities (fast engine, equal to fairlearn), bootstrap bounds
``fairness_fairlearn`` the same figures from fairlearn itself (``gate.fairness.engine: fairlearn``)
``fairness_checks``    the fairness limits of ``gate.fairness`` -> the gate's fairness check
``latency``            single-row inference latency of a loaded model (p50/p99)
``scoring``            load an MLflow model, conform the data to its signature, predict labels and scores
``gate_checks``        the gate's checks: figures of candidate and champion -> checks, summary, version tags
"""
