"""Whole rollouts on this machine: real predictor processes, the real splitter and controller, replayed traffic.

What they prove, each checked in all three places that must agree (the rollout state, the registry's aliases and
the splitter's routing), after the last action is applied (`RolloutState.settled`):

(a) a challenger equal in quality (the same trees, another version) goes through shadow and every step and is
    promoted, with ``previous`` pointing at the old champion and the report written;
(b) a broken block threshold (it blocks from 2 %) is rolled back on the block check in shadow or at its first step;
(c) systematically higher scores with unchanged decisions are rolled back on the score check, the decision checks
    not failing;
(d) +250 ms on every challenger answer is rolled back on latency, while a load spike that triples the traffic on
    both arms rolls nothing back (the same challenger without the delay is promoted through it);
(e) a controller killed between the registry and the routing of a promotion leaves a state that a restarted
    controller completes: aliases and routing agree, and clients saw no failure meanwhile.

How it stays short. Every scenario rolls versions of one registered model (`SHARED`) out against each other: the
champion, the equal challenger, the broken block threshold and the higher scores are registered and served once
for the module (`served`: one predictor process each, started by the runtime's own code as ``fraudctl canary
start`` starts them, and attached to every rollout's runtime the way `LocalRuntime.attach_predictor` serves
predictors started elsewhere), since starting predictors dominates a rollout's time on this machine. Each rollout
otherwise starts as that command does (`start_rollout`: splitter and controller processes) in a home of its own,
with small minimums (`MINIMUMS`), one analysis window a second and a 5 s latency warm-up (`ROLLOUT_SETTINGS`);
traffic is replayed at `RATE`. The same settings are measured on simulated traffic in
``tests/canary/test_analysis.py`` (``SCENARIO_*``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from fraud.registry import CHAMPION
from fraud.settings import Settings, load_settings
from fraud.stack.ports import pick_free_ports
from serving.canary.local import PREVIOUS, TAG_OUTCOME, TAG_REASON, LocalRuntime, spec_from_settings, start_rollout
from serving.canary.replay import ReplayConfig, ReplaySummary, Transactions, load_transactions, predict_url, replay
from serving.canary.rollout import ActionKind, Phase, RolloutState
from serving.process import LOOPBACK

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(1800)]  # the first test sets up the module

RATE = 200.0
"""Requests per second replayed at the splitter during a rollout."""
MINIMUMS: dict[str, Any] = {"min_requests": 400, "min_seconds": 3.0}
"""What each phase and step lasts at least (a phase also waits until its checks can speak)."""
ROLLOUT_SETTINGS: dict[str, Any] = {"canary_interval_seconds": 1.0, "canary_warmup_seconds": 5.0}
"""One analysis window a second; latency counts from 5 s after the start."""
SHARED = "canary-scenarios"
"""The registered model whose versions every scenario rolls out against each other."""


@dataclass(frozen=True)
class Served:
    """The shared model's versions, each served by one predictor process for the whole module."""

    champion: str
    equal: str
    block: str
    higher: str
    urls: dict[str, str]


@pytest.fixture(scope="module")
def served(
    stack: Settings,
    register_variant: Callable[..., str],
    tmp_path_factory: pytest.TempPathFactory,
    traffic: Transactions,
) -> Iterator[Served]:
    """The versions, each served for the module by a predictor the runtime starts (as `fraudctl canary start`
    does: `LocalRuntime.ensure_predictor`), all at once so their start-ups overlap; stopped at the end."""
    versions = {
        "champion": register_variant(SHARED, label="champion"),
        "equal": register_variant(SHARED, label="equal"),
        "block": register_variant(SHARED, block=0.02, label="block"),
        "higher": register_variant(SHARED, score_shift=1.5, shift_thresholds=True, label="higher scores"),
    }
    runtime = LocalRuntime(_settings(stack, tmp_path_factory.mktemp("scenario-predictors"), SHARED))
    try:
        urls = {version: runtime.ensure_predictor(version) for version in versions.values()}
        for version, url in urls.items():
            runtime.wait_ready(url, version, timeout=600)
        for version, url in urls.items():  # a first answer each, as a readiness probe with traffic would give
            warm = ReplayConfig(url=predict_url(url, "v1", SHARED), rate=50.0, duration_s=1.0)
            assert replay(warm, traffic).ok > 0, f"the predictor of v{version} answered nothing"
        yield Served(versions["champion"], versions["equal"], versions["block"], versions["higher"], urls)
    finally:
        runtime.stop_all()


@dataclass
class Rollout:
    """One scenario's runtime, with its model name and versions."""

    runtime: LocalRuntime
    name: str
    champion: str
    challenger: str

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    def state(self) -> RolloutState:
        state = self.runtime.load_state()
        assert state is not None
        return state

    def aliases(self) -> dict[str, str]:
        client = MlflowClient(self.settings.tracking_uri)
        return {alias: str(v) for alias, v in client.get_registered_model(self.name).aliases.items()}

    def tags(self, version: str) -> dict[str, str]:
        client = MlflowClient(self.settings.tracking_uri)
        return dict(client.get_model_version(self.name, version).tags)


def _settings(stack: Settings, home: Path, name: str, **overrides: Any) -> Settings:
    (port,) = pick_free_ports(1, LOOPBACK)
    return load_settings(
        **{
            **stack.model_dump(),
            "home": home,
            "model_name": name,
            "canary_port": port,
            **ROLLOUT_SETTINGS,
            **overrides,
        }
    )


@pytest.fixture
def make_rollout(stack: Settings, tmp_path: Path) -> Iterator[Callable[..., Rollout]]:
    """``make_rollout(name, champion, challenger, attach={version: url}, **settings) -> Rollout``: the registry's
    ``champion`` alias set to ``champion`` (and no ``previous``), the ``attach``ed predictors serving their
    versions; stops the rollout's processes after the test."""
    made: list[Rollout] = []

    def make(
        name: str, champion: str, challenger: str, attach: dict[str, str] | None = None, **overrides: Any
    ) -> Rollout:
        client = MlflowClient(stack.tracking_uri)
        client.set_registered_model_alias(name, CHAMPION, champion)
        with contextlib.suppress(Exception):  # left by an earlier rollout of the same model
            client.delete_registered_model_alias(name, PREVIOUS)
        home = tmp_path / f"{name}-{len(made)}"  # a test may run several rollouts of one model, each its own home
        rollout = Rollout(LocalRuntime(_settings(stack, home, name, **overrides)), name, champion, challenger)
        for version, url in (attach or {}).items():
            rollout.runtime.attach_predictor(version, url)
        made.append(rollout)
        return rollout

    try:
        yield make
    finally:
        for rollout in made:
            rollout.runtime.stop_all()


@pytest.fixture(scope="module")
def traffic(stack: Settings) -> Transactions:
    """A generated month's transactions, sent in step order (cycled when a rollout needs more)."""
    return load_transactions(stack, source=None, scenario="baseline", rows=20_000, seed=21)


class Sender:
    """Replays transactions at the splitter in a background thread until stopped."""

    def __init__(self, url: str, model_name: str, transactions: Transactions, rate: float, seconds: float) -> None:
        self.config = ReplayConfig(url=predict_url(url, "v1", model_name), rate=rate, duration_s=seconds, timeout_s=20)
        self.transactions = transactions
        self.summary: ReplaySummary | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.summary = replay(self.config, self.transactions, should_stop=self.stopping.is_set)

    def start(self) -> Sender:
        self.thread.start()
        return self

    def join(self) -> None:
        if self.thread.ident is not None:  # started
            self.thread.join(self.config.duration_s + 60)

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def run_until_done(rollout: Rollout, transactions: Transactions, *, seconds: float = 300.0) -> RolloutState:
    """Replay traffic at the rollout's endpoint until it has ended and its last action is applied; the final state.

    Waiting for `RolloutState.settled`, not `terminal`: the controller persists a promotion or rollback *before*
    applying it (crash safety), so registry and routing lag a terminal state by the time the apply takes.
    """
    sender = Sender(rollout.runtime.endpoint, rollout.name, transactions, RATE, seconds).start()
    deadline = time.monotonic() + seconds
    state = rollout.state()
    while time.monotonic() < deadline and not state.settled:
        time.sleep(0.5)
        state = rollout.state()
    sender.stop()
    assert state.settled, f"the rollout did not end within {seconds:.0f} s: {state.phase} at {state.weight} %"
    return state


def start(rollout: Rollout, **spec: Any) -> RolloutState:
    full = {"steps": (5, 25, 50, 100), "shadow": True, **MINIMUMS, **spec}
    return start_rollout(
        rollout.runtime,
        spec_from_settings(rollout.settings, rollout.champion, rollout.challenger, **full),
        lambda message: None,
    ).state


def assert_consistent(rollout: Rollout, serving: str) -> None:
    """Registry champion, splitter routing and state agree that ``serving`` is the champion, all of it."""
    route = rollout.runtime.current_route()
    assert route is not None
    assert rollout.aliases()[CHAMPION] == serving
    assert route.champion.version == serving and route.challenger is None and route.weight == 0
    assert rollout.state().pending_action is None


def test_a_an_equal_challenger_is_promoted(served: Served, make_rollout: Any, traffic: Transactions) -> None:
    champion, challenger = served.champion, served.equal
    rollout = make_rollout(SHARED, champion, challenger, served.urls)
    assert start(rollout).phase is Phase.SHADOW
    state = run_until_done(rollout, traffic)
    assert state.phase is Phase.PROMOTED, state.reason
    assert [t.to_phase for t in state.history][:2] == [Phase.SHADOW, Phase.PROGRESSING]
    assert [t.weight for t in state.history if t.to_phase is Phase.PROGRESSING] == [5, 25, 50]
    assert_consistent(rollout, challenger)
    assert rollout.aliases()[PREVIOUS] == champion
    assert rollout.tags(challenger)[TAG_OUTCOME] == "promoted"
    report = rollout.runtime.paths.report_dir
    deadline = time.monotonic() + 300  # the controller writes it as it stops (plots take a while on a busy machine)
    while not (report / "locations.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert (report / "report.html").read_text().count("data:image/png;base64") == 3


def test_b_a_broken_block_threshold_is_rolled_back_early(
    served: Served, make_rollout: Any, traffic: Transactions
) -> None:
    champion, challenger = served.champion, served.block
    rollout = make_rollout(SHARED, champion, challenger, served.urls)
    start(rollout)
    state = run_until_done(rollout, traffic)
    assert state.phase is Phase.ROLLED_BACK
    assert "blocks failed" in (state.reason or "")
    rolled_from = state.history[-1].from_phase
    weights_seen = [t.weight for t in state.history[:-1]]
    assert rolled_from is Phase.SHADOW or weights_seen[-1] == 5, state.history
    assert_consistent(rollout, champion)
    tags = rollout.tags(challenger)
    assert tags[TAG_OUTCOME] == "rolled_back" and "blocks" in tags[TAG_REASON]
    assert PREVIOUS not in rollout.aliases()


def test_c_systematically_higher_scores_are_rolled_back_on_the_score_check(
    served: Served, make_rollout: Any, traffic: Transactions
) -> None:
    champion, challenger = served.champion, served.higher
    rollout = make_rollout(SHARED, champion, challenger, served.urls)
    start(rollout, shadow=False, steps=(25, 50, 100))
    state = run_until_done(rollout, traffic)
    assert state.phase is Phase.ROLLED_BACK
    assert (state.reason or "").startswith("scores failed"), state.reason
    assert state.checks["blocks"]["status"] != "fail" and state.checks["reviews"]["status"] != "fail"
    assert_consistent(rollout, champion)


def test_d_added_latency_is_rolled_back_but_a_load_spike_on_both_arms_is_not(
    served: Served, make_rollout: Any, traffic: Transactions, delay_proxy: Any
) -> None:
    champion, challenger = served.champion, served.equal
    # the slow one: the equal challenger's predictor behind a proxy that holds each answer back 250 ms
    proxy = delay_proxy(int(served.urls[challenger].rsplit(":", 1)[1]), 0.25)
    slow = make_rollout(SHARED, champion, challenger, {**served.urls, challenger: proxy.url})
    start(slow, shadow=False, steps=(25, 50, 100))
    state = run_until_done(slow, traffic)
    assert state.phase is Phase.ROLLED_BACK
    assert (state.reason or "").startswith("latency failed"), state.reason
    assert_consistent(slow, champion)
    slow.runtime.stop_all()

    # the same challenger without the delay while a second sender triples the load on both arms for 20 s, from
    # the end of the warm-up on: through every window the latency check counts until the promotion
    spiky = make_rollout(SHARED, champion, challenger, served.urls)
    start(spiky, shadow=False, steps=(25, 50, 100))
    spike = Sender(spiky.runtime.endpoint, SHARED, traffic, 2 * RATE, 20.0)
    timer = threading.Timer(ROLLOUT_SETTINGS["canary_warmup_seconds"], spike.start)
    timer.start()
    state = run_until_done(spiky, traffic)
    timer.cancel()
    spike.stop()
    assert spike.summary is not None and spike.summary.sent > 0
    assert state.phase is Phase.PROMOTED, state.reason
    assert_consistent(spiky, challenger)


def test_e_a_controller_killed_mid_promotion_leaves_aliases_and_routing_consistent(
    served: Served, make_rollout: Any, traffic: Transactions
) -> None:
    name, champion, challenger = SHARED, served.champion, served.equal
    rollout = make_rollout(name, champion, challenger, served.urls, canary_crash_after="registry")
    start(rollout, shadow=False, steps=(50, 100))
    sender = Sender(rollout.runtime.endpoint, name, traffic, RATE, 240.0).start()
    deadline = time.monotonic() + 180
    while rollout.runtime.controller_process.running_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    # killed between the two halves of the promotion: aliases moved, routing not yet, the action pending
    crashed = rollout.state()
    assert crashed.pending_action is not None and crashed.pending_action.kind is ActionKind.PROMOTE
    assert rollout.aliases()[CHAMPION] == challenger and rollout.aliases()[PREVIOUS] == champion
    route = rollout.runtime.current_route()
    assert route is not None and route.challenger is not None and route.weight == 50
    # a restarted controller (without the crash switch) completes it
    restarted = LocalRuntime(rollout.settings.model_copy(update={"canary_crash_after": None}))
    restarted.start_controller()
    deadline = time.monotonic() + 60
    while restarted.load_state() is not None and restarted.load_state().pending_action is not None:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the restarted controller did not finish the promotion"
        time.sleep(0.5)
    assert rollout.state().phase is Phase.PROMOTED
    assert_consistent(rollout, challenger)
    assert rollout.aliases()[PREVIOUS] == champion
    sender.stop()
    assert sender.summary is not None
    # clients saw no failure through the crash and the completion: the splitter kept serving
    assert sender.summary.ok == sender.summary.sent, sender.summary.errors
