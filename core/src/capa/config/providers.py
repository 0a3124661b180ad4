"""Which distribution provides a component id that is not installed, when capa knows.

``pip install capa capa-watlow`` is a complete rig for a free run; a recipe needs
``capa-procedures`` too. When an experiment names a component no loaded plugin provides,
the error says which package to install instead of only listing what is there.
"""

from __future__ import annotations

from importlib import metadata

__all__ = ["KNOWN_PROVIDERS", "provider_hint"]

KNOWN_PROVIDERS: dict[str, dict[str, str]] = {
    "procedure": {
        "capa.builtin.recipe_runner": "capa-procedures",
        "capa.builtin.heat_flux_tune": "capa-procedures",
        "capa.builtin.batch": "capa-procedures",
    },
    "step": dict.fromkeys(
        ("setpoint", "hold", "ramp", "wait", "prompt", "acquire", "safe_shutdown"),
        "capa-procedures",
    ),
    "adapter": {
        "watlow.ezzone_pm": "capa-watlow",
        "sartorius.balance": "capa-sartorius",
        "nidaq.task": "capa-nidaq",
        "camera.opencv": "capa-camera",
    },
}
"""Component kind -> id -> the distribution of this project that provides it."""


def provider_hint(kind: str, component_id: str) -> str:
    """``"; provided by capa-procedures (pip install capa-procedures)"``, or ``""``.

    When the distribution is installed but did not provide the id (it failed to load, or
    plugins.lock blocked it), the hint says so and points at ``capa plugins list``.
    """
    dist = KNOWN_PROVIDERS.get(kind, {}).get(component_id)
    if dist is None:
        return ""
    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return f"; it is provided by {dist}, which is not installed (pip install {dist})"
    return f"; it is provided by {dist}, which is installed but did not load (capa plugins list)"
