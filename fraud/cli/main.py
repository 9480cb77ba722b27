"""Entry point of `fraudctl`: global options, error handling and the subcommand groups.

User errors (`FraudError`) end the process with a one-line reason and the error's exit code, never a traceback;
`-v` turns on progress logs and `FRAUD_DEBUG=1` shows tracebacks for bug reports.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from fraud.cli import canary, data, monitor, pipeline, replay, serve, stack
from fraud.cli.ui import configure_logging, err_console
from fraud.errors import FraudError

EPILOG = """Examples:

  fraudctl up                                   start S3 + MLflow on 127.0.0.1 (state in .fraud/)

  fraudctl data generate --rows 1000000 --output data/paysim.parquet

  fraudctl data ingest --source data/paysim.parquet

  fraudctl data profile data/paysim.parquet --plot profile.png

  fraudctl status && fraudctl down
"""

app = typer.Typer(
    name="fraudctl",
    help="Real-time fraud detection platform: local stack, PaySim data, training pipeline, serving.",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More log output (-v info, -vv debug).")
    ] = 0,
) -> None:
    configure_logging(verbose)


stack.register(app)
serve.register(app)
replay.register(app)
canary.register(app)
app.add_typer(data.app, name="data")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(monitor.app, name="monitor")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI in-process and return its exit code (tests call this instead of spawning a process).

    Typer's standalone mode prints usage errors and turns `typer.Exit` into `SystemExit`; what is left to
    handle here are the platform's own errors, printed as one line.
    """
    try:
        app(args=argv, prog_name="fraudctl", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except FraudError as exc:
        if _debug():
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    return 0


def _debug() -> bool:
    """FRAUD_DEBUG, read through the settings (invalid settings are the error being reported: then no debug)."""
    from fraud.settings import load_settings

    try:
        return load_settings().debug
    except FraudError:
        return False


def run() -> None:
    """Console-script entry point."""
    # MLflow draws a tqdm bar per artifact download (a model, a reference sample): in a terminal they tear through
    # the command's own progress and tables, and in a log they are pages of carriage returns. A user who wants
    # them back sets the variable.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    sys.exit(main())
