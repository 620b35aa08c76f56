"""Write the example's data files from scikit-learn's bundled diabetes data (442 patients, no download).

Ten baseline measurements (age, sex, body-mass index, blood pressure and six blood serum
values, in their original units) and the target: a quantitative measure of disease
progression one year later. The rows are shuffled with a fixed seed and split into
train (300 rows) and eval (142 rows); the reference set, which drift is measured
against, is the first half of the training rows (the data the previous release saw).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes

SEED = 20240611


def main() -> None:
    frame = load_diabetes(as_frame=True, scaled=False).frame
    frame = frame.iloc[np.random.default_rng(SEED).permutation(len(frame))].reset_index(drop=True)
    frame = frame.rename(columns={"target": "progression"})
    out = Path(__file__).parent / "data"
    out.mkdir(exist_ok=True)
    frame.iloc[:300].to_csv(out / "train.csv", index=False)
    frame.iloc[300:].to_csv(out / "eval.csv", index=False)
    frame.iloc[:150].to_csv(out / "reference.csv", index=False)


if __name__ == "__main__":
    main()
