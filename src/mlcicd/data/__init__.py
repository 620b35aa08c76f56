"""Data checks behind the ``validate-data`` stage: loading, schema, quality and drift.

Every module imports pandas and scipy inside its functions, so importing this
package (as the CLI does when it lists stages) costs nothing. Checks are
vectorised over whole columns; nothing loops over rows in Python.

``load``     read CSV/Parquet, or explain in one paragraph why the file is unusable
``schema``   expected column types and rules (inferred or from ``data.columns``)
``quality``  missing values, duplicate rows, label balance, IQR outliers
``drift``    two-sample tests of each feature against the reference data
"""
