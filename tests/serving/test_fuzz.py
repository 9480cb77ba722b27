"""Property-based fuzzing: malformed requests only ever get a 4xx, and the server keeps serving.

The in-suite run is short (300 examples); `benchmarks/fuzz_predictor.py` runs the same strategies for 10,000+.
"""

from __future__ import annotations

from collections import Counter

import pytest
import requests
from hypothesis import HealthCheck, given, settings

from benchmarks.fuzz_predictor import Malformed, malformed_requests
from serving.process import PredictorProcess
from serving.validation import EXAMPLE_TRANSACTION as TRANSACTION

pytestmark = [pytest.mark.stack, pytest.mark.slow]

STATUSES: Counter[int] = Counter()
SESSION = requests.Session()


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(request=malformed_requests)
def test_malformed_requests_get_a_4xx_never_a_5xx(server: PredictorProcess, request: Malformed) -> None:
    response = SESSION.post(server.url + request.path, data=request.body, headers=request.headers, timeout=30)
    STATUSES[response.status_code] += 1
    assert 400 <= response.status_code < 500, f"{request.fault}: {response.status_code} {response.text[:300]}"
    if response.status_code == 400:
        assert response.json()["error"], request.fault


def test_the_server_is_alive_and_serving_after_the_fuzz(server: PredictorProcess) -> None:
    assert sum(STATUSES.values()) >= 300 or not STATUSES  # the fuzz ran first (or was deselected)
    assert server.alive()
    assert requests.post(server.v1_url, json={"instances": [TRANSACTION]}, timeout=10).status_code == 200
