"""Leakage sanity check of the generator: how well a quick XGBoost separates fraud on generated data.

On the real log, "strict" features (hour of day, day, type, amount and its derivations; no balances, no ids)
with a forward-in-time split (train on earlier steps, test on the last ones, test fraud rate around 1%) give an
average precision of about 0.34-0.38 and a ROC AUC of about 0.89-0.91. A generator whose strict AP is far above
that gives the label away (fraud amounts too distinct, a too regular pattern). With the decision-time balances
added, near-perfect results are expected, as on the real log (the fraud drains the origin exactly).

Run: ``.venv/bin/python benchmarks/strict_features_check.py [--rows 2000000] [--seed 0]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud.data.generator import generate
from fraud.data.scenarios import get_scenario

TEST_FRAUD_RATE = 0.01


FEATURE_SETS = ("strict", "strict_no_cents", "decision_time")
"""strict: hour, day, type, amount, log amount, whole-number flag and cents; strict_no_cents: without the last two
(in the real head a third of fraud amounts are whole numbers, the drained untouched balances, against 1% of
legitimate ones); decision_time: strict plus the balances known before the transaction posts."""


def features(frame: pd.DataFrame, feature_set: str) -> pd.DataFrame:
    amount = frame["amount"]
    out = pd.DataFrame(
        {
            "hour": frame["step"] % 24,
            "day": (frame["step"] - 1) // 24 + 1,
            "type": frame["type"].astype("category").cat.codes,
            "amount": amount,
            "log_amount": np.log1p(amount),
        }
    )
    if feature_set != "strict_no_cents":
        out["whole_amount"] = (np.round(amount) == amount).astype(int)
        out["cents"] = np.round((amount % 1) * 100)
    if feature_set == "decision_time":
        out["old_org"] = frame["oldbalanceOrg"]
        out["old_dest"] = frame["oldbalanceDest"]
        out["amount_minus_old_org"] = amount - frame["oldbalanceOrg"]
        out["old_dest_zero"] = (frame["oldbalanceDest"] == 0).astype(int)
    return out


def forward_cut(frame: pd.DataFrame, rate: float = TEST_FRAUD_RATE) -> int:
    """The first test step: the latest cut whose tail (steps >= cut) has a fraud rate of at least `rate`."""
    by_step = frame.groupby("step")["isFraud"].agg(["size", "sum"]).sort_index(ascending=False)
    tail_rate = by_step["sum"].cumsum() / by_step["size"].cumsum()
    tail_rows = by_step["size"].cumsum()
    eligible = tail_rate[(tail_rate <= rate) & (tail_rows >= 0.05 * len(frame))]
    return int(eligible.index.max()) if len(eligible) else int(frame["step"].quantile(0.8))


def evaluate(frame: pd.DataFrame, feature_set: str, seed: int) -> tuple[float, float, float]:
    cut = forward_cut(frame)
    train, test = frame[frame["step"] < cut], frame[frame["step"] >= cut]
    model = xgb.XGBClassifier(
        n_estimators=300, max_depth=6, learning_rate=0.1, subsample=0.8, tree_method="hist", random_state=seed, n_jobs=2
    )
    model.fit(features(train, feature_set), train["isFraud"])
    scores = model.predict_proba(features(test, feature_set))[:, 1]
    return (
        float(average_precision_score(test["isFraud"], scores)),
        float(roc_auc_score(test["isFraud"], scores)),
        float(test["isFraud"].mean()),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows to generate (default 2,000,000)")
    parser.add_argument("--seed", type=int, default=0, help="generator and model seed")
    parser.add_argument("--scenario", default="baseline", help="scenario preset name")
    args = parser.parse_args(argv)
    frame = generate(args.rows, seed=args.seed, scenario=get_scenario(args.scenario)).to_pandas()
    cut = forward_cut(frame)
    print(f"{args.rows:,} rows, fraud {int(frame['isFraud'].sum()):,}; test = steps >= {cut}")
    for feature_set in FEATURE_SETS:
        ap, auc, rate = evaluate(frame, feature_set, args.seed)
        print(f"{feature_set:>16}: AP {ap:.3f}  ROC AUC {auc:.3f}  (test fraud rate {rate:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
