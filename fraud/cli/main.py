"""Entry point of `fraudctl`; subcommand groups are added in their own modules."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="fraudctl",
    help="Real-time fraud detection platform: local stack, data, training pipeline, serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI in-process and return its exit code (tests call this instead of a subprocess)."""
    try:
        app(args=argv, standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
