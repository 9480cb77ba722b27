"""The PaySim generator: schema, determinism, files, the simulator's rules and every scenario's shift.

Statistical faithfulness is asserted through `compare` on a moderate month (300k rows): the same report users
run, so a check that drifts out of tolerance fails here first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from fraud.data.fraudsters import LIMIT_CENTS, smurfing, takeover
from fraud.data.generator import generate, write
from fraud.data.paysim_model import step_levels
from fraud.data.profile import compare, profile
from fraud.data.published import load_published
from fraud.data.rows import fraud_chunks
from fraud.data.scenarios import SCENARIOS, Scenario, get_scenario
from fraud.data.timeline import legit_matrix, quiet_steps, step_weights, untouched_victim_share
from fraud.errors import ConfigError
from fraud.schema import ARROW_SCHEMA, COLUMNS, HOURS_PER_DAY, TRANSACTION_TYPES
from samples import PAYSIM_STEP1

REAL_HEAD = PAYSIM_STEP1
MODERATE = 300_000
SCENARIO_ROWS = 150_000


@pytest.fixture(scope="module")
def month() -> pa.Table:
    return generate(MODERATE, seed=11)


@pytest.fixture(scope="module")
def frame(month: pa.Table) -> pd.DataFrame:
    result: pd.DataFrame = month.to_pandas()
    return result


# --- shape and determinism ---------------------------------------------------------------------------------


def test_schema_is_exactly_the_canonical_one(month: pa.Table) -> None:
    assert month.schema.equals(ARROW_SCHEMA, check_metadata=True)
    assert month.column_names == list(COLUMNS)
    assert month.num_rows == MODERATE
    assert all(month.column(c).null_count == 0 for c in COLUMNS)


def test_rows_are_sorted_by_step_and_cover_the_month(frame: pd.DataFrame) -> None:
    steps = frame["step"].to_numpy()
    assert (np.diff(steps) >= 0).all()
    assert steps.min() == 1
    assert 700 < steps.max() <= 743  # the last day has fraud only: ~0.7 rows a step at this size
    assert set(frame["type"]) == set(TRANSACTION_TYPES)


@pytest.mark.parametrize("rows", [1, 2, 17, 1_000, 12_345])
def test_any_number_of_rows(rows: int) -> None:
    table = generate(rows, seed=3)
    assert table.num_rows == rows
    assert table.schema.equals(ARROW_SCHEMA)


def test_same_seed_same_table_other_seed_other_table() -> None:
    first, again = generate(30_000, seed=5), generate(30_000, seed=5)
    assert first.equals(again)
    other = generate(30_000, seed=6)
    assert not first.equals(other)
    assert first.column("nameOrig").to_pylist() != other.column("nameOrig").to_pylist()
    assert not np.array_equal(first.column("amount").to_numpy(), other.column("amount").to_numpy())


def test_progress_reports_add_up_to_the_rows(tmp_path: Path) -> None:
    seen: list[int] = []
    generate(5_000, seed=1, on_progress=seen.append)
    assert sum(seen) == 5_000
    assert all(step > 0 for step in seen)
    seen.clear()
    write(tmp_path / "month.parquet", 5_000, seed=1, on_progress=seen.append)
    assert sum(seen) == 5_000


# --- bad arguments -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [0, -5])
def test_rows_below_one_are_refused(rows: int) -> None:
    with pytest.raises(ConfigError, match="rows"):
        generate(rows)


def test_negative_seed_is_refused() -> None:
    with pytest.raises(ConfigError, match="seed"):
        generate(10, seed=-1)


@pytest.mark.parametrize("name", ["month.json", "month.csv.bz2", "month"])
def test_unknown_extension_is_refused_with_the_valid_ones(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=r"\.parquet, \.csv, \.csv\.gz"):
        write(tmp_path / name, 10)
    assert list(tmp_path.iterdir()) == []


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        write(tmp_path / "nowhere" / "month.csv", 10)


# --- files -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_csv_has_the_published_header_and_reads_back_identically(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path / f"month{suffix}", 20_000, seed=4)
    expected = generate(20_000, seed=4)
    with pa.CompressedInputStream(str(path), "gzip") if suffix == ".csv.gz" else pa.OSFile(str(path)) as raw:
        header = raw.read(300).split(b"\n", 1)[0].decode()
    assert header == REAL_HEAD.read_text().split("\n", 1)[0]
    options = pacsv.ConvertOptions(column_types=ARROW_SCHEMA)
    back = pacsv.read_csv(path, convert_options=options).select(list(COLUMNS)).cast(ARROW_SCHEMA)
    assert back.equals(expected)
    frame = pd.read_csv(path)
    assert list(frame.columns) == list(COLUMNS)
    assert np.array_equal(frame["amount"].to_numpy(), expected.column("amount").to_numpy())
    assert frame["nameDest"].tolist() == expected.column("nameDest").to_pylist()


def test_parquet_is_zstd_in_row_groups_and_reads_back_identically(tmp_path: Path) -> None:
    path = write(tmp_path / "month.parquet", 20_000, seed=4)
    metadata = pq.ParquetFile(path).metadata
    assert metadata.row_group(0).column(2).compression == "ZSTD"
    assert pq.read_table(path).equals(generate(20_000, seed=4))


def test_interrupted_write_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "month.csv"

    def stop_while_writing(done: int) -> None:
        if len(list(tmp_path.iterdir())) > 0:  # the temporary file exists: writing has started
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write(target, 600_000, seed=1, on_progress=stop_while_writing)
    assert list(tmp_path.iterdir()) == []


# --- faithfulness ------------------------------------------------------------------------------------------


def test_moderate_month_passes_every_check(month: pa.Table) -> None:
    failed = [(c.name, c.value, c.published, c.tolerance) for c in compare(profile(month)) if not c.passed]
    assert failed == []


def test_fraud_is_a_drain_then_a_same_amount_cash_out_by_an_unlinked_id(frame: pd.DataFrame) -> None:
    fraud_transfers = np.flatnonzero((frame["isFraud"] == 1) & (frame["type"] == "TRANSFER"))
    assert len(fraud_transfers) > 100
    following = frame.iloc[fraud_transfers + 1]
    transfers = frame.iloc[fraud_transfers]
    paired = (following["type"].to_numpy() == "CASH_OUT") & (following["isFraud"].to_numpy() == 1)
    paired &= following["step"].to_numpy() == transfers["step"].to_numpy()
    paired &= following["amount"].to_numpy() == np.where(transfers["isFlaggedFraud"] == 1, 0, transfers["amount"])
    assert paired.mean() > 0.98  # the rest: drained victims' own later transfers
    assert not (following["nameOrig"].to_numpy() == transfers["nameDest"].to_numpy()).any()
    drained = (transfers["amount"] == transfers["oldbalanceOrg"]) & (transfers["newbalanceOrig"] == 0)
    capped = (transfers["amount"] == 1e7) & np.isclose(transfers["newbalanceOrig"], transfers["oldbalanceOrg"] - 1e7)
    assert (drained | capped).mean() > 0.98
    assert frame.loc[frame["isFraud"] == 1, "amount"].max() == 1e7
    assert set(frame.loc[frame["isFraud"] == 1, "type"]) == {"TRANSFER", "CASH_OUT"}


def test_balances_follow_the_simulator(frame: pd.DataFrame) -> None:
    legit = frame[(frame["isFraud"] == 0)]
    out = legit[legit["type"] != "CASH_IN"]
    assert np.allclose(out["newbalanceOrig"], np.maximum(out["oldbalanceOrg"] - out["amount"], 0), atol=0.005)
    cash_in = legit[legit["type"] == "CASH_IN"]
    added = np.isclose(cash_in["newbalanceOrig"], cash_in["oldbalanceOrg"] + cash_in["amount"], atol=0.005)
    assert 0.97 < added.mean() < 1.0  # PaySim leaves ~1.5% of CASH_IN origins unchanged
    for tx_type, low, high in (("CASH_OUT", 0.45, 0.65), ("PAYMENT", 0.18, 0.32), ("CASH_IN", 0.0, 0.03)):
        zero = (legit.loc[legit["type"] == tx_type, "oldbalanceOrg"] == 0).mean()
        assert low < zero < high, (tx_type, zero)
    merchants = frame[frame["nameDest"].str.startswith("M")]
    assert (merchants["type"] == "PAYMENT").all()
    assert (merchants[["oldbalanceDest", "newbalanceDest"]] == 0).all().all()
    assert (frame.loc[frame["type"] == "PAYMENT", "nameDest"].str.startswith("M")).all()


def test_destination_balances_chain_within_a_step(frame: pd.DataFrame) -> None:
    customers = frame[frame["nameDest"].str.startswith("C") & (frame["isFraud"] == 0)].copy()
    customers["signed"] = np.where(customers["type"] == "CASH_IN", -customers["amount"], customers["amount"])
    grouped = customers.groupby(["nameDest", "step"], sort=False)
    previous_old = grouped["oldbalanceDest"].shift()
    previous_signed = grouped["signed"].shift()
    following = previous_old.notna()
    assert following.sum() > 10_000
    chained = np.isclose(
        customers.loc[following, "oldbalanceDest"], np.maximum(previous_old[following] + previous_signed[following], 0)
    )
    assert chained.mean() > 0.999
    assert (grouped["newbalanceDest"].nunique() == 1).all()  # one end-of-step snapshot per account and step


def test_ids_look_like_the_published_ones(frame: pd.DataFrame) -> None:
    assert frame["nameOrig"].str.fullmatch(r"C[0-9]{6,10}").all()
    assert frame["nameDest"].str.fullmatch(r"[CM][0-9]{6,10}").all()
    assert frame["nameOrig"].value_counts().max() <= 3
    destinations = frame.loc[frame["nameDest"].str.startswith("C"), "nameDest"].value_counts()
    assert destinations.max() > 30  # popular customer accounts receive many transfers


# --- when: the sparse legitimate timeline and the young month's victims ---------------------------------------


@pytest.mark.parametrize("support_seed", [0, 1, 2, 3])
def test_legitimate_volume_is_sparse_like_the_published_month(support_seed: int) -> None:
    published = load_published()
    matrix = legit_matrix(support_seed)
    daily = np.array(published.daily_rows) - np.array(published.daily_fraud)
    hourly = np.array(published.hourly_rows) - np.array(published.hourly_fraud)
    assert np.allclose(matrix.sum(axis=1), daily, rtol=1e-6, atol=1e-3)  # both published marginals, exactly
    assert np.allclose(matrix.sum(axis=0), hourly, rtol=1e-6, atol=1e-3)
    expected = step_weights(support_seed=support_seed) * published.legit
    active = expected > 0
    assert np.flatnonzero(active).max() + 1 == published.last_legit_step  # nothing legitimate after step 718
    assert active[:HOURS_PER_DAY].all()  # the first day is complete, as in the genuine head
    # Fraud-only steps of a full-size month: the inactive ones, plus active ones that stay empty by chance.
    fraud_only = (~active).sum() + np.exp(-expected[active]).sum()
    assert abs(fraud_only - published.fraud_only_steps) < 10
    days = active.reshape(-1)[: 30 * HOURS_PER_DAY].reshape(30, HOURS_PER_DAY)
    assert days[5:17].sum(axis=1).mean() > days[17:30].sum(axis=1).mean() + 3  # quiet late days: fewer hours
    assert days[5:17, 4:8].mean() < 0.3  # most full days have no legitimate row at 4-7 h


def test_legitimate_support_is_drawn_per_month_and_reproducible() -> None:
    assert np.array_equal(legit_matrix(5), legit_matrix(5))
    assert not np.array_equal(legit_matrix(5) > 0, legit_matrix(6) > 0)
    first, again = generate(20_000, seed=8), generate(20_000, seed=8)
    assert first.column("step").equals(again.column("step"))


def test_the_young_month_has_untouched_victims() -> None:
    share = untouched_victim_share(support_seed=0)
    fraud = step_weights(fraud=True)
    assert share[0] == 1.0  # the first step's list holds only brand-new clients
    assert 0.3 < (share[:9] * fraud[:9]).sum() / fraud[:9].sum() < 0.55
    assert (share * fraud).sum() < 0.02  # the whole month's fraud amounts barely change
    assert untouched_victim_share(744, support_seed=0).max() < 0.05  # a later month continues the list


def test_quiet_days_scatter_the_legitimate_amount_levels_between_steps(frame: pd.DataFrame) -> None:
    quiet = quiet_steps()
    days = (np.arange(len(quiet)) // HOURS_PER_DAY) + 1
    assert set(days[quiet]) == {3, 4, 5, *range(18, 32)}  # the published month's thin days: the test block
    volume = step_weights(support_seed=0)
    levels = step_levels(np.random.default_rng(3), "TRANSFER", quiet, volume)
    assert np.all(levels[~quiet] == 0.0)  # busy days keep the month-wide shape the profile checks
    assert abs((levels * volume)[quiet].sum()) < 1e-9  # centred: the quiet days' typical amount does not move
    assert 0.6 < levels[quiet & (volume > 0)].std() < 1.1  # AggregateTransaction.csv: log-sd 0.87 over hours
    # In a generated month, the quiet steps' TRANSFER medians scatter far more than the busy steps' do.
    legit = frame[(frame["isFraud"] == 0) & (frame["type"] == "TRANSFER")]
    by_step = legit.groupby("step")["amount"].agg(["median", "size"])
    by_step = by_step[by_step["size"] >= 30]
    spread = np.log(by_step["median"]).groupby(quiet[by_step.index - 1]).std()
    assert spread[True] > 2 * spread[False], spread


def test_first_hours_victims_are_small_and_whole_like_the_genuine_head() -> None:
    streams = {name: np.random.default_rng(i) for i, name in enumerate(("fraud", "fraud_steps"))}
    chunks, victim_step = fraud_chunks(streams, 400_000, Scenario(), support_seed=0)
    first = victim_step[chunks.victim] <= 9
    transfers = chunks.amount / 100
    early, later = transfers[first], transfers[~first]
    assert len(early) > 1_000
    # genuine head, steps 1-9: median 29.7k, 16 of 46 fraudulent transfers whole; the month: median 441k
    assert np.median(early) < 0.6 * np.median(later)
    assert 0.25 < (early == np.round(early)).mean() < 0.5
    uncapped = later[later < 1e7]  # 10M chunks are whole by construction
    assert (uncapped == np.round(uncapped)).mean() < 0.03


@pytest.mark.parametrize(
    ("balance", "amounts", "flagged"),
    [
        (25_000_000, [10e6, 10e6, 5e6], [False] * 3),
        (32_000_000, [10e6, 10e6, 10e6, 2e6], [False, False, False, True]),
        (38_000_000, [10e6, 10e6, 10e6, 8e6], [False] * 4),
        (45_000_000, [10e6] * 4 + [5e6], [False] * 4 + [True]),
        (55_000_000, [10e6] * 5 + [5e6], [False] * 4 + [True, True]),
    ],
)
def test_takeover_follows_the_simulator_flagging_rule(balance: int, amounts: list[float], flagged: list[bool]) -> None:
    chunks = takeover(np.array([balance * 100], dtype=np.int64))
    assert (chunks.amount / 100).tolist() == amounts
    assert chunks.flagged.tolist() == flagged
    blocked = chunks.flagged
    assert (chunks.new[blocked] == chunks.old[blocked]).all()  # a flagged transfer moves no money
    assert (chunks.mule_cashout[blocked] == 0).all()
    moved = ~blocked
    assert (chunks.new[moved] == np.maximum(chunks.old[moved] - chunks.amount[moved], 0)).all()
    assert chunks.amount.max() <= LIMIT_CENTS


def test_smurfing_pattern_stays_below_the_chunk_size() -> None:
    balances_cents = np.array([5_000_000_00, 15_000_00], dtype=np.int64)  # 5M and 15k
    chunks = smurfing(np.random.default_rng(0), balances_cents, 12, 9_500.0)
    per_victim = np.bincount(chunks.victim).tolist()
    assert per_victim[0] == 12
    assert 2 <= per_victim[1] <= 4
    assert (chunks.amount <= 950_000).all()
    assert not chunks.flagged.any()
    assert chunks.new[-1] == 0  # the small account is emptied
    assert (chunks.old - chunks.new == chunks.amount).all()


# --- scenarios ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline() -> pd.DataFrame:
    result: pd.DataFrame = generate(SCENARIO_ROWS, seed=21).to_pandas()
    return result


def _scenario(name: str, **params: object) -> pd.DataFrame:
    result: pd.DataFrame = generate(SCENARIO_ROWS, seed=21, scenario=get_scenario(name, **params)).to_pandas()
    return result


def _legit_medians(frame: pd.DataFrame) -> pd.Series:
    return frame[frame["isFraud"] == 0].groupby("type")["amount"].median()


def test_every_preset_has_a_description_and_builds() -> None:
    assert "baseline" in SCENARIOS
    for name, preset in SCENARIOS.items():
        assert preset.description
        assert get_scenario(name).name == name
    assert get_scenario("baseline") == Scenario(name="baseline", description=SCENARIOS["baseline"].description)


def test_amount_shift_multiplies_legitimate_amounts_only(baseline: pd.DataFrame) -> None:
    shifted = _scenario("amount_shift", amount_factor=2.0)
    ratio = _legit_medians(shifted) / _legit_medians(baseline)
    assert ratio.between(1.9, 2.1).all(), ratio
    assert shifted["nameOrig"].equals(baseline["nameOrig"])  # same seed: everything else is drawn identically
    assert shifted["type"].equals(baseline["type"])
    only_transfers = _scenario("amount_shift", amount_factor=3.0, amount_types="TRANSFER")
    ratio = _legit_medians(only_transfers) / _legit_medians(baseline)
    assert 2.8 < ratio["TRANSFER"] < 3.2
    assert ratio.drop("TRANSFER").between(0.97, 1.03).all()


def test_type_mix_shifts_the_shares(baseline: pd.DataFrame) -> None:
    mixed = _scenario("type_mix")
    shares = mixed["type"].value_counts(normalize=True)
    assert 0.19 < shares["TRANSFER"] < 0.21
    assert 0.24 < shares["PAYMENT"] < 0.26
    custom = _scenario("type_mix", type_shares={"DEBIT": 0.2})
    assert custom["type"].value_counts(normalize=True)["DEBIT"] > 0.15


def test_smurfing_makes_many_small_fraudulent_transfers(baseline: pd.DataFrame) -> None:
    smurfed = _scenario("smurfing", smurf_chunks=10, smurf_chunk_max=5_000.0)
    fraud = smurfed[smurfed["isFraud"] == 1]
    transfers = fraud[fraud["type"] == "TRANSFER"]
    small = transfers["amount"] <= 5_000
    assert small.mean() > 0.97  # all but the victims' own later transfers
    moved = transfers.loc[small, "oldbalanceOrg"] - transfers.loc[small, "newbalanceOrig"]
    assert np.allclose(moved, transfers.loc[small, "amount"])
    assert transfers["isFlaggedFraud"].sum() == 0
    drained = (transfers["amount"] == transfers["oldbalanceOrg"]).mean()
    assert drained < 0.2  # no longer one transfer that empties the account
    per_step = transfers.groupby("step").size()
    assert per_step.mean() > 5  # many transfers from one victim in its step
    assert abs(len(fraud) - (baseline["isFraud"] == 1).sum()) < 0.1 * len(fraud)


def test_fraud_rate_multiplier(baseline: pd.DataFrame) -> None:
    tripled = _scenario("fraud_rate")
    ratio = tripled["isFraud"].mean() / baseline["isFraud"].mean()
    assert 2.8 < ratio < 3.2
    doubled = _scenario("fraud_rate", fraud_rate_multiplier=2)
    assert 1.8 < doubled["isFraud"].mean() / baseline["isFraud"].mean() < 2.2


def test_next_month_moves_the_window_and_keeps_the_daily_cycle() -> None:
    later = generate(SCENARIO_ROWS, seed=21, scenario=get_scenario("next_month"))
    steps = later.column("step").to_numpy()
    assert steps.min() == 744
    assert steps.max() <= 744 + 742
    checks = {c.name: c for c in compare(profile(later))}
    assert checks["hourly shape of rows (TVD)"].passed
    assert not checks["daily shape of rows (TVD)"].passed


def test_scenario_errors_name_the_problem_and_the_valid_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown scenario 'surge'.*baseline, amount_shift"):
        get_scenario("surge")
    with pytest.raises(ConfigError, match=r"takes no parameter start_step; valid parameters: amount_factor"):
        get_scenario("amount_shift", start_step=3)
    with pytest.raises(ConfigError, match="amount_factor"):
        get_scenario("amount_shift", amount_factor="-2")
    with pytest.raises(ConfigError, match="unknown transaction type"):
        get_scenario("type_mix", type_shares="LOAN=0.5")
    assert get_scenario("next_month", start_step="1000").start_step == 1000
