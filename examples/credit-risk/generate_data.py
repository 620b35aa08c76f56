"""Make the example's data: a small, realistic credit-default table.

Deterministic (fixed seed) so that the demo and the tests see the same rows.
`gender` is the sensitive attribute the gate's fairness check looks at; it does
not drive the label, so a sound model passes the demographic-parity check.
Run: python generate_data.py [OUT_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

EMPLOYMENT = ["salaried", "self-employed", "unemployed", "retired"]
REGIONS = ["north", "south", "east", "west"]


def make_frame(n: int, seed: int, income_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(21, 75, n)
    employment = rng.choice(EMPLOYMENT, n, p=[0.6, 0.2, 0.08, 0.12])
    base_income = np.where(employment == "unemployed", 12_000, 42_000) + 600 * (age - 21).clip(0, 30)
    income = np.round(rng.lognormal(np.log(base_income), 0.35) * (1 + income_shift), 2)
    debt_ratio = np.round(rng.beta(2, 5, n), 4)
    credit_lines = rng.poisson(4, n)
    late_payments = rng.poisson(0.6 + 2.2 * debt_ratio, n)
    region = rng.choice(REGIONS, n)
    gender = rng.choice(["female", "male"], n)
    logit = (
        -1.7
        + 3.2 * (debt_ratio - 0.28)
        + 0.55 * late_payments
        - 0.9 * (np.log(income) - np.log(40_000))
        + 0.9 * (employment == "unemployed")
        - 0.012 * (age - 45)
    )
    default = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "debt_ratio": debt_ratio,
            "credit_lines": credit_lines,
            "late_payments": late_payments,
            "employment": employment,
            "region": region,
            "gender": gender,
            "default": default,
        }
    )


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    make_frame(6000, seed=1).to_csv(out / "train.csv", index=False)
    make_frame(2000, seed=2).to_csv(out / "eval.csv", index=False)
    make_frame(3000, seed=3).to_csv(out / "reference.csv", index=False)
    # A later batch whose incomes moved up 25%: validate-data flags it as drift.
    make_frame(6000, seed=4, income_shift=0.25).to_csv(out / "drifted.csv", index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "data")
