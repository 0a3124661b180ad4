"""Entry point of the ``camera`` capa plugin (``[project.entry-points.capa] camera``).

Kept cheap to import: the adapter is imported inside the hook, OpenCV only when a source
is opened or a frame is encoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import capa

if TYPE_CHECKING:
    import click


@capa.hookimpl
def capa_register_adapters() -> Sequence[type[capa.Adapter]]:
    """The ``camera.opencv`` adapter."""
    from capa_camera.adapter import OpenCvCamera

    return (OpenCvCamera,)


@capa.hookimpl
def capa_register_cli(group: click.Group) -> None:
    """Add the ``capa camera`` group (``segments``, ``join``)."""
    from capa_camera.cli import camera

    group.add_command(camera)
