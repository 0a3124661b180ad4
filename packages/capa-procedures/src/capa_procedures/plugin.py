"""Entry point of the ``procedures`` capa plugin (``[project.entry-points.capa] procedures``).

The plugin host imports this module and collects the components its hook implementations
return. This distribution will provide `capa.builtin.free_run`, `recipe_runner`,
`batch`, `heat_flux_tune`, the method executor and the step kinds `setpoint`, `hold`,
`ramp`, `wait`, `prompt`, `acquire`, `safe_shutdown`; none of those components exists
yet, so the plugin registers nothing and ``capa plugins list`` shows it loaded with no
components.
"""
