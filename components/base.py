"""The decorator every component shares: no per-run pip installs.

The image a step runs is not set here: it is the project image from the settings (``FRAUD_IMAGE``), set on every
task when the pipeline is built for a compile or a run (`pipelines.training.build_pipeline`), so importing the
components reads no settings.
"""

from __future__ import annotations

import functools

from kfp import dsl

PLACEHOLDER_IMAGE = "python:3.11"
"""The decorator's base image: the Python the project image is built on; every task replaces it with the
project image itself (``set_container_image``)."""

project_component = functools.partial(dsl.component, base_image=PLACEHOLDER_IMAGE, install_kfp_package=False)
