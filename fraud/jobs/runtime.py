"""What every pipeline step does first, whether run by kfp.local, a cluster or a test."""

from __future__ import annotations

import logging
import sys

from fraud.settings import Settings, get_settings


def start_step(name: str) -> Settings:
    """Configure logging for this step's process (an entrypoint) and read the settings from its environment."""
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
        force=True,
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "alembic", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # fraud.tuning logs one line per trial itself; Optuna's own INFO line would repeat it.
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return get_settings()
