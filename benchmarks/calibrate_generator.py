"""Fit the generator's free parameters to the published statistics and print them.

Run: ``.venv/bin/python benchmarks/calibrate_generator.py``. It fits, with the generator's own samplers:

1. the victims' balance distribution (``paysim_model.VICTIMS``) to the published fraud amounts (median, mean,
   p95) and to the 16 flagged rows of the month, with the month's few untouched victims mixed in as the generator
   does (``timeline.untouched_victim_share``);
2. the legitimate amount shapes (``paysim_model.AMOUNT_SHAPES``): each type's ``a`` and ``sigma`` to the published
   overall quartiles and to the full file's mean per type and standard deviation (which set how heavy the right
   tails are), with each type's ``scale`` on its published median.

The output is meant to be pasted into ``fraud/data/paysim_model.py``; re-run it whenever the published figures,
the head-fitted shapes or the samplers change.
"""

from __future__ import annotations

import argparse
import dataclasses
from functools import cache

import numpy as np
from scipy import optimize, special

from fraud.data import paysim_model as pm
from fraud.data.fraudsters import takeover
from fraud.data.published import load_published
from fraud.data.timeline import step_weights, untouched_victim_share

SAMPLES = 400_000
TAIL_SIGMA = 1.5
"""Spread of the rare very large legitimate amounts (the log's largest is 92.4M, about 190 medians of TRANSFER)."""
FULL_FILE_MEAN = 179_861.90
"""Mean amount of the full published file (its ``describe()``, printed in public notebooks)."""
FULL_FILE_STD = 603_858.23
"""Standard deviation of the amounts of the full published file (same source): the weight of the right tails."""
HEAD_SHAPE_A = {"CASH_IN": -0.034, "CASH_OUT": 0.117, "DEBIT": 0.641, "PAYMENT": -0.819, "TRANSFER": -3.0}
"""Truncated-normal `a` fitted on the quantile ratios (q05, q25, q75, q95 over the median) of each type's
legitimate amounts in the real head (paysim_head_steps1to9.csv): the shape within a few hours."""
FULL_FILE_MEAN_BY_TYPE = {
    "CASH_IN": 168_920.24,
    "CASH_OUT": 176_273.96,
    "DEBIT": 5_483.67,
    "PAYMENT": 13_057.60,
    "TRANSFER": 910_647.01,
}
"""Mean amount per type in the full file, fraud included (a ``groupby("type").amount.mean()`` shown in public
notebooks; weighted by the published row counts they give back the overall mean, 179,868 vs 179,862)."""
HERMITE_NODES = 48


@cache
def untouched_share() -> float:
    """The month's share of victims robbed before their first own transaction (fraud-weighted average of
    `timeline.untouched_victim_share`, over a few drawn supports)."""
    fraud = step_weights(fraud=True)
    return float(np.mean([(untouched_victim_share(support_seed=seed) * fraud).sum() for seed in range(8)]))


def fraud_row_amounts(model: pm.VictimBalances, seed: int = 7) -> tuple[np.ndarray, int, int]:
    """Amounts (currency) of the fraudulent rows the takeover makes from SAMPLES victims, flagged rows, rows.

    As in the generator, a share of the victims (`untouched_share`) holds an untouched initial balance instead.
    """
    rng = np.random.default_rng(seed)
    balances = pm.to_cents(pm.victim_balances(rng, SAMPLES, model))
    untouched = np.flatnonzero(rng.random(SAMPLES) < untouched_share())
    balances[untouched] = np.maximum(pm.table_balances(rng, pm.UNTOUCHED_VICTIM_BALANCES, len(untouched)), 1)
    chunks = takeover(balances)
    amounts = np.concatenate([chunks.amount, chunks.mule_cashout]) / 100.0
    return amounts, int(chunks.flagged.sum()), len(amounts)


def fit_victims() -> pm.VictimBalances:
    published = load_published()
    target = published.fraud_amount
    flagged_rate = published.flagged_rows / published.fraud

    def residuals(params: np.ndarray) -> list[float]:
        mu, s_high, log_truncate, log_rich = params
        model = dataclasses.replace(
            pm.VICTIMS, mu=mu, s_high=s_high, truncate=float(np.exp(log_truncate)), rich_share=float(np.exp(log_rich))
        )
        amounts, flagged, rows = fraud_row_amounts(model)
        return [
            float(np.log(np.median(amounts) / target.median)),
            float(np.log(amounts.mean() / target.mean)),
            float(np.log(np.quantile(amounts, 0.95) / target.p95)),
            float(np.log(max(flagged, 1) / rows / flagged_rate)),
        ]

    start = np.array([pm.VICTIMS.mu, pm.VICTIMS.s_high, np.log(pm.VICTIMS.truncate), np.log(pm.VICTIMS.rich_share)])
    solution = optimize.least_squares(residuals, start, diff_step=1e-3)
    mu, s_high, log_truncate, log_rich = solution.x
    print("victims residuals (log ratios):", np.round(solution.fun, 4))
    return dataclasses.replace(
        pm.VICTIMS, mu=mu, s_high=s_high, truncate=float(np.exp(log_truncate)), rich_share=float(np.exp(log_rich))
    )


def _lognormal_cdf(shape: pm.AmountShape, sigma: float, x: np.ndarray) -> np.ndarray:
    nodes, weights = np.polynomial.hermite_e.hermegauss(HERMITE_NODES)
    weights = weights / weights.sum()
    lo = special.ndtr(-shape.a)
    total = np.zeros_like(x)
    for z, w in zip(nodes, weights, strict=True):
        y = x / (shape.scale * np.exp(sigma * z))
        total += w * np.clip((special.ndtr(y - shape.a) - lo) / (1 - lo), 0, 1)
    return total


def _type_cdf(shape: pm.AmountShape, x: np.ndarray) -> np.ndarray:
    """CDF of scale * X * exp(sigma Z) (X truncated normal; sigma = tail_sigma for a tail_share of rows), by
    Gauss-Hermite quadrature over Z."""
    body = _lognormal_cdf(shape, shape.sigma, x)
    if shape.tail_share == 0:
        return body
    return (1 - shape.tail_share) * body + shape.tail_share * _lognormal_cdf(shape, shape.tail_sigma, x)


def _with_median(shape: pm.AmountShape, median: float) -> pm.AmountShape:
    def gap(log_scale: float) -> float:
        trial = dataclasses.replace(shape, scale=float(np.exp(log_scale)))
        return float(_type_cdf(trial, np.array([median]))[0] - 0.5)

    log_scale = optimize.brentq(gap, np.log(median) - 15, np.log(median) + 15)
    return dataclasses.replace(shape, scale=float(np.exp(log_scale)))


def _moments(shape: pm.AmountShape) -> tuple[float, float]:
    """E[amount] and E[amount^2] of one type (truncated normal times a lognormal mixture, in closed form)."""
    ratio = special.ndtr(shape.a)
    hazard = np.exp(-(shape.a**2) / 2) / np.sqrt(2 * np.pi) / ratio
    first = shape.a + hazard
    second = 1 + shape.a**2 + shape.a * hazard
    w = shape.tail_share
    factor1 = (1 - w) * np.exp(shape.sigma**2 / 2) + w * np.exp(shape.tail_sigma**2 / 2)
    factor2 = (1 - w) * np.exp(2 * shape.sigma**2) + w * np.exp(2 * shape.tail_sigma**2)
    return shape.scale * first * factor1, shape.scale**2 * second * factor2


def fit_amounts(fraud_amounts: np.ndarray) -> dict[str, pm.AmountShape]:
    """Fit each type's (a, sigma) to its mean, the overall quartiles and the overall standard deviation.

    The scale of each type always puts its median on the published legitimate median. A weak pull towards the
    `a` fitted on the real head keeps the shapes that the month's figures leave undetermined.
    """
    published = load_published()
    legit = published.legit_by_type
    types = list(pm.AMOUNT_SHAPES)
    fraud_mean = float(fraud_amounts.mean())
    legit_mean = {
        t: (FULL_FILE_MEAN_BY_TYPE[t] * published.rows_by_type[t] - published.fraud_by_type.get(t, 0) * fraud_mean)
        / legit[t]
        for t in types
    }
    target = np.array([published.amount_quantiles[k] for k in ("p25", "p50", "p75")])
    fraud_sorted = np.sort(fraud_amounts)
    fraud_second = float((fraud_amounts**2).mean())
    grid = np.exp(np.linspace(np.log(1e3), np.log(1e6), 6000))
    head_a = HEAD_SHAPE_A

    def shapes_for(params: np.ndarray) -> dict[str, pm.AmountShape]:
        shapes = {}
        tail = float(special.expit(params[-1]))
        for i, t in enumerate(types):
            trial = pm.AmountShape(
                a=params[2 * i],
                sigma=float(np.exp(params[2 * i + 1])),
                scale=1.0,
                tail_share=tail,
                tail_sigma=TAIL_SIGMA,
            )
            shapes[t] = _with_median(trial, published.legit_median_amount_by_type[t])
        return shapes

    def residuals(params: np.ndarray) -> np.ndarray:
        shapes = shapes_for(params)
        cdf = sum(legit[t] * _type_cdf(s, grid) for t, s in shapes.items())
        cdf = cdf + published.fraud * np.searchsorted(fraud_sorted, grid) / len(fraud_sorted)
        quartiles = np.interp([0.25, 0.5, 0.75], cdf / published.rows, grid)
        moments = {t: _moments(s) for t, s in shapes.items()}
        first = sum(legit[t] * moments[t][0] for t in types) + published.fraud * fraud_mean
        second = sum(legit[t] * moments[t][1] for t in types) + published.fraud * fraud_second
        std = np.sqrt(second / published.rows - (first / published.rows) ** 2)
        return np.concatenate(
            [
                2 * np.log(quartiles / target),  # published and checked: they weigh most
                [np.log(moments[t][0] / legit_mean[t]) for t in types],
                [np.log(std / FULL_FILE_STD)],
                [0.01 * (params[2 * i] - head_a[t]) for i, t in enumerate(types)],
            ]
        )

    current = pm.AMOUNT_SHAPES
    start = np.array([v for t in types for v in (current[t].a, np.log(current[t].sigma))] + [special.logit(0.003)])
    lower = np.array([v for _ in types for v in (-3.0, np.log(0.02))] + [special.logit(1e-5)])
    upper = np.array([v for _ in types for v in (4.0, np.log(2.5))] + [special.logit(0.05)])
    solution = optimize.least_squares(residuals, start, bounds=(lower, upper))
    print("amount residuals (log ratios: quartiles, type means, std; then prior):", np.round(solution.fun, 4))
    return shapes_for(solution.x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    victims = fit_victims()
    amounts, flagged, rows = fraud_row_amounts(victims)
    print(f"victims: {victims}")
    print(f"  -> median {np.median(amounts):,.0f} mean {amounts.mean():,.0f} p95 {np.quantile(amounts, 0.95):,.0f}")
    print(f"  -> flagged per 8,213 fraud rows: {flagged / rows * 8213:.1f}")
    for t, shape in fit_amounts(amounts).items():
        print(
            f'    "{t}": AmountShape(a={shape.a:.4f}, sigma={shape.sigma:.4f}, scale={shape.scale:.2f}, '
            f"tail_share={shape.tail_share:.5f}, tail_sigma={shape.tail_sigma}),"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
