"""Entry point of the ``watlow`` capa plugin (``[project.entry-points.capa] watlow``).

The plugin host imports this module and collects the components its hook implementations
return. This distribution will provide the `watlow.ezzone_pm` adapter (Standard Bus and
Modbus RTU) and its wire-level simulator; none of those components exists yet, so the
plugin registers nothing and ``capa plugins list`` shows it loaded with no components.
"""
