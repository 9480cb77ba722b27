"""The platform's error hierarchy.

Every error a user can cause or fix derives from `FraudError`. Its message is one line that names the problem
and, where there is one, the next step; entrypoints (the CLI, the predictor) print it without a traceback and
map it to an exit code through the ``exit_code`` class attribute; the predictor maps request errors to HTTP
statuses itself (``serving/server.py``).
"""

from __future__ import annotations


class FraudError(Exception):
    """Root of the errors a user can act on."""

    exit_code: int = 1


class ConfigError(FraudError):
    """Settings are missing or invalid."""

    exit_code = 2


class DataValidationError(FraudError):
    """Input data breaks the dataset's contract; the message names the column, the row and the problem."""

    exit_code = 3

    def __init__(self, problem: str, *, column: str | None = None, row: int | None = None) -> None:
        self.problem = problem
        self.column = column
        self.row = row
        where = []
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)


class SourceError(FraudError):
    """A data source cannot be read (missing file, unreachable URL, no Kaggle credentials...)."""

    exit_code = 4


class StoreError(FraudError):
    """The S3 object store refused or failed an operation."""

    exit_code = 5


class StackError(FraudError):
    """The local stack cannot start, stop or answer."""

    exit_code = 6


class PortInUseError(StackError):
    """A port the local stack needs is taken by a process it did not start."""

    def __init__(self, port: int, service: str, setting: str) -> None:
        self.port = port
        super().__init__(
            f"port {port} ({service}) is already in use by another process; stop it or choose another port "
            f"with {setting}=<port>"
        )


class PipelineError(FraudError):
    """A pipeline step failed; the message names the step."""

    exit_code = 7


class EvaluationError(PipelineError):
    """Scores, labels or evaluation settings cannot give a metric or a threshold (e.g. a block without fraud)."""


class RegistryError(FraudError):
    """The MLflow registry has no such model, version or alias, or refused an operation."""

    exit_code = 8
