"""Dataset adapters: what a dataset's files look like and how a raw batch becomes a validated one.

The pipeline only ever sees an adapter's canonical Arrow schema, its label column and its time column, so
another data set (the Sparkov card transactions, say) is added by writing one more adapter here, without
touching readers, ingest or the pipeline components.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from fraud import schema
from fraud.data import validation as v
from fraud.errors import ConfigError, DataValidationError


class DatasetAdapter(ABC):
    """The contract of one dataset's files."""

    name: ClassVar[str]
    header: ClassVar[tuple[str, ...]]
    """Column names exactly as the published files spell and order them."""
    arrow_schema: ClassVar[pa.Schema]
    label: ClassVar[str]
    time: ClassVar[str]
    schema_version: ClassVar[str]

    def check_header(self, names: list[str], where: str) -> None:
        """Compare a file's header with the published one and say precisely what differs.

        Raises:
            DataValidationError: a column is missing, unexpected, duplicated or out of place.
        """
        if tuple(names) == self.header:
            return
        expected = set(self.header)
        missing = [c for c in self.header if c not in names]
        unexpected = [c for c in names if c not in expected]
        duplicated = sorted({c for c in names if names.count(c) > 1})
        problems: list[str] = []
        if missing:
            problems.append("missing column" + ("s " if len(missing) > 1 else " ") + ", ".join(map(repr, missing)))
        if unexpected:
            problems.append(
                "unexpected column" + ("s " if len(unexpected) > 1 else " ") + ", ".join(map(repr, unexpected))
            )
        if duplicated:
            problems.append("duplicated " + ", ".join(map(repr, duplicated)))
        if not problems:
            for position, (found, wanted) in enumerate(zip(names, self.header, strict=True), start=1):
                if found != wanted:
                    problems.append(f"column {position} is {found!r} where {self.name} has {wanted!r}")
                    break
        raise DataValidationError(
            f"{where}: header does not match the {self.name} schema: {'; '.join(problems)} "
            f"(expected: {','.join(self.header)})"
        )

    @abstractmethod
    def normalize(self, batch: pa.RecordBatch, first_row: int) -> pa.RecordBatch:
        """Turn one raw batch (text or loosely typed) into the canonical schema, or raise naming the row.

        Args:
            batch: columns named as in `header`, text (from CSV) or any numeric type (from Parquet).
            first_row: 1-based data row number of the batch's first row, for error messages.

        Raises:
            DataValidationError: naming the column, the row and the problem.
        """

    def normalize_table(self, table: pa.Table, batch_rows: int = 1_000_000) -> pa.Table:
        """`normalize` over a whole table, keeping row numbers right across batches."""
        batches, first_row = [], 1
        for batch in table.to_batches(max_chunksize=batch_rows):
            batches.append(self.normalize(batch, first_row))
            first_row += batch.num_rows
        return pa.Table.from_batches(batches, schema=self.arrow_schema)

    def positives(self, batch: pa.RecordBatch) -> int:
        """Number of positive labels in a canonical batch."""
        return int(pc.sum(batch.column(self.label)).as_py() or 0)


class PaySimAdapter(DatasetAdapter):
    """The PaySim mobile-money log (Kaggle ``ealaxi/paysim1``) and files of its schema."""

    name = "paysim"
    header = schema.COLUMNS
    arrow_schema = schema.ARROW_SCHEMA
    label = schema.LABEL
    time = schema.TIME
    schema_version = schema.SCHEMA_VERSION

    def normalize(self, batch: pa.RecordBatch, first_row: int) -> pa.RecordBatch:
        col = {name: batch.column(name) for name in batch.schema.names}
        step = v.to_integer(col["step"], "step", first_row, pa.int32())
        v.require_between(step, "step", first_row, 1, 1_000_000)
        kind = v.to_string(col["type"], "type", first_row)
        v.require_in(kind, schema.TRANSACTION_TYPES, "type", first_row)
        amount = v.to_float(col["amount"], "amount", first_row)
        v.require_non_negative(amount, "amount", first_row)
        balances = {}
        for name in schema.BALANCE_COLUMNS:
            balances[name] = v.to_float(col[name], name, first_row)
            v.require_non_negative(balances[name], name, first_row)
        flags = {}
        for name in (schema.LABEL, "isFlaggedFraud"):
            flags[name] = v.to_integer(col[name], name, first_row, pa.int8())
            v.require_in(flags[name], [0, 1], name, first_row)
        arrays = {
            "step": step,
            "type": kind,
            "amount": amount,
            "nameOrig": v.to_string(col["nameOrig"], "nameOrig", first_row),
            "nameDest": v.to_string(col["nameDest"], "nameDest", first_row),
            **balances,
            **flags,
        }
        return pa.RecordBatch.from_arrays([arrays[f.name] for f in self.arrow_schema], schema=self.arrow_schema)


ADAPTERS: dict[str, DatasetAdapter] = {adapter.name: adapter for adapter in (PaySimAdapter(),)}


def get_adapter(name: str) -> DatasetAdapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset '{name}'; known datasets: {', '.join(sorted(ADAPTERS))}") from None
