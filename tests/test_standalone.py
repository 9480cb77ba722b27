"""The repository stands alone: no file refers to a directory beside it, and a bare clone passes its data tests.

The genuine samples live in ``samples/`` (source and licence in ``samples/README.md``); nothing may reach for the
design folder the project was started from, which a clone from GitHub does not have.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SIBLING = "sha" + "red"  # spelt in two halves so this file does not match its own search
FORBIDDEN = (f"../{SIBLING}", f'"{SIBLING}" / "data"', f"{SIBLING}/data", f'.parent / "{SIBLING}"')


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _tracked_files() -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    return _git("ls-files").splitlines()


def test_no_tracked_file_refers_to_a_directory_beside_the_repository() -> None:
    offenders = []
    for name in _tracked_files():
        path = REPO / name
        if path.suffix in {".csv", ".parquet", ".png"} or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{name}: {pattern}" for pattern in FORBIDDEN if pattern in text]
    assert not offenders, "files reaching outside the repository:\n" + "\n".join(offenders)


def _data_dependent_modules(root: Path) -> list[str]:
    """Test modules that read the genuine samples (they import them from `samples`), server-free ones only."""
    modules = []
    for path in sorted((root / "tests").rglob("test_*.py")):
        if path.name == Path(__file__).name or "serving" in path.parts:  # tests/serving needs model servers
            continue
        if "from samples import" in path.read_text():
            modules.append(str(path.relative_to(root)))
    return modules


@pytest.mark.slow
def test_a_clone_alone_passes_the_data_dependent_tests(tmp_path: Path) -> None:
    # given a clone of HEAD with nothing beside it
    _tracked_files()
    head = _git("rev-parse", "HEAD").strip()
    clone = tmp_path / "fraud-platform"
    _git("clone", "--quiet", "--no-checkout", str(REPO), str(clone), cwd=tmp_path)
    _git("checkout", "--quiet", head, cwd=clone)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fraud-platform"]
    modules = _data_dependent_modules(clone)
    assert "tests/data/test_readers.py" in modules and "tests/test_features.py" in modules

    # when its data-dependent tests run from it, with this interpreter but the clone's code first on the path
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAUD_", "AWS_", "MLFLOW_", "PYTEST_"))}
    env["PYTHONPATH"] = str(clone)
    where = subprocess.run(
        [sys.executable, "-c", "import fraud, samples; print(fraud.__file__); print(samples.PAYSIM_STEP1)"],
        cwd=clone,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert all(Path(p).is_relative_to(clone) for p in where), where
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *modules, "-m", "not stack and not slow", "-qx", "-p", "no:cacheprovider"],
        cwd=clone,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )

    # then they pass
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout.splitlines()[-1]
