"""The parity report: on the genuine real samples, on generated data, and as JSON and pictures.

The real samples are heads of the published file (the first hour; the first eight hours and part of the ninth),
so only some checks are meaningful for them. Meaningful: the ids (format, origins at most three times and
practically unique), merchants (PAYMENT destinations only, zero balances), the flagging rule, fraud only in
TRANSFER/CASH_OUT, the fraud pairs (drain, same-amount cash-out, no id link), withdrawals floored at zero, the
10M cap. Not meaningful: anything about the month as a whole (type mix, rates, medians, quartiles, destination
repeats, hourly and daily shapes), which a head cannot match; the profile must say so by failing them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from fraud.data.generator import generate
from fraud.data.plots import plot_profile
from fraud.data.profile import Check, Profile, checks_to_json, compare, profile
from fraud.data.published import load_published
from fraud.data.scenarios import get_scenario
from fraud.errors import ConfigError, DataValidationError
from fraud.schema import ARROW_SCHEMA
from samples import PAYSIM_STEP1

SAMPLES = PAYSIM_STEP1.parent
MEANINGFUL_FOR_A_HEAD = (
    "rows of an unknown type",
    "fraud outside TRANSFER/CASH_OUT",
    "fraud amount max",
    "flagged rows not fraudulent TRANSFERs",
    "flagged rows moving the origin balance",
    "merchant destinations of non-PAYMENT rows",
    "PAYMENT rows to non-merchants",
    "merchant rows with a non-zero balance",
    "malformed ids (not C/M + digits)",
    "dest 0->0 share, fraud TRANSFER/CASH_OUT",
    "withdrawals floored at zero",
    "fraud TRANSFERs draining the origin",
    "fraud TRANSFERs followed by their CASH_OUT",
    "fraud pairs linked by id (mule = cash-out origin)",
    "origin id max repeats",
    "fraud-only steps",
    "last legitimate step",
)
WHOLE_MONTH_ONLY = ("type share PAYMENT", "amount p50", "distinct destination ratio", "daily shape of rows (TVD)")


def _read_real(name: str) -> pa.Table:
    options = pacsv.ConvertOptions(column_types=ARROW_SCHEMA)
    return pacsv.read_csv(SAMPLES / name, convert_options=options)


@pytest.fixture(scope="module", params=["paysim_head_step1.csv", "paysim_head_steps1to9.csv"])
def real(request: pytest.FixtureRequest) -> Profile:
    return profile(_read_real(request.param))


@pytest.fixture(scope="module")
def generated() -> pa.Table:
    return generate(300_000, seed=2)


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_real_samples_pass_the_meaningful_checks(real: Profile) -> None:
    checks = _by_name(compare(real))
    failed = [(n, checks[n].value) for n in MEANINGFUL_FOR_A_HEAD if not checks[n].passed]
    assert failed == []
    assert checks["distinct origin ratio"].value >= 0.998  # practically unique, as in the whole month
    assert real.fraud_transfers > 0
    assert real.paired_transfers >= real.fraud_transfers - 1
    assert real.flagged == 0  # the first flagged row of the month comes much later


def test_real_samples_are_recognised_as_heads_not_months(real: Profile) -> None:
    checks = _by_name(compare(real))
    assert [n for n in WHOLE_MONTH_ONLY if checks[n].passed] == []
    assert real.steps[1] <= 9
    assert checks["daily shape of rows (TVD)"].value > 0.8  # everything on day 1


def test_real_sample_figures() -> None:
    stats = profile(_read_real("paysim_head_steps1to9.csv"))
    assert stats.rows == 44_598
    assert stats.fraud == 94
    assert stats.fraud_by_type == {"CASH_IN": 0, "CASH_OUT": 48, "DEBIT": 0, "PAYMENT": 0, "TRANSFER": 46}
    assert stats.max_origin_repeats == 1
    assert stats.merchant_rows == stats.rows_by_type["PAYMENT"]
    assert stats.fraud_amount_max == 1e7
    assert 0.55 < stats.origin_zero_share["CASH_OUT"] < 0.57


def test_streaming_in_batches_gives_the_same_profile(generated: pa.Table) -> None:
    whole = profile(generated)
    batches = generated.to_batches(max_chunksize=7_777)
    assert len(batches) > 10
    assert profile(iter(batches)) == whole


def test_generated_month_passes_and_shifts_are_caught(generated: pa.Table) -> None:
    assert [c.name for c in compare(profile(generated)) if not c.passed] == []
    shifted = generate(300_000, seed=2, scenario=get_scenario("amount_shift", amount_factor=1.2))
    failed = {c.name for c in compare(profile(shifted)) if not c.passed}
    assert {"legit median amount CASH_OUT", "legit median amount PAYMENT", "amount p50"} <= failed
    more_fraud = generate(300_000, seed=2, scenario=get_scenario("fraud_rate", fraud_rate_multiplier=1.5))
    failed = {c.name for c in compare(profile(more_fraud)) if not c.passed}
    assert "fraud rate" in failed


def test_legitimate_activity_checks(generated: pa.Table) -> None:
    stats = profile(generated)
    checks = _by_name(compare(stats))
    assert checks["last legitimate step"].value == 718
    assert checks["fraud-only steps"].passed and checks["fraud-only steps"].note == "lower bound below full size"
    # A month whose legitimate rows fill every hour (a smooth product-form timeline) has few fraud-only steps.
    steps = generated.column("step").to_numpy()
    legit = generated.column("isFraud").to_numpy() == 0
    spread = np.where(legit, np.random.default_rng(0).integers(1, 719, len(steps)), steps)
    dense = generated.set_column(0, "step", pa.array(spread.astype(np.int32)))
    assert not _by_name(compare(profile(dense)))["fraud-only steps"].passed
    # At full size both checks are two-sided.
    full = dataclasses.replace(stats, rows=load_published().rows)
    full_checks = _by_name(compare(full))
    assert all(full_checks[name].passed for name in ("fraud-only steps", "last legitimate step"))
    assert full_checks["fraud-only steps"].note == "full-size month"
    too_few = dataclasses.replace(full, rows_by_step={**stats.rows_by_step, **dict.fromkeys(range(1, 744), 10**4)})
    failed = {c.name for c in compare(too_few) if not c.passed}
    assert {"fraud-only steps", "last legitimate step"} <= failed


def test_tolerances_shrink_with_the_sample(generated: pa.Table) -> None:
    small = _by_name(compare(profile(generated.slice(0, 30_000))))
    large = _by_name(compare(profile(generated)))
    for name in ("fraud rate in TRANSFER", "hourly shape of fraud (TVD)", "distinct origin ratio"):
        assert small[name].tolerance > large[name].tolerance, name
    # relative floors stay: a 6.36M-row file is not held to a zero tolerance
    assert large["type share TRANSFER"].tolerance >= 0.02 * large["type share TRANSFER"].published


def test_json_output_is_complete_and_valid(generated: pa.Table) -> None:
    stats = profile(generated)
    checks = compare(stats)
    document = json.loads(checks_to_json(checks, stats))
    assert document["passed"] is True
    assert len(document["checks"]) == len(checks)
    assert {"name", "value", "published", "tolerance", "passed", "unit", "basis"} <= set(document["checks"][0])
    assert document["profile"]["rows"] == 300_000
    assert len(document["profile"]["hourly_rows"]) == 24
    assert sum(document["profile"]["daily_rows"].values()) == 300_000
    rows_check = document["checks"][0]
    assert rows_check["tolerance"] is None  # infinities become null, JSON has no infinity
    for check in checks:
        assert check.format_value()
        assert check.format_tolerance()


def test_plots_png_and_html(tmp_path: Path, generated: pa.Table) -> None:
    stats = profile(generated)
    png = plot_profile(stats, tmp_path / "profile.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000
    page = plot_profile(stats, tmp_path / "profile.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "data:image/png;base64," in page
    assert "legit median amount TRANSFER" in page
    with pytest.raises(ConfigError, match=r"\.png, \.html"):
        plot_profile(stats, tmp_path / "profile.pdf")


def test_bad_input_is_reported() -> None:
    table = generate(100, seed=1).drop_columns(["nameDest"])
    with pytest.raises(DataValidationError, match="nameDest"):
        profile(table)
    empty = profile(generate(100, seed=1).slice(0, 0))
    assert empty.rows == 0
    assert math.isnan(empty.fraud_amount_mean)
    with pytest.raises(DataValidationError, match="empty"):
        compare(empty)


def test_the_quiet_last_week_is_checked(generated: pa.Table) -> None:
    """The test block of the published strict results: a month with a busy last week, or one whose fraud stays
    rare there, fails; the generated month passes (these figures were never used to build the generator)."""
    names = ("steps 576-743: share of rows", "steps 576-743: fraud rate")
    checks = _by_name(compare(profile(generated)))
    assert all(checks[name].passed for name in names)
    steps = generated.column("step").to_numpy()
    legit = generated.column("isFraud").to_numpy() == 0
    # legitimate rows spread evenly over the month: the last week is as busy as any other
    even = np.where(legit, np.random.default_rng(0).integers(1, 744, len(steps)), steps)
    busy = _by_name(compare(profile(generated.set_column(0, "step", pa.array(even.astype(np.int32))))))
    assert not busy[names[0]].passed
    assert not busy[names[1]].passed
