"""`fraudctl canary status` in an 80-column log (make demo's, CI's): one line per check, reasons wrapped apart."""

from __future__ import annotations

from rich.console import Console

from fraud.cli.canary import checks_reasons, checks_table
from serving.canary.rollout import RolloutSpec, applied, reconcile, start
from serving.canary.simulation import SCENARIOS, TrafficSimulator


def test_the_checks_fit_80_columns_one_row_each_with_every_reason_in_full() -> None:
    state = applied(start(RolloutSpec("1", "2"), 0.0)[0])
    simulator = TrafficSimulator(*SCENARIOS["same_model"], seed=1)
    for index in range(6):
        state, _ = reconcile(state, simulator.window(index * 10.0, 10.0, 1000, 0, shadow=True), index * 10.0 + 10)
    console = Console(width=80, record=True, color_system=None)
    console.print(checks_table(state.checks))
    console.print(checks_reasons(state.checks))
    lines = console.export_text().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    for name, check in state.checks.items():
        (row,) = [line for line in lines if line.strip().startswith(f"{name} ")]
        assert check["status"] in row
    reasons = " ".join(" ".join(lines).split())
    for check in state.checks.values():
        assert " ".join(check["reason"].split()) in reasons
