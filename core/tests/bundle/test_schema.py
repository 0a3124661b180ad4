import pyarrow as pa
import pytest

from capa.bundle.schema import STATUS_VALUES, conform_scalars, scalar_batch, scalars_schema
from capa.errors import BundleError


def test_scalars_schema_is_the_long_form_of_the_spec():
    schema = scalars_schema()
    assert schema.names == [
        "t_mono_ns",
        "channel",
        "value",
        "raw_value",
        "unit",
        "status",
        "source_field",
    ]
    assert schema.field("t_mono_ns").type == pa.int64()
    for name in ("channel", "unit", "status"):
        assert pa.types.is_dictionary(schema.field(name).type)
    assert schema.field("raw_value").nullable
    assert schema.field("source_field").type == pa.string()
    assert set(STATUS_VALUES) >= {"ok", "underrange", "overload", "sensor_fail", "comm_error"}


def test_scalar_batch_repeats_scalars_without_per_row_objects():
    batch = scalar_batch([1, 2, 3], "tc1", [0.5, 1.5, 2.5], unit="degC", source_field="daq.ai0")
    assert batch.schema.equals(scalars_schema(), check_metadata=False)
    assert batch.column("channel").to_pylist() == ["tc1"] * 3
    # one dictionary entry shared by every row
    assert len(batch.column("channel").dictionary) == 1
    assert batch.column("status").to_pylist() == ["ok"] * 3
    assert batch.column("raw_value").null_count == 3
    assert batch.column("source_field").to_pylist() == ["daq.ai0"] * 3


def test_scalar_batch_accepts_per_row_status_columns():
    batch = scalar_batch([1, 2], ["a", "b"], [1.0, 2.0], status=["ok", "overload"])
    assert batch.column("status").to_pylist() == ["ok", "overload"]
    assert batch.column("channel").to_pylist() == ["a", "b"]


def test_conform_fills_optional_columns_and_encodes_dictionaries():
    raw = pa.record_batch({"t_mono_ns": [5], "channel": ["x"], "value": [1.0]})
    batch = conform_scalars(raw)
    assert batch.schema.equals(scalars_schema(), check_metadata=False)
    assert batch.to_pylist()[0] == {
        "t_mono_ns": 5,
        "channel": "x",
        "value": 1.0,
        "raw_value": None,
        "unit": None,
        "status": "ok",
        "source_field": None,
    }


def test_conform_refuses_missing_and_unknown_columns():
    with pytest.raises(BundleError, match=r"missing columns \['value'\]"):
        conform_scalars(pa.record_batch({"t_mono_ns": [5], "channel": ["x"]}))
    with pytest.raises(BundleError, match="unknown columns"):
        conform_scalars(
            pa.record_batch({"t_mono_ns": [5], "channel": ["x"], "value": [1.0], "zz": [1]})
        )
    with pytest.raises(BundleError, match="RecordBatch"):
        conform_scalars({"t_mono_ns": [1]})


def test_column_length_mismatch_is_refused():
    with pytest.raises(BundleError, match="expected 3"):
        scalar_batch([1, 2, 3], "a", [1.0, 2.0])
