"""Alerts without fatigue: fire after k bad windows in a row, notify once per episode, resolve, and say so.

The same rule Prometheus applies with ``for:`` (``FraudModelDrift`` in the chart's
``helm/fraud-platform/files/alert-rules.yaml``), for
where no Prometheus runs (the local stack, a CronJob without Alertmanager): each drift window is one
observation; an alert goes ``inactive -> pending`` on the first bad window, ``firing`` after `k` in a row
(one *firing* notification), and back to ``inactive`` on the first good window after firing (one *resolved*
notification). A single bad window never pages. Notifications are Alertmanager webhook payloads (version 4),
so anything that takes Alertmanager's webhooks (PagerDuty/Slack bridges, a test receiver) takes ours. A
notification that cannot be delivered stays queued in the state and is sent again on the next observation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

log = logging.getLogger(__name__)

Status = Literal["inactive", "pending", "firing"]
ZERO_TIME: Final = "0001-01-01T00:00:00Z"
RECEIVER: Final = "fraud-monitor"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class AlertState:
    """One alert's state between windows (persisted as JSON)."""

    name: str
    labels: dict[str, str]
    status: Status = "inactive"
    bad_windows: int = 0
    started_at: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    """Notifications not yet delivered (oldest first)."""
    history: list[dict[str, str]] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        text = json.dumps({"alertname": self.name, **self.labels}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AlertState:
        return cls(**json.loads(text))


def webhook_payload(state: AlertState, status: Literal["firing", "resolved"], now: datetime) -> dict[str, Any]:
    """An Alertmanager webhook body (version 4) with this one alert."""
    labels = {"alertname": state.name, **state.labels}
    alert = {
        "status": status,
        "labels": labels,
        "annotations": dict(state.annotations),
        "startsAt": state.started_at or _rfc3339(now),
        "endsAt": _rfc3339(now) if status == "resolved" else ZERO_TIME,
        "generatorURL": "",
        "fingerprint": state.fingerprint,
    }
    return {
        "version": "4",
        "groupKey": "{}:" + "{alertname=" + json.dumps(state.name) + "}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": RECEIVER,
        "groupLabels": {"alertname": state.name},
        "commonLabels": labels,
        "commonAnnotations": dict(state.annotations),
        "externalURL": "",
        "alerts": [alert],
    }


def observe(
    state: AlertState, bad: bool, now: datetime, *, windows: int, annotations: dict[str, str] | None = None
) -> AlertState:
    """The alert's state after one more window; a notification, when one is due, is queued in ``outbox``.

    Args:
        state: the state after the previous window.
        bad: whether this window is bad (drift).
        now: the window's time.
        windows: k, the bad windows in a row that make the alert fire.
        annotations: summary/description of this window (kept while firing, sent with notifications).
    """
    if windows < 1:
        raise ValueError("windows must be at least 1")
    notes = dict(annotations or state.annotations)
    if bad:
        count = state.bad_windows + 1
        started = state.started_at or _rfc3339(now)
        if state.status == "firing":
            return replace(state, bad_windows=count, annotations=notes)  # already paged: deduplicated
        if count >= windows:
            firing = replace(state, status="firing", bad_windows=count, started_at=started, annotations=notes)
            return replace(
                firing,
                outbox=[*state.outbox, webhook_payload(firing, "firing", now)],
                history=[*state.history, {"at": _rfc3339(now), "status": "firing"}],
            )
        return replace(state, status="pending", bad_windows=count, started_at=started, annotations=notes)
    if state.status == "firing":
        resolved = webhook_payload(replace(state, annotations=notes), "resolved", now)
        return replace(
            state,
            status="inactive",
            bad_windows=0,
            started_at=None,
            annotations=notes,
            outbox=[*state.outbox, resolved],
            history=[*state.history, {"at": _rfc3339(now), "status": "resolved"}],
        )
    return replace(state, status="inactive", bad_windows=0, started_at=None)


def deliver(state: AlertState, url: str | None, *, timeout: float = 5.0) -> AlertState:
    """Post the queued notifications in order; stop at the first failure and keep the rest queued.

    With no URL, nothing is sent and the queue is cleared (the notifications stay in the state's history).
    """
    if not state.outbox:
        return state
    if not url:
        return replace(state, outbox=[])
    import requests

    sent = 0
    for payload in state.outbox:
        try:
            response = requests.post(url, json=payload, timeout=timeout)
            response.raise_for_status()
        except requests.RequestException as exc:
            log.warning(
                "alert webhook %s failed (%s); %d notification(s) kept for the next window",
                url,
                exc,
                len(state.outbox) - sent,
            )
            break
        sent += 1
    return replace(state, outbox=state.outbox[sent:])


def load(path: Path, name: str, labels: dict[str, str]) -> AlertState:
    """The persisted state, or a fresh inactive alert."""
    if path.is_file():
        return AlertState.from_json(path.read_text())
    return AlertState(name=name, labels=labels)


def save(path: Path, state: AlertState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    temp.write_text(state.to_json())
    temp.replace(path)
