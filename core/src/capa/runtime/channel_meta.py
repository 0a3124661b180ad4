"""Channel metadata carried by the bundle's tables (``core/docs/bundle-schema.md``).

Every column of a wide ``samples/<device>`` table carries its channel's description in the
Arrow/Parquet field metadata (``capa.unit``, ``capa.kind``, ``capa.calibration`` ...), and
``scalars`` carries the same description of all its channels as one JSON object
(``capa.channels``) so a reader of either table needs no other file to know what a value
means. Keys and values are UTF-8; an empty string means "none".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from capa.runtime.plan import ChannelPlan, DerivedPlan

__all__ = [
    "BUNDLE_SCHEMA_VERSION",
    "DERIVED_DEVICE",
    "KEYS",
    "calibration_summary",
    "channel_meta",
    "channels_json",
    "field_metadata",
]

BUNDLE_SCHEMA_VERSION = 2
"""The bundle layout the tables built here belong to."""

DERIVED_DEVICE = "derived"
"""``capa.device`` of a derived channel (computed, not read from a device)."""

KEYS: tuple[str, ...] = (
    "channel",
    "role",
    "unit",
    "raw_unit",
    "kind",
    "device",
    "field",
    "calibration",
    "plot_group",
)
"""Metadata keys of a channel (``capa.<key>`` in field metadata)."""


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return repr(value)  # "2.0": keeps it recognisably a float
    if isinstance(value, list | tuple):
        return "[" + ",".join(_number(v) for v in value) + "]"
    return str(value)


def calibration_summary(calibration: Any) -> str:
    """A one-line summary of a calibration model: its kind, then ``key=value`` pairs.

    ``identity``; ``linear slope=4.2``; ``linear points=[[1.0,0.0],[2.0,100.0]]``;
    ``polynomial coefficients=[0.1,2.0]``. Anything without a ``model_dump`` is ``str()``-ed.
    """
    if calibration is None:
        return "identity"
    dump = getattr(calibration, "model_dump", None)
    if dump is None:
        return str(calibration)
    # Defaults left out: ``linear slope=2`` (intercept 0), not every optional key.
    fields = dict(dump(mode="json", exclude_none=True, exclude_defaults=True))
    fields.pop("kind", None)
    kind = str(getattr(calibration, "kind", type(calibration).__name__))
    parts = [kind, *(f"{k}={_number(v)}" for k, v in fields.items())]
    return " ".join(parts)


def channel_meta(channel: ChannelPlan | DerivedPlan) -> dict[str, str]:
    """The description of one channel (keys of :data:`KEYS`, ``role`` = ``value``)."""
    if isinstance(channel, DerivedPlan):
        return {
            "channel": channel.name,
            "role": "value",
            "unit": channel.unit,
            "raw_unit": "",
            "kind": channel.kind,
            "device": DERIVED_DEVICE,
            "field": "",
            "calibration": "",
            "plot_group": channel.plot_group or "",
        }
    return {
        "channel": channel.name,
        "role": "value",
        "unit": channel.unit,
        "raw_unit": channel.raw_unit or channel.field_unit or channel.unit,
        "kind": channel.kind,
        "device": channel.device,
        "field": channel.field,
        "calibration": channel.calibration,
        "plot_group": channel.plot_group or "",
    }


def field_metadata(meta: Mapping[str, str], role: str = "value") -> dict[bytes, bytes]:
    """Field metadata of one column of a channel: ``capa.<key>`` → value.

    ``role`` is ``value``, ``raw`` (``capa.unit`` becomes the raw unit) or ``status``
    (``capa.unit`` is empty: statuses have none).
    """
    out = dict(meta)
    out["role"] = role
    if role == "raw":
        out["unit"] = out.get("raw_unit", "")
    elif role == "status":
        out["unit"] = ""
    return {f"capa.{k}".encode(): str(out.get(k, "")).encode() for k in KEYS}


def channels_json(channels: Iterable[ChannelPlan | DerivedPlan]) -> str:
    """``capa.channels`` of ``scalars``: channel name → its description (sorted, compact)."""
    table = {c.name: channel_meta(c) for c in channels}
    return json.dumps(dict(sorted(table.items())), separators=(",", ":"), sort_keys=True)
