"""Local camera discovery without opening anything (read-only, instant).

On Linux every V4L2 capture device is ``/dev/video<N>`` with its name in
``/sys/class/video4linux/video<N>/name``; OpenCV opens it as device index ``N``. Other
platforms offer no such listing without opening devices, so nothing is reported there.
"""

from __future__ import annotations

import re
from pathlib import Path

from capa import DiscoveredDevice

__all__ = ["discover_v4l2"]

_VIDEO = re.compile(r"^video(\d+)$")


def discover_v4l2(
    adapter_id: str, sysfs: Path = Path("/sys/class/video4linux")
) -> list[DiscoveredDevice]:
    """One entry per ``/sys/class/video4linux/video<N>`` (source index ``N``)."""
    if not sysfs.is_dir():
        return []
    found = []
    for entry in sorted(sysfs.iterdir(), key=lambda p: p.name):
        match = _VIDEO.match(entry.name)
        if match is None:
            continue
        index = int(match.group(1))
        try:
            name = (entry / "name").read_text().strip()
        except OSError:
            name = "video device"
        found.append(
            DiscoveredDevice(
                adapter=adapter_id,
                resource_id=f"camera:{index}",
                description=f"{name} (/dev/video{index})",
                params={"source": index},
            )
        )
    return sorted(found, key=lambda d: int(d.params["source"]))
