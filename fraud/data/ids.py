"""Account ids that look and collide like the published log's.

The simulator names an account ``"C"`` (customer) or ``"M"`` (merchant) followed by a Java identity hash code:
a pseudo-random number below 2**31. The logged origin is evidently the hash of a per-row copy of the client
(the transaction keeps a "before" copy), so ``nameOrig`` values are practically unique: 6,353,307 distinct in
6,362,620 rows is the birthday-collision count of that many draws from about 2.17e9 values. Destinations are the
client objects themselves and repeat.

Here an account is an index into an id space; `id_numbers` maps indices to numbers with a seeded affine
permutation modulo a prime (distinct indices give distinct ids, and the ids look random). Pools are scaled with
the number of rows, so a 100k-row file has the same share of repeated origins as the 6.36M-row month.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

IntArray = npt.NDArray[np.int64]

ID_OFFSET: Final = 100_000
"""Smallest id number: every id has 6 to 10 digits, as almost all published ones do."""
ID_MODULUS: Final = 2_147_383_633
"""Largest prime below 2**31 - 1 - ID_OFFSET, so ids stay below 2**31 like Java hash codes."""
ID_MULTIPLIER: Final = 1_103_515_245
"""Any multiplier below the prime permutes the residues; this one scatters consecutive indices widely."""


def id_numbers(index: IntArray, shift: int) -> IntArray:
    """Distinct indices to distinct id numbers, scattered over [ID_OFFSET, ID_OFFSET + ID_MODULUS)."""
    residue = np.asarray(index, dtype=np.int64) % ID_MODULUS
    result: IntArray = ID_OFFSET + (residue * ID_MULTIPLIER + shift % ID_MODULUS) % ID_MODULUS
    return result


def small_strings(values: tuple[str, ...] | list[str]) -> pa.Array:
    """A short Arrow string array built from buffers (`pa.array` on a list would import pandas: ~1.5 s)."""
    encoded = [v.encode() for v in values]
    offsets = np.cumsum([0, *map(len, encoded)], dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    )


def id_strings(prefix: str | pa.Array, numbers: IntArray) -> pa.Array:
    """``prefix + str(number)`` for every number, built by Arrow (no Python string formatting per row)."""
    values = np.ascontiguousarray(numbers, dtype=np.int64)
    digits = pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)]).cast(pa.string())
    first, empty = small_strings([prefix if isinstance(prefix, str) else "", ""])  # scalars, without pandas
    return pc.binary_join_element_wise(first if isinstance(prefix, str) else prefix, digits, empty)


def origin_pool_size(rows: int, published_rows: int, published_distinct: int) -> int:
    """Size of the id space origins are drawn from, so that their repeat rate matches the published one.

    With N equally likely ids and n draws, the expected share of repeats is about n / (2N); the published month
    gives N for its n, and N scales linearly with n (capped by the id space).
    """
    repeat_share = 1.0 - published_distinct / published_rows
    size = rows / (2.0 * repeat_share) if repeat_share > 0 else float(ID_MODULUS)
    return int(min(max(size, 1.0), ID_MODULUS))
