"""Paths of the genuine data samples kept in the repository (source and licence: ``samples/README.md``).

Tests and benchmarks import these names instead of building paths of their own, so the files can move once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent

PAYSIM_STEP1: Final = ROOT / "paysim" / "paysim_head_step1.csv"
"""The first 2,688 rows of the published PaySim log, byte for byte (16 frauds)."""
PAYSIM_STEPS1TO9: Final = ROOT / "paysim" / "paysim_head_steps1to9.csv"
"""The first 44,598 rows of the published PaySim log, rewritten by pandas (94 frauds)."""
SPARKOV_TRAIN: Final = ROOT / "sparkov" / "fraudTrain_head.csv"
"""The first 5,039 rows of Sparkov's ``fraudTrain.csv`` (22 frauds)."""
SPARKOV_TEST: Final = ROOT / "sparkov" / "fraudTest_head.csv"
"""The first 2,145 rows of Sparkov's ``fraudTest.csv`` (11 frauds)."""
