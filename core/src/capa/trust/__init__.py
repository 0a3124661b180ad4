"""Plugin trust: ``plugins.lock``, the installed-distribution digest, production mode.

In production mode (``CAPA_PLUGIN_MODE=production``) a plugin is imported only if
``plugins.lock`` names it with the exact distribution, version and entry point installed
and the digest of its installed files equals the lock's (:mod:`capa.trust.digest`).
The modules here read metadata and files only; none of them imports a plugin.

- :mod:`capa.trust.lockfile` — parse/write ``plugins.lock``.
- :mod:`capa.trust.digest` — the record digest, editable and unlisted-file detection.
- :mod:`capa.trust.drift` — comparing installed plugins with the lock.
- :mod:`capa.trust.gate` — the pre-import admission gate for the plugin host.
- :mod:`capa.trust.guard` — the import hook: locked source files only, no cached bytecode.
- :mod:`capa.trust.hooks` — start-up hooks (``.pth``, ``sitecustomize``) recorded in the lock.
- :mod:`capa.trust.resolve` — lock resolution and the mode switch.
- :mod:`capa.trust.journal` — the append-only trust journal.
- :mod:`capa.trust.sigstore` — offline Sigstore / PEP 740 verification (optional extra).
- :mod:`capa.trust.manage` — trusting, untrusting and locking plugins.
"""
