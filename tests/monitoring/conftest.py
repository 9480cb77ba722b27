"""A small generated world for the monitoring tests: a reference month, a model scored on it, and windows.

A logistic regression on the strict features of a 200k-row generated month stands in for the registered model
(the drift tests read scores and decisions, not how they were made); windows come from other seeds' months,
on the reference's own days (no drift) or from scenario presets (known drift).

Collector processes run against the session's real SeaweedFS, each with its own port, write-ahead log and
bucket (`Harness`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

from fraud.data.generator import generate
from fraud.data.scenarios import Scenario
from fraud.evaluation.thresholds import choose_thresholds
from fraud.features import build_features, fit_spec
from fraud.modeling import NativeModel
from fraud.settings import Settings
from fraud.split import SplitBoundaries, forward_split
from fraud.stack.ports import pick_free_ports
from fraud.tuning import fit_model
from monitoring import reference as reference_module
from monitoring.collector.client import Half, cloudevent_headers
from monitoring.collector.process import CollectorProcess
from monitoring.reference import Reference

MONTH_ROWS = 200_000

WindowFactory = Callable[..., pd.DataFrame]


class World:
    """The reference month's model, thresholds and reference, and a maker of scored windows."""

    def __init__(self) -> None:
        blocks = forward_split(generate(MONTH_ROWS, seed=1), SplitBoundaries())
        self.spec = fit_spec(blocks["train"], "strict")
        features = build_features(blocks["train"], self.spec)
        self.model: NativeModel = fit_model(
            "logreg",
            {"C": 1.0, "pos_weight": 50.0},
            features,
            blocks["train"]["isFraud"].to_numpy(),
            feature_names=self.spec.names,
        )
        held_out = blocks["validation"].to_pandas()
        scores = self.score(held_out)
        self.thresholds = choose_thresholds(scores, held_out["isFraud"].to_numpy(), held_out["amount"].to_numpy())
        self.reference: Reference = reference_module.build("1", held_out, scores, self.thresholds)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict_proba(build_features(frame.to_dict("series"), self.spec)))

    def month(self, seed: int, scenario: Scenario | None = None) -> pd.DataFrame:
        """The validation days of another month, scored and decided as the serving model would."""
        frame = forward_split(generate(MONTH_ROWS, seed=seed, scenario=scenario), SplitBoundaries())["validation"]
        scored: pd.DataFrame = frame.to_pandas()
        scored["score"] = self.score(scored)
        scored["decision"] = self.thresholds.decide(scored["score"].to_numpy())
        return scored


@pytest.fixture(scope="session")
def world() -> World:
    return World()


def sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    take = np.sort(np.random.default_rng(seed).choice(len(frame), rows, replace=False))
    chosen: pd.DataFrame = frame.iloc[take].reset_index(drop=True)
    return chosen


FAST = {
    "FRAUD_COLLECTOR_FLUSH_SECONDS": "0.3",
    "FRAUD_COLLECTOR_UNMATCHED_SECONDS": "1.5",
}


class Harness:
    """One collector child process plus what the tests need to talk to it and to read its bucket."""

    def __init__(self, settings: Settings, home: Path, env: dict[str, str]) -> None:
        self.settings = settings.model_copy(update={"monitor_log_bucket": f"log-{uuid.uuid4().hex[:12]}"})
        self.home = home
        self.env = env
        self.wal_dir = home / "wal"
        self.port = pick_free_ports(1, settings.stack_host)[0]
        self.process: CollectorProcess | None = None
        self.session = requests.Session()

    def start(self) -> CollectorProcess:
        self.process = CollectorProcess.start(
            self.settings, port=self.port, wal_dir=self.wal_dir, log_path=self.home / "collector.log", env=self.env
        )
        self.process.wait_ready(timeout=120)
        return self.process

    @property
    def url(self) -> str:
        assert self.process is not None
        return self.process.url

    def send(self, event_id: str, half: Half, body: bytes, **headers: Any) -> requests.Response:
        sent = cloudevent_headers(event_id, half)
        sent.update({name.replace("_", "-"): str(value) for name, value in headers.items()})
        return self.session.post(f"{self.url}/", data=body, headers=sent, timeout=30)

    def flush(self, *, unmatched: bool = False) -> int:
        answer = self.session.post(f"{self.url}/v1/flush", params={"unmatched": "1"} if unmatched else {}, timeout=60)
        answer.raise_for_status()
        rows: int = answer.json()["rows"]
        return rows

    def metrics(self) -> dict[str, float]:
        """Sample name with labels → value, from /metrics."""
        text = self.session.get(f"{self.url}/metrics", timeout=10).text
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        self.session.close()


@pytest.fixture
def make_collector(stack: Settings, tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**env: str) -> Harness:
        harness = Harness(stack, tmp_path / f"collector-{len(made)}", {**FAST, **env})
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.stop()


@pytest.fixture(scope="module")
def shared_collector(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """One running collector for the tests that do not restart it."""
    harness = Harness(stack, tmp_path_factory.mktemp("collector"), dict(FAST))
    harness.start()
    yield harness
    harness.stop()
