"""The production import guard: trusted plugins execute exactly the source bytes locked.

The gate (:mod:`capa.trust.gate`) checks a plugin's files before its first import; this
module closes what a file check alone cannot:

- **Cached bytecode.** CPython runs ``__pycache__/<module>.cpython-3XX.pyc`` instead of
  the source whenever the cache's header matches the source's size and mtime, so a
  tampered cache would run in place of locked source. The guard's loader never reads (or
  writes) a cache: it compiles the source file itself.
- **Time of check to time of use.** The loader re-hashes each source file as it reads it
  and refuses bytes that differ from what the gate admitted.
- **Anything else the finder would pick.** A module of a guarded package is imported only
  from a file the lock covers, by the source loader (or, for a locked extension module,
  the extension loader). A sourceless ``__init__.pyc``, a namespace package, a module
  shadowed from another ``sys.path`` entry: :class:`ImportError` naming the file.

Top-level packages of *blocked* plugins are guarded with nothing admitted, so a trusted
plugin cannot import them either. Modules outside every plugin's packages (capa, the
standard library, dependencies) are left to the normal import system.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from importlib.machinery import ModuleSpec
from types import CodeType, ModuleType

__all__ = ["ImportGuard", "VerifiedSourceLoader", "install_guard"]


class VerifiedSourceLoader(importlib.machinery.SourceFileLoader):
    """A source loader that compiles the pinned file and never touches ``__pycache__``.

    Args:
        fullname: the module name.
        path: the source file.
        sha256: the hex digest the file's bytes must have.
    """

    def __init__(self, fullname: str, path: str, sha256: str) -> None:
        super().__init__(fullname, path)
        self.sha256 = sha256

    def get_code(self, fullname: str) -> CodeType:
        """Read, re-hash and compile the source; cached bytecode is never consulted."""
        data = self.get_data(self.path)
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise ImportError(
                f"{fullname}: {self.path} changed after plugins.lock admitted it "
                "(production mode refuses to import it)",
                name=fullname,
            )
        return self.source_to_code(data, self.path)


class ImportGuard:
    """A ``sys.meta_path`` finder for the top-level packages of gated plugins.

    ``files`` maps a real path to the sha256 the lock admitted; a guarded top-level name
    with no admitted file (a blocked plugin's package) cannot be imported at all.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, dict[str, str]] = {}

    def guard(self, tops: Sequence[str], files: Mapping[str, str] | None = None) -> None:
        """Guard ``tops``; admit ``files`` ({real path: sha256}) for them (none if blocked)."""
        with self._lock:
            for top in tops:
                admitted = self._files.setdefault(top, {})
                if files:
                    admitted.update(files)

    def guarded(self, top: str) -> bool:
        """Whether imports of top-level package ``top`` go through the guard."""
        return top in self._files

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        """The locked spec of ``fullname``, ``None`` if not guarded, else ImportError."""
        top = fullname.partition(".")[0]
        admitted = self._files.get(top)
        if admitted is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None:
            return None
        origin = spec.origin
        if origin is None or not spec.has_location:
            raise ImportError(
                f"{fullname}: namespace or built-in package in a guarded plugin package "
                "(production mode imports only files plugins.lock pins)",
                name=fullname,
            )
        real = os.path.realpath(origin)
        expected = admitted.get(real)
        loader = spec.loader
        if expected is None:
            raise ImportError(
                f"{fullname}: {origin} is not a file plugins.lock pins "
                "(production mode refuses to import it)",
                name=fullname,
                path=origin,
            )
        if type(loader) is importlib.machinery.SourceFileLoader:
            spec.loader = VerifiedSourceLoader(fullname, origin, expected)
            spec.cached = None  # no cache is read or written for this module
            return spec
        if type(loader) is importlib.machinery.ExtensionFileLoader:
            with open(origin, "rb") as f:  # locked compiled extension: re-hash it
                if hashlib.file_digest(f, "sha256").hexdigest() == expected:
                    return spec
        raise ImportError(
            f"{fullname}: {origin} would be loaded by {type(loader).__name__}, not from its "
            "pinned source (production mode refuses it)",
            name=fullname,
            path=origin,
        )

    def invalidate_caches(self) -> None:
        """Nothing is cached here (``importlib.invalidate_caches`` calls this)."""


_GUARD: ImportGuard | None = None
_INSTALL_LOCK = threading.Lock()


def install_guard() -> ImportGuard:
    """The process's guard, inserted first in ``sys.meta_path`` (once)."""
    global _GUARD  # noqa: PLW0603 - one guard per process, like sys.meta_path itself
    with _INSTALL_LOCK:
        if _GUARD is None:
            _GUARD = ImportGuard()
        if _GUARD not in sys.meta_path:
            sys.meta_path.insert(0, _GUARD)
        return _GUARD
