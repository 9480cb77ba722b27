"""Dataset adapters: what a dataset's files look like and how a raw batch becomes a validated one.

The pipeline only ever sees an adapter's canonical Arrow schema, its label column and its time column, all taken
from the dataset's transaction contract (`fraud.contracts`). The default `DatasetAdapter.normalize` parses and
checks every field from the contract alone, so another data set (the Sparkov card transactions, say) is added by
declaring its contract and writing one more adapter here for its files' quirks, without touching readers, ingest
or the pipeline components.
"""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from fraud.contracts import PAYSIM, SPARKOV, Field, TransactionContract
from fraud.data import validation as v
from fraud.errors import ConfigError, DataValidationError


class DatasetAdapter:
    """The files of one dataset, read into its contract's canonical schema."""

    contract: ClassVar[TransactionContract]
    header: ClassVar[tuple[str, ...]]
    """Column names exactly as the published files spell and order them."""

    @property
    def name(self) -> str:
        return self.contract.name

    @property
    def arrow_schema(self) -> pa.Schema:
        return self.contract.arrow_schema

    @property
    def label(self) -> str:
        return self.contract.label

    @property
    def time(self) -> str:
        return self.contract.time

    @property
    def schema_version(self) -> str:
        return self.contract.version

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

    def check_stored_types(self, stored: pa.Schema, where: str) -> None:
        """Refuse a typed file (Parquet) whose columns do not hold the contract's types, naming the first column.

        A typed column is taken as the writer's statement of what it holds, so it is never parsed or rounded into
        shape: text where the contract has a number, a float where it has an integer or float32 money (seven
        digits: 181,000.37 would become 181,000.375) are the file's error, as a wrong value in a CSV is. Exact
        widenings are accepted (any integer width, integers as money, dictionary-encoded text).

        Raises:
            DataValidationError: naming the column, its stored type and what the contract expects.
        """
        for field in self.contract.fields:
            if field.name not in stored.names:
                continue  # the header check reports missing columns
            found = stored.field(field.name).type
            expected = _accepted_description(field, found)
            if expected is not None:
                raise DataValidationError(
                    f"stored as {found}; expected {expected} ({where}: a typed file's columns must have the "
                    f"{self.name} contract's types; write it with them, or as CSV)",
                    column=field.name,
                )

    def normalize(self, batch: pa.RecordBatch, first_row: int) -> pa.RecordBatch:
        """Turn one raw batch (text or typed) into the canonical schema, or raise naming the row.

        Every field is parsed and checked by its contract kind and domain, in header order. An adapter whose
        files differ from the contract (extra columns, text timestamps) reshapes the batch and then calls this.

        Args:
            batch: columns named as in the contract, text (from CSV) or typed (from Parquet, types already
                checked by `check_stored_types`).
            first_row: 1-based data row number of the batch's first row, for error messages.

        Raises:
            DataValidationError: naming the column, the row and the problem.
        """
        arrays = [_normalize_field(field, batch.column(field.name), first_row) for field in self.contract.fields]
        return pa.RecordBatch.from_arrays(arrays, schema=self.arrow_schema)

    def normalize_table(self, table: pa.Table, batch_rows: int = 1_000_000) -> pa.Table:
        """`normalize` over a whole typed table (a stored artifact), keeping row numbers right across batches."""
        self.check_stored_types(table.schema, "the table")
        batches, first_row = [], 1
        for batch in table.to_batches(max_chunksize=batch_rows):
            batches.append(self.normalize(batch, first_row))
            first_row += batch.num_rows
        return pa.Table.from_batches(batches, schema=self.arrow_schema)

    def positives(self, batch: pa.RecordBatch) -> int:
        """Number of positive labels in a canonical batch."""
        return int(pc.sum(batch.column(self.label)).as_py() or 0)


class PaySimAdapter(DatasetAdapter):
    """The PaySim mobile-money log (Kaggle ``ealaxi/paysim1``) and files of its schema: the contract's header as
    published, nothing to reshape."""

    contract = PAYSIM
    header = PAYSIM.columns


def _normalize_field(field: Field, values: pa.Array, first_row: int) -> pa.Array:
    """One column parsed into the field's canonical type and checked against its domain."""
    name = field.name
    if field.kind == "integer":
        parsed = v.to_integer(values, name, first_row, field.arrow_type)
        low, high = field.int_range
        v.require_between(parsed, name, first_row, low, high)
        return parsed
    if field.kind == "flag":
        parsed = v.to_integer(values, name, first_row, field.arrow_type)
        v.require_in(parsed, [0, 1], name, first_row)
        return parsed
    if field.kind == "number":
        parsed = v.to_float(values, name, first_row)
        if field.low == 0 and field.high is None:
            v.require_non_negative(parsed, name, first_row)
        elif field.low is not None and field.high is not None:
            v.require_between(parsed, name, first_row, field.low, field.high)
        return parsed
    if field.kind == "timestamp":
        return v.to_timestamp(values, name, first_row, field.arrow_type)
    text = v.to_string(values, name, first_row)
    if field.kind == "category":
        v.require_in(text, field.choices, name, first_row)
    elif field.max_length is not None:
        v.require_max_length(text, name, first_row, field.max_length)
    return text


def _accepted_description(field: Field, stored: pa.DataType) -> str | None:
    """None when a typed column of this type holds the field's values exactly, else what the field needs."""
    if pa.types.is_dictionary(stored):
        stored = stored.value_type
    if field.kind in ("integer", "flag"):
        return None if pa.types.is_integer(stored) else "an integer type"
    if field.kind == "number":
        return None if pa.types.is_float64(stored) or pa.types.is_integer(stored) else "double (float64)"
    if field.kind == "timestamp":
        return None if pa.types.is_timestamp(stored) or pa.types.is_date(stored) else "a date or timestamp type"
    return None if pa.types.is_string(stored) or pa.types.is_large_string(stored) else "string"


class SparkovAdapter(DatasetAdapter):
    """The Sparkov card transactions (Kaggle ``kartik2112/fraud-detection``): the published files start with an
    unnamed row-index column, which is read and dropped (the default `normalize` takes the contract's fields only)."""

    contract = SPARKOV
    header = ("", *SPARKOV.columns)


ADAPTERS: dict[str, DatasetAdapter] = {adapter.name: adapter for adapter in (PaySimAdapter(), SparkovAdapter())}


def get_adapter(name: str) -> DatasetAdapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset '{name}'; known datasets: {', '.join(sorted(ADAPTERS))}") from None
