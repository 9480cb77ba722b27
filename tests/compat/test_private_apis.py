"""The private symbols the project uses from kserve, xgboost and scikit-learn: all fenced, all still as relied on.

A failure here after a library upgrade names the symbol and the installed version (`PrivateAPIChangedError`);
adapt `fraud/compat/<library>.py`, or keep the pin. ``FRAUD_SERVE_FAST_PATH=0`` serves without the xgboost and
scikit-learn ones meanwhile.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from fraud.compat import PrivateAPIChangedError, PrivateSymbol
from fraud.compat import kserve as kserve_compat
from fraud.compat import sklearn as sklearn_compat
from fraud.compat import xgboost as xgboost_compat

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = [*kserve_compat.SYMBOLS, *xgboost_compat.SYMBOLS, *sklearn_compat.SYMBOLS]
LIBRARIES = ("kserve", "xgboost", "sklearn")
SOURCE_DIRS = ("serving", "fraud", "benchmarks", "monitoring", "components", "pipelines")
PRIVATE_ATTRIBUTES = re.compile(
    r"\.(_LIB|_check_call|_data_plane|_model_repository_extension|_kwargs|_register_endpoints|"
    r"_add_exception_handlers|_predictors|_baseline_prediction|_raw_predict|_bin_mapper|_bin_data|"
    r"_rest_server|_grpc_server|_RefreshingServer|_data_utils)\b"
)
"""The private names of the three libraries the project uses, as attribute accesses."""


@pytest.mark.parametrize("symbol", SYMBOLS, ids=[s.name for s in SYMBOLS])
def test_private_symbol_is_as_relied_on(symbol: PrivateSymbol) -> None:
    symbol.verify()


def test_a_changed_symbol_is_named_with_the_installed_version() -> None:
    def gone() -> None:
        from xgboost import core

        getattr(core, "_NO_SUCH_SYMBOL")  # noqa: B009 - what an upgrade that removed it looks like

    symbol = PrivateSymbol(xgboost_compat.DISTRIBUTIONS, "3.2.0", "xgboost.core._NO_SUCH_SYMBOL", "a test", gone)
    with pytest.raises(PrivateAPIChangedError) as raised:
        symbol.verify()
    message = str(raised.value)
    assert "xgboost.core._NO_SUCH_SYMBOL" in message
    assert re.search(r"xgboost(-cpu)? 3\.\d+\.\d+", message), message
    assert "_NO_SUCH_SYMBOL" in message and "AttributeError" in message


def _sources() -> list[Path]:
    return [path for folder in SOURCE_DIRS for path in sorted((REPO / folder).rglob("*.py"))]


def test_private_symbols_are_used_only_in_fraud_compat() -> None:
    outside: list[str] = []
    compat = REPO / "fraud" / "compat"
    for path in _sources():
        if compat in path.parents:
            continue
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private or any(part.startswith("_") for part in (node.module or "").split(".")):
                    outside.append(f"{path.relative_to(REPO)}:{node.lineno}: from {node.module} import {private}")
        for number, line in enumerate(text.splitlines(), 1):
            if PRIVATE_ATTRIBUTES.search(line) and not line.lstrip().startswith("#"):
                outside.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not outside, "private kserve/xgboost/sklearn symbols outside fraud/compat:\n" + "\n".join(outside)
