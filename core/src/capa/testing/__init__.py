"""Test support for capa and for plugin authors.

Installed with core and registered as a pytest plugin (entry point ``pytest11``), so any
project with capa installed gets these fixtures:

- ``capa_host``: an isolated :class:`~capa.PluginHost` holding only core's built-in
  plugin — installed plugins are *not* autoloaded; register yours with
  ``capa_host.register(module, name="mine")``.
- ``capa_site``: a temporary directory on ``sys.path`` in which
  :func:`make_distribution` writes throwaway distributions (real ``.dist-info``
  metadata with entry points), removed with everything imported from it afterwards.
- ``capa_runs_root``: a temporary runs root, also exported as ``CAPA_RUNS_ROOT``.

Tests marked ``@pytest.mark.hardware`` are skipped unless ``CAPA_HARDWARE_TESTS=1``.

Conformance checks (:func:`check_adapter`, :func:`check_procedure`, :func:`check_step`,
:func:`check_sink`) run the plugin host's contract checks on a class and fail with every
reason at once.
"""

from __future__ import annotations

from capa.testing.conformance import (
    check_adapter,
    check_procedure,
    check_profile,
    check_sink,
    check_step,
)
from capa.testing.distributions import make_distribution

__all__ = [
    "check_adapter",
    "check_procedure",
    "check_profile",
    "check_sink",
    "check_step",
    "make_distribution",
]
