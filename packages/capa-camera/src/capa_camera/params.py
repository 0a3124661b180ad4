"""Parameters of a ``camera.opencv`` device."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, model_validator

from capa import ConfigModel

__all__ = ["CameraParams", "SimPattern", "parse_sim_url", "source_kind"]

SourceKind = Literal["sim", "device", "file", "network"]

_FOURCC = re.compile(r"^[A-Za-z0-9 ]{4}$")


class SimPattern(ConfigModel):
    """Options of the synthetic source, from the query of ``sim://?...``."""

    seed: int = 0
    speed_px_s: float = Field(default=40.0, description="How fast the bar moves.")
    drop_every: int = Field(
        default=0, ge=0, description="Skip every Nth source frame (tests of frame loss)."
    )


def parse_sim_url(source: str) -> SimPattern:
    """Options of a ``sim://`` source.

    Raises:
        ValueError: an unknown or malformed query key.
    """
    query = parse_qs(urlsplit(source).query, keep_blank_values=True)
    values: dict[str, str] = {}
    for key, vals in query.items():
        if key not in SimPattern.model_fields:
            known = ", ".join(sorted(SimPattern.model_fields))
            raise ValueError(f"unknown sim:// option {key!r}; known: {known}")
        values[key] = vals[-1]
    return SimPattern.model_validate(values)


def source_kind(source: str | int) -> SourceKind:
    """What a ``source`` names: the simulator, a local device, a network URL or a file."""
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return "device"
    if source.startswith("sim://"):
        return "sim"
    scheme = urlsplit(source).scheme.lower()
    if scheme in {"http", "https", "rtsp", "rtsps", "rtmp", "udp", "tcp"}:
        return "network"
    return "file"


class CameraParams(ConfigModel):
    """Parameters of a ``camera.opencv`` device."""

    source: str | int = Field(
        description="Device index (0), video file path, URL (http://host/stream.mjpg, "
        "rtsp://...) or sim:// (synthetic pattern; sim://?speed_px_s=60)."
    )
    width: int = Field(default=640, ge=16, le=8192, description="Frame width (sim, devices).")
    height: int = Field(default=480, ge=16, le=8192, description="Frame height (sim, devices).")
    fps: float = Field(
        default=15.0, gt=0, le=1000, description="Frames per second (sim, devices, recording)."
    )
    codec: str = Field(default="MJPG", description="FourCC of the recording (MJPG, XVID, mp4v).")
    container: Literal["avi", "mp4", "mkv"] = Field(default="avi", description="File type.")
    record: bool = Field(default=True, description="Write video/<name>/<segment>.<container>.")
    segment_s: float = Field(
        default=1.0,
        ge=0.05,
        le=3600,
        description="Seconds per video segment: what a hard kill can lose at most.",
    )
    queue_frames: int = Field(
        default=64, ge=1, le=10_000, description="Frames buffered for the encoder before drops."
    )
    jpeg_quality: int = Field(
        default=80, ge=10, le=100, description="JPEG quality of snapshot() and MJPG recordings."
    )
    reconnect_interval_s: float = Field(
        default=0.5, gt=0, description="Wait between attempts to reopen a lost source."
    )
    timeout_s: float = Field(
        default=3.0, gt=0, description="Open and read timeout of network sources."
    )
    resource: str | None = Field(
        default=None, description="Resource name override (default: derived from the source)."
    )

    @model_validator(mode="after")
    def _check(self) -> CameraParams:
        if not _FOURCC.match(self.codec):
            raise ValueError(f"codec {self.codec!r} must be a four-character code like MJPG")
        if isinstance(self.source, str):
            if not self.source.strip():
                raise ValueError("source must not be empty")
            if self.kind == "sim":
                parse_sim_url(self.source)
        return self

    @property
    def kind(self) -> SourceKind:
        """What the source is."""
        return source_kind(self.source)
