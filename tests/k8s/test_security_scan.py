"""Security scan of everything the chart renders (all value sets) and of the project Dockerfile, with checkov.

checkov runs from its own virtual environment (`make .tools/checkov/bin/checkov`, pinned and hash-checked in
tools/checkov-requirements.txt) because its dependency pins clash with the project's lock. Without that binary
the scan is skipped, saying how to get it; with it, the scan must pass: every failing check is a test failure, and
every check that is skipped must carry its reason (in helm/fraud-platform/.checkov.yaml or on the resource).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import CHART, ROOT, Rendered

CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
CONFIG = CHART / ".checkov.yaml"


def _skip_list() -> list[tuple[str, str]]:
    """(check id, the comment block above it) for every entry of skip-check in .checkov.yaml."""
    entries: list[tuple[str, str]] = []
    comment: list[str] = []
    in_skips = False
    for line in CONFIG.read_text().splitlines():
        if line.startswith("skip-check:"):
            in_skips = True
            continue
        if not in_skips:
            continue
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("# "))
        elif stripped.startswith("- "):
            entries.append((stripped[2:].strip(), " ".join(comment)))
            comment = []
    return entries


def test_every_skipped_check_is_justified() -> None:
    skips = _skip_list()
    assert skips, "no skip list found"
    for check, reason in skips:
        assert re.fullmatch(r"CKV_(K8S|DOCKER)_\d+", check), check
        assert len(reason) > 80, f"{check} is skipped without a real justification: {reason!r}"


def _write_manifests(rendered_sets: dict[str, Rendered], target: Path) -> None:
    for name, rendered in rendered_sets.items():
        folder = target / name
        folder.mkdir(parents=True)
        for path, text in rendered.manifests.items():
            if path.endswith(".yaml"):
                (folder / path.replace("/", "__")).write_text(text)
    shutil.copy(ROOT / "Dockerfile", target / "Dockerfile")


@pytest.mark.skipif(
    not CHECKOV.exists(),
    reason="checkov is not installed: run `make .tools/checkov/bin/checkov` (its own venv, see tools/)",
)
def test_checkov_scan_passes(rendered_sets: dict[str, Rendered], tmp_path: Path) -> None:
    _write_manifests(rendered_sets, tmp_path)
    completed = subprocess.run(
        [str(CHECKOV), "--directory", str(tmp_path), "--config-file", str(CONFIG), "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    reports: Any = json.loads(completed.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    by_type = {report["check_type"]: report for report in reports}
    assert {"kubernetes", "dockerfile"} <= set(by_type), completed.stderr[-2000:]
    failures = [
        f"{report['check_type']}: {check['check_id']} {check['check_name']} "
        f"on {check['resource']} ({check['file_path']})"
        for report in reports
        for check in report["results"].get("failed_checks", [])
    ]
    assert failures == [], "\n".join(failures)
    assert by_type["kubernetes"]["summary"]["passed"] > 100
    assert by_type["kubernetes"]["summary"]["parsing_errors"] == 0
    for report in reports:
        for check in report["results"].get("skipped_checks", []):
            # resource-level skips (checkov.io/skipN annotations) must say why
            assert len(check.get("suppress_comment") or "") > 20, check["check_id"]
    assert completed.returncode == 0, completed.stderr[-2000:]
