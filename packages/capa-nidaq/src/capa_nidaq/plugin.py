"""Entry point of the ``nidaq`` capa plugin (``[project.entry-points.capa] nidaq``).

The plugin host imports this module and collects the components its hook implementations
return. This distribution will provide the `nidaq.task` adapter (NI-DAQmx, polled and
hardware-clocked) and a simulated backend; none of those components exists yet, so the
plugin registers nothing and ``capa plugins list`` shows it loaded with no components.
"""
