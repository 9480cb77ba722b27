"""The `fraudctl` command line: thin Typer shells over the domain functions."""

from fraud.cli.main import app, main

__all__ = ["app", "main"]
