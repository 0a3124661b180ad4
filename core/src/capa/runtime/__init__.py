"""The runtime: workers, pool, conductor, channel pipeline and headless runs."""
