"""Entry point of the ``sartorius`` capa plugin (``[project.entry-points.capa] sartorius``).

The plugin host imports this module and collects the components its hook implementations
return. This distribution will provide the `sartorius.balance` adapter (SBI and xBPI)
and its wire-level simulator; none of those components exists yet, so the plugin
registers nothing and ``capa plugins list`` shows it loaded with no components.
"""
