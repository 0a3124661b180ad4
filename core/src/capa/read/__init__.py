"""Reading run bundles: :func:`open_bundle` and the :class:`Bundle` it returns.

See :mod:`capa.read.bundle`; ``capa.open_bundle`` is the public name.
"""

from capa.read.bundle import Artifact, Bundle, open_bundle
from capa.read.frame import Frame
from capa.read.meta import ChannelInfo

__all__ = ["Artifact", "Bundle", "ChannelInfo", "Frame", "open_bundle"]
