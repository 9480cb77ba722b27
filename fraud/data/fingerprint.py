"""Content fingerprint of a validated dataset, independent of file format and chunking.

The same rows give the same fingerprint whether they came from CSV, gzip, Parquet or the generator, and however
the reader split them into batches: each column's values are hashed as one continuous stream, and the column
digests are combined at the end. Ingest uses it to make re-ingesting the same content a no-op, and the model
registry records it so a model version names exactly the data it was trained on.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

FINGERPRINT_ALGORITHM = "sha256-columns-v1"


def _string_parts(array: pa.Array) -> tuple[bytes, memoryview]:
    """Value lengths and the concatenated UTF-8 bytes of a string array, whatever its offset."""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + len(array) + 1]
    data = array.buffers()[2]
    payload = memoryview(b"") if data is None else memoryview(data)[offsets[0] : offsets[-1]]
    return np.diff(offsets).astype("<i4").tobytes(), payload


class Fingerprinter:
    """Streams record batches of one fixed schema into a content hash."""

    def __init__(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._hashes = {name: hashlib.sha256() for name in schema.names}
        self._lengths = {name: hashlib.sha256() for name in schema.names if pa.types.is_string(schema.field(name).type)}
        self.rows = 0

    def update(self, batch: pa.RecordBatch) -> None:
        if batch.schema != self._schema:
            raise ValueError("fingerprint: batch schema differs from the dataset schema")
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if name in self._lengths:
                lengths, payload = _string_parts(column)
                self._lengths[name].update(lengths)
                self._hashes[name].update(payload)
            else:
                values = column.to_numpy(zero_copy_only=False)
                self._hashes[name].update(np.ascontiguousarray(values).tobytes())
        self.rows += batch.num_rows

    def hexdigest(self) -> str:
        total = hashlib.sha256(FINGERPRINT_ALGORITHM.encode())
        total.update(str(self._schema).encode())
        total.update(str(self.rows).encode())
        for name in self._schema.names:
            total.update(name.encode())
            total.update(self._hashes[name].digest())
            if name in self._lengths:
                total.update(self._lengths[name].digest())
        return total.hexdigest()
