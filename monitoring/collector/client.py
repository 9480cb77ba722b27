"""The sending side: the headers of a binary-mode CloudEvent as KServe's payload logger sets them.

For whatever plays the logger locally (the splitter, tests, benchmarks), so every sender agrees with
`monitoring.collector.events` on the names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from monitoring.collector.events import REQUEST_TYPE, RESPONSE_TYPE

Half = Literal["request", "response"]


def cloudevent_headers(
    event_id: str,
    half: Half,
    *,
    arm: str = "champion",
    model_name: str = "fraud-detector",
    namespace: str = "local",
    at: datetime | None = None,
) -> dict[str, str]:
    """Headers for one event; ``event_id`` is the request id, shared by the request and the response."""
    return {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": REQUEST_TYPE if half == "request" else RESPONSE_TYPE,
        "ce-source": arm,
        "ce-time": (at or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "ce-inferenceservicename": model_name,
        "ce-namespace": namespace,
        "ce-component": arm,
        "ce-endpoint": arm,
        "content-type": "application/json",
    }
