"""XGBoost's private symbols: its C library handle and the helpers its Python wrapper calls it with.

`DirectCalls` makes the very C calls ``Booster.inplace_predict(predict_type="margin")`` and ``DMatrix`` +
``Booster.predict(pred_contribs=True)`` make, with the same arguments, minus the wrapper's per-call Python work.
On one row the wrapper costs more than the model: ~90 µs of Python around a ~50 µs ``inplace_predict`` (input
type dispatch, an array interface and a config serialised with ``json.dumps`` on every call, a class built per
call to read the output) and ~140 µs around a DMatrix + TreeSHAP. Here the JSON is formatted once (only the data
pointer and shape change) and the output is copied straight to float64. The C functions, the data and the
configuration are unchanged, so results are bitwise identical; `fraud.modeling.XGBoostModel` checks that on a
probe matrix at load time and keeps the public API if anything differs.

Written for xgboost-cpu 3.2.0; ``SYMBOLS`` lists what this relies on (checked by ``tests/compat``).
"""

from __future__ import annotations

import ctypes
import json
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from fraud.compat import PrivateSymbol, expect

if TYPE_CHECKING:
    import xgboost as xgb

DISTRIBUTIONS: Final = ("xgboost-cpu", "xgboost")
WRITTEN_FOR: Final = "3.2.0"

ARRAY_INTERFACE: Final = (
    b'{"data": [%d, false], "strides": null, "descr": [["", "<f4"]], "typestr": "<f4", "shape": [%d, %d], "version": 3}'
)
"""What ``xgboost._data_utils.array_interface`` serialises for a writeable C-contiguous float32 matrix."""
C_FUNCTIONS: Final = (
    "XGBoosterPredictFromDense",
    "XGDMatrixCreateFromDense",
    "XGBoosterPredictFromDMatrix",
    "XGDMatrixFree",
)


class DirectCalls:
    """XGBoost's prediction C calls for one booster, made directly (see the module docstring).

    Inputs must be C-contiguous float32 matrices (`accepts`); anything else goes through the public API.
    """

    def __init__(self, booster: xgb.Booster, nthread: int) -> None:
        from xgboost.core import _LIB, _check_call, c_bst_ulong, make_jcargs  # type: ignore[attr-defined]

        self._lib = _LIB
        self._check = _check_call
        self._ulong = c_bst_ulong
        self._handle = booster.handle
        self._booster = booster  # keeps the handle alive
        # what Booster.inplace_predict(X, predict_type="margin") sends (default iteration range, missing=NaN)
        self._margin_args = make_jcargs(
            type=1, training=False, iteration_begin=0, iteration_end=0, missing=np.nan, strict_shape=False, cache_id=0
        )
        # what DMatrix(X, nthread=nthread) and Booster.predict(matrix, pred_contribs=True) send
        self._matrix_args = make_jcargs(missing=float(np.nan), nthread=int(nthread), data_split_mode=0)
        self._contrib_args = json.dumps(
            {"type": 2, "training": False, "iteration_begin": 0, "iteration_end": 0, "strict_shape": False}
        ).encode("utf-8")

    @staticmethod
    def accepts(X: np.ndarray) -> bool:
        return X.dtype == np.float32 and X.ndim == 2 and bool(X.flags.c_contiguous) and X.shape[0] > 0

    @staticmethod
    def interface(X: np.ndarray) -> bytes:
        """XGBoost's ``array_interface(X)`` for a C-contiguous float32 matrix."""
        return ARRAY_INTERFACE % (X.ctypes.data, X.shape[0], X.shape[1])

    def _predicted(self, call: Any, *args: Any) -> np.ndarray:
        """Run a prediction C call with its three out-parameters (shape, dimensions, values) appended."""
        shape = ctypes.POINTER(self._ulong)()
        dims = self._ulong()
        values = ctypes.POINTER(ctypes.c_float)()
        self._check(call(*args, ctypes.byref(shape), ctypes.byref(dims), ctypes.byref(values)))
        size = 1
        for i in range(dims.value):
            size *= int(shape[i])
        return np.ctypeslib.as_array(values, shape=(size,)).astype(np.float64)  # a copy: XGBoost reuses its buffer

    def margin(self, X: np.ndarray) -> np.ndarray:
        call = self._lib.XGBoosterPredictFromDense
        return self._predicted(call, self._handle, self.interface(X), self._margin_args, ctypes.c_void_p())

    def contributions(self, X: np.ndarray) -> np.ndarray:
        matrix = ctypes.c_void_p()
        self._check(self._lib.XGDMatrixCreateFromDense(self.interface(X), self._matrix_args, ctypes.byref(matrix)))
        try:
            return self._predicted(self._lib.XGBoosterPredictFromDMatrix, self._handle, matrix, self._contrib_args)
        finally:
            self._check(self._lib.XGDMatrixFree(matrix))


# ------------------------------------------------------------------------------------------------ contract


def _check_lib() -> None:
    from xgboost.core import _LIB

    expect(isinstance(_LIB, ctypes.CDLL), f"_LIB is a {type(_LIB).__name__}, not a ctypes.CDLL")
    missing = [name for name in C_FUNCTIONS if not hasattr(_LIB, name)]
    expect(not missing, f"the C library lacks {', '.join(missing)}")


def _check_check_call() -> None:
    from xgboost.core import XGBoostError, _check_call

    _check_call(0)
    try:
        _check_call(-1)
    except XGBoostError:
        return
    raise AssertionError("_check_call(-1) no longer raises XGBoostError")


def _check_jcargs() -> None:
    from xgboost.core import make_jcargs

    got = make_jcargs(type=1, missing=np.nan, training=False)
    want = json.dumps({"type": 1, "missing": np.nan, "training": False}).encode("utf-8")
    expect(got == want, f"make_jcargs(...) gives {got!r}, expected {want!r}")


def _check_ulong() -> None:
    from xgboost.core import c_bst_ulong  # type: ignore[attr-defined]

    expect(c_bst_ulong is ctypes.c_uint64, f"c_bst_ulong is {c_bst_ulong}, not ctypes.c_uint64")


def _check_array_interface() -> None:
    from xgboost._data_utils import array_interface

    X = np.zeros((3, 2), dtype=np.float32)
    got, want = json.loads(array_interface(X)), json.loads(ARRAY_INTERFACE % (X.ctypes.data, 3, 2))
    expect(got == want, f"array_interface gives {got}, DirectCalls sends {want}")


def _check_handle() -> None:
    import xgboost as xgb

    X = np.arange(8, dtype=np.float32).reshape(4, 2)
    booster = xgb.train({"nthread": 1, "verbosity": 0}, xgb.DMatrix(X, label=[0, 1, 0, 1]), num_boost_round=1)
    expect(isinstance(booster.handle, ctypes.c_void_p), f"Booster.handle is a {type(booster.handle).__name__}")
    direct = DirectCalls(booster, 1)
    public = np.asarray(booster.inplace_predict(X, predict_type="margin"), dtype=np.float64)
    expect(np.array_equal(direct.margin(X), public), "the direct margin call differs from inplace_predict")


SYMBOLS: Final = tuple(
    PrivateSymbol(DISTRIBUTIONS, WRITTEN_FOR, name, "fraud.compat.xgboost.DirectCalls", check)
    for name, check in (
        ("xgboost.core._LIB", _check_lib),
        ("xgboost.core._check_call", _check_check_call),
        ("xgboost.core.make_jcargs", _check_jcargs),
        ("xgboost.core.c_bst_ulong", _check_ulong),
        ("xgboost._data_utils.array_interface (its JSON layout)", _check_array_interface),
        ("xgboost.Booster.handle", _check_handle),
    )
)
