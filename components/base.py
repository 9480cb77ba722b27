"""The decorator every component shares: the project image, no per-run pip installs."""

from __future__ import annotations

import functools

from kfp import dsl

from fraud.settings import get_settings

project_component = functools.partial(
    dsl.component,
    base_image=get_settings().image,
    install_kfp_package=False,
)
