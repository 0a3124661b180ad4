"""Component contracts: the base classes plugins subclass and the values they exchange.

Four kinds of component exist — adapters, procedures, method steps and sinks. Each is a
class with a stable string id, a nested pydantic model for its configuration that rejects
unknown keys, and a docstring. Plugins register the classes through the hooks in
:mod:`capa.hookspecs`; the :class:`~capa.plugins.host.PluginHost` checks every class against
its contract before it accepts it.
"""
