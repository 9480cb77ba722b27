"""The forward-in-time split and the champion gate."""

from __future__ import annotations

import pyarrow as pa
import pytest

from fraud.errors import PipelineError
from fraud.registry import decide_champion
from fraud.split import SplitBoundaries, forward_split, split_metrics


def log(steps: list[int], fraud: list[int]) -> pa.Table:
    return pa.table(
        {"step": pa.array(steps, pa.int32()), "isFraud": pa.array(fraud, pa.int8()), "row": range(len(steps))}
    )


def test_blocks_are_cut_by_step_never_at_random() -> None:
    # given a log whose rows are not in step order
    table = log([9, 1, 5, 2, 8, 3, 7, 4, 6, 10], [1, 1, 0, 0, 1, 0, 1, 0, 0, 1])
    blocks = forward_split(table, SplitBoundaries(train_end_step=4, valid_end_step=7))
    # then every training step precedes every validation step, which precedes every test step
    assert blocks["train"]["step"].to_pylist() == [1, 2, 3, 4]
    assert blocks["validation"]["step"].to_pylist() == [5, 6, 7]
    assert blocks["test"]["step"].to_pylist() == [8, 9, 10]
    assert sum(b.num_rows for b in blocks.values()) == table.num_rows


def test_order_within_a_step_is_kept() -> None:
    table = log([2, 1, 2, 1, 3, 3], [1, 0, 0, 1, 1, 0])
    blocks = forward_split(table, SplitBoundaries(1, 2))
    assert blocks["train"]["row"].to_pylist() == [1, 3]
    assert blocks["validation"]["row"].to_pylist() == [0, 2]


def test_split_statistics_per_block() -> None:
    table = log([1, 1, 2, 2, 3, 3, 3, 3], [0, 1, 1, 0, 1, 0, 0, 0])
    metrics = split_metrics(forward_split(table, SplitBoundaries(1, 2)))
    assert metrics["train_rows"] == 2 and metrics["train_fraud_rate"] == 0.5
    assert metrics["test_rows"] == 4 and metrics["test_fraud"] == 1 and metrics["test_fraud_rate"] == 0.25
    assert (metrics["test_first_step"], metrics["test_last_step"]) == (3, 3)


@pytest.mark.parametrize(
    ("boundaries", "message"),
    [
        (SplitBoundaries(10, 20), "the validation block .* is empty; the data covers steps 1..5"),
        (SplitBoundaries(1, 2), "the test block .* holds no fraud"),
    ],
)
def test_empty_or_fraudless_blocks_name_the_block_and_the_fix(boundaries: SplitBoundaries, message: str) -> None:
    table = log([1, 2, 3, 4, 5], [1, 1, 0, 0, 0])
    with pytest.raises(PipelineError, match=message):
        forward_split(table, boundaries)


def test_boundaries_must_be_ordered() -> None:
    with pytest.raises(PipelineError, match="train_end_step < valid_end_step"):
        SplitBoundaries(300, 200)


def test_default_split_puts_days_18_to_31_in_the_test_block() -> None:
    edges = [1, 14 * 24, 14 * 24 + 1, 17 * 24, 17 * 24 + 1, 743]
    table = pa.table({"step": pa.array(edges, pa.int32()), "isFraud": pa.array([1] * 6, pa.int8())})
    blocks = forward_split(table, SplitBoundaries())
    steps = {name: block["step"].to_pylist() for name, block in blocks.items()}
    assert steps == {"train": [1, 336], "validation": [337, 408], "test": [409, 743]}


def test_gate_promotes_the_first_model() -> None:
    decision = decide_champion(0.12, None, None)
    assert decision.promote and decision.reason == "no champion yet"


def test_gate_promotes_only_a_strictly_better_challenger() -> None:
    better = decide_champion(0.41, 0.37, "3")
    assert better.promote and "beats champion v3" in better.reason
    worse = decide_champion(0.30, 0.37, "3")
    assert not worse.promote and "champion v3 keeps the alias" in worse.reason
    tie = decide_champion(0.37, 0.37, "3")
    assert not tie.promote, "a tie keeps the current champion"
    assert worse.as_metrics() == {
        "gate_challenger_test_average_precision": 0.30,
        "gate_promoted": 0.0,
        "gate_champion_test_average_precision": 0.37,
    }


def test_gate_margin() -> None:
    assert not decide_champion(0.38, 0.37, "1", min_improvement=0.02).promote
    assert decide_champion(0.40, 0.37, "1", min_improvement=0.02).promote
