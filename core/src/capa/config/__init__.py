"""Configuration files: loading, models, calibrations and layered validation.

Nothing is imported here on purpose: ``capa.config.validate`` pulls in pydantic and the
component contracts, which ``capa --help`` must not pay for.
"""
