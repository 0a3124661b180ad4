"""What a bundle says about its channels, for schema version 2 and version 1.

Version 2 bundles describe themselves: every wide ``samples/<device>/`` column carries
``capa.*`` field metadata and ``scalars.parquet`` carries a ``capa.channels`` JSON object
(core/docs/bundle-schema.md). Version 1 bundles do not; for them the channel facts are
taken from the hardware file copied into ``config/`` and from the manifest's
``recording.derived`` block, which is what the run itself was configured with.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "ChannelInfo",
    "calibration_summary",
    "channels_from_config",
    "channels_from_scalars_schema",
    "channels_from_wide_schema",
]

Layout = Literal["long", "wide"]

_KEYS = ("unit", "raw_unit", "kind", "device", "field", "calibration", "plot_group")


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """One channel of a bundle and where its samples are.

    Attributes:
        name: channel name.
        unit: unit of the calibrated value.
        raw_unit: unit before calibration (the device field's unit); ``""`` when unknown.
        kind: what the channel measures (``temperature``, ``mass``, ``derived``, ...).
        device: device it reads (``derived`` for derived channels).
        field: device field it reads (``""`` for derived channels).
        calibration: one-line calibration summary (``identity``, ``linear slope=2 ...``).
        plot_group: plot group from the hardware file (``""``: none).
        layout: ``long`` (rows in ``scalars.parquet``) or ``wide`` (a column of
            ``samples/<device>/``).
        table: the file or folder holding it, relative to the bundle.
        has_raw: whether uncalibrated values were kept (``keep_raw``).
    """

    name: str
    unit: str = ""
    raw_unit: str = ""
    kind: str = ""
    device: str = ""
    field: str = ""
    calibration: str = ""
    plot_group: str = ""
    layout: Layout = "long"
    table: str = "scalars.parquet"
    has_raw: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The facts as a plain dict (JSON-ready)."""
        return asdict(self)

    @property
    def source_field(self) -> str:
        """``device.field``, or ``derived``: the ``source_field`` of its long rows."""
        if self.device in ("derived", "") or not self.field:
            return "derived" if self.device in ("derived", "") else self.device
        return f"{self.device}.{self.field}"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _format_number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def calibration_summary(calibration: Any) -> str:
    """One line for a calibration table from a hardware file (``identity`` when absent)."""
    if not isinstance(calibration, Mapping):
        return "identity"
    kind = str(calibration.get("kind", "identity"))
    parts = [kind]
    for key in sorted(k for k in calibration if k != "kind"):
        value = calibration[key]
        if isinstance(value, list | tuple):
            text = "[" + ",".join(_format_number(v) for v in value) + "]"
            if len(text) > 60:  # a lookup table: say how big, not every point
                text = f"<{len(value)} points>"
        else:
            text = _format_number(value)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _decode(metadata: Mapping[bytes, bytes] | None) -> dict[str, str]:
    if not metadata:
        return {}
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in metadata.items()}


def _channels_json(raw: str | None) -> dict[str, dict[str, Any]]:
    """A ``capa.channels`` JSON object: channel -> facts (malformed parts ignored)."""
    if not raw:
        return {}
    try:
        described = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    if not isinstance(described, dict):
        return {}
    return {str(k): v for k, v in described.items() if isinstance(v, dict)}


def channels_from_wide_schema(schema: pa.Schema, device: str, table: str) -> dict[str, ChannelInfo]:
    """Channels of one wide ``samples/<device>/`` table, from its field metadata.

    A file-level ``capa.channels`` object (the form DuckDB can read) fills in whatever
    a column's own metadata leaves out.
    """
    names = set(schema.names)
    described = _channels_json(_decode(schema.metadata).get("capa.channels"))
    out: dict[str, ChannelInfo] = {}
    for field in schema:
        if field.name == "t_mono_ns":
            continue
        facts = described.get(field.name, {})
        meta = {
            **{f"capa.{k.removeprefix('capa.')}": _text(v) for k, v in facts.items()},
            **{k: v for k, v in _decode(field.metadata).items() if v != ""},
        }
        role = meta.get("capa.role", "value")
        if role != "value" or field.name.endswith((".raw", ".status")):
            continue
        out[field.name] = ChannelInfo(
            name=meta.get("capa.channel", field.name) or field.name,
            unit=meta.get("capa.unit", ""),
            raw_unit=meta.get("capa.raw_unit", ""),
            kind=meta.get("capa.kind", ""),
            device=meta.get("capa.device", device) or device,
            field=meta.get("capa.field", ""),
            calibration=meta.get("capa.calibration", ""),
            plot_group=meta.get("capa.plot_group", ""),
            layout="wide",
            table=table,
            has_raw=f"{field.name}.raw" in names,
        )
    return out


def channels_from_scalars_schema(schema: pa.Schema) -> dict[str, ChannelInfo]:
    """Channels listed in ``scalars.parquet``'s ``capa.channels`` metadata (version 2)."""
    meta = _decode(schema.metadata)
    raw = meta.get("capa.channels")
    if raw is None and "channel" in schema.names:
        raw = _decode(schema.field("channel").metadata).get("capa.channels")
    out: dict[str, ChannelInfo] = {}
    for name, facts in _channels_json(raw).items():
        keyed = {k.removeprefix("capa."): v for k, v in facts.items()}
        out[str(name)] = ChannelInfo(
            name=str(name),
            **{k: _text(keyed.get(k)) for k in _KEYS},
            layout="long",
            table="scalars.parquet",
            has_raw=bool(keyed.get("keep_raw", False)),
        )
    return out


def _hardware_file(config_dir: Path) -> dict[str, Any] | None:
    """The hardware file copied into ``config/``: the TOML that declares channels."""
    if not config_dir.is_dir():
        return None
    for path in sorted(config_dir.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue  # not the hardware file (or unreadable): the others may be
        if isinstance(data.get("channels"), list) or isinstance(data.get("devices"), list):
            return data
    return None


def channels_from_config(bundle: Path, manifest: Mapping[str, Any]) -> dict[str, ChannelInfo]:
    """Channel facts of a version-1 bundle: its hardware file and ``recording.derived``."""
    out: dict[str, ChannelInfo] = {}
    hardware = _hardware_file(bundle / "config") or {}
    for entry in hardware.get("channels", []) or []:
        if not isinstance(entry, dict) or not entry.get("name"):
            continue
        found = entry.get("source")
        source: dict[str, Any] = found if isinstance(found, dict) else {}
        raw_unit = _text(entry.get("unit"))
        out[str(entry["name"])] = ChannelInfo(
            name=str(entry["name"]),
            unit=_text(entry.get("derived_unit")) or raw_unit,
            raw_unit=raw_unit,
            kind=_text(entry.get("kind")),
            device=_text(source.get("device")),
            field=_text(source.get("field")),
            calibration=calibration_summary(entry.get("calibration")),
            plot_group=_text(entry.get("plot_group")),
            has_raw=bool(entry.get("keep_raw", False)),
        )
    derived: dict[str, Any] = {}
    for entry in hardware.get("derived", []) or []:
        if isinstance(entry, dict) and entry.get("name"):
            derived[str(entry["name"])] = entry
    recording = manifest.get("recording")
    if isinstance(recording, dict) and isinstance(recording.get("derived"), dict):
        derived.update({str(k): v for k, v in recording["derived"].items() if isinstance(v, dict)})
    for name, entry in derived.items():
        out[name] = ChannelInfo(
            name=name,
            unit=_text(entry.get("unit")),
            raw_unit="",
            kind=_text(entry.get("kind")) or "derived",
            device="derived",
            field="",
            calibration=f"expression {entry.get('expression', '')}".strip(),
            plot_group=_text(entry.get("plot_group")),
        )
    return out
