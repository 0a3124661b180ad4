"""capa.columnar builds the arrays pyarrow.array() would, without asking pandas."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from capa import columnar

CASES = [
    [1, 2, 3],
    [1, 2.5, None],
    [1, None, 3],
    [True, False, None],
    ["a", None, "bé"],
    [None, None],
    [],
    np.arange(4, dtype=np.float32),
    np.arange(4, dtype=np.uint16),
    np.array([True, False]),
    np.array(["x", "yy"]),
    [[1], [2, 3]],  # nested: handed to pyarrow.array()
]


@pytest.mark.parametrize("values", CASES, ids=repr)
def test_column_matches_pyarrow_array(values):
    got = columnar.column(values)
    want = pa.array(values)
    assert got.type == want.type
    assert got.equals(want)
    got.validate(full=True)


def test_typed_constructors_with_nulls_and_dictionary():
    f = columnar.float64(np.array([1.0, 2.0, 3.0]), valid=np.array([True, False, True]))
    assert f.to_pylist() == [1.0, None, 3.0]
    assert f.null_count == 1
    d = columnar.dictionary(np.array([1, 0, 1]), columnar.strings(["ok", "overload"]))
    assert d.to_pylist() == ["overload", "ok", "overload"]
    assert columnar.int64([5, 6]).type == pa.int64()
    with pytest.raises(ValueError, match="1-D"):
        columnar.float64(np.ones((2, 2)))


def test_a_scalar_is_not_a_column():
    with pytest.raises(TypeError, match="sequence"):
        columnar.column(5)
    with pytest.raises(TypeError, match="sequence"):
        columnar.column("abc")
