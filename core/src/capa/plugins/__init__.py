"""Plugin discovery, contract checks and the plugin host."""
