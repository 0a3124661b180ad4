"""The root help (``capa --help``) from a cache, so printing it imports no click, no plugin.

Listing the commands needs their one-line descriptions, which live in the command modules
and, for plugin commands (``capa_register_cli``), in the plugins themselves: rendering the
list means importing all of them. The rendered text is therefore kept in the user's cache
directory (``$XDG_CACHE_HOME/capa``, else ``~/.cache/capa``) under a key that changes
whenever the listing could: capa's version and command modules, the interpreter, the
terminal width, the plugin mode and (production) the ``plugins.lock`` that applies, and
for every distribution declaring a ``capa`` entry point its metadata and the files of the
package it names (an edit to an editable install counts). A miss renders through click
as before (loading the plugins the mode allows) and stores the result.

Only stdlib modules that bare Python start-up has already loaded (``os``, ``sys``) plus
``zlib`` are used here: this module runs before anything else of capa.

The cache holds text only: nothing is imported because of it. In production mode a miss
loads plugins through the ``plugins.lock`` gate; running a listed command still goes
through that gate, so a plugin that lost its trust after the text was stored is refused.
"""

from __future__ import annotations

import os
import sys
import zlib

from capa import __version__

__all__ = ["FORMAT", "help_width", "load", "store"]

FORMAT = "capa-help-cache 1"
"""First line of a cache file; bump it when the layout or the key changes meaning."""

MAX_CONTENT_WIDTH = 100
"""The root group's ``max_content_width`` (:mod:`capa.cli.root` passes the same)."""

_MODE_ENV = "CAPA_PLUGIN_MODE"  # capa.trust.resolve.MODE_ENV (not imported: start-up cost)
_SEP = "\x1f"


def help_width() -> int:
    """The width click wraps the root help to: ``max(min(columns, 100) - 2, 50)``.

    ``columns`` is found exactly as :func:`shutil.get_terminal_size` finds it (``COLUMNS``,
    then the terminal of ``sys.__stdout__``, else 80), without importing shutil.
    """
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        out = sys.__stdout__
        try:
            columns = 0 if out is None else os.get_terminal_size(out.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0  # not a terminal (pipe, closed stdout): shutil's fallback below
        if columns <= 0:
            columns = 80
    return max(min(columns, MAX_CONTENT_WIDTH) - 2, 50)


def load() -> str | None:
    """The cached root help for this environment and width, or ``None`` (render it)."""
    key = _key(help_width())
    if key is None:
        return None
    try:
        with open(_path(key), encoding="utf-8") as fh:
            header = fh.readline()
            stored = fh.readline()
            sources = fh.readline()
            text = fh.read()
    except (OSError, UnicodeDecodeError):
        return None  # no cache yet, or unreadable: render through click instead
    if header != FORMAT + "\n" or stored != key + "\n" or not text:
        return None
    files = sources.rstrip("\n").split(_SEP)
    if sources.rstrip("\n") != _SEP.join(_file_stat(f.rsplit(" ", 2)[0]) for f in files):
        return None  # a command module or a plugin's source changed since
    return text


def store(text: str, width: int) -> None:
    """Keep ``text`` (the root help rendered at ``width``) for the next ``capa --help``.

    A cache that cannot be written only costs the next call its speed: the error is not
    reported, since the help has been printed correctly either way.
    """
    key = _key(width)
    if key is None or not text:
        return
    sources = _SEP.join(_file_stat(f) for f in _source_files())
    path = _path(key)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError:
        return  # read-only home, a file in the way: the next call renders through click
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(f"{FORMAT}\n{key}\n{_one_line(sources)}\n{text}")
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the new
    except OSError:
        # Full disk, read-only folder: leave no partial temp file behind if we can; if
        # even that fails, the pid-named leftover is never read (only `path` is).
        from contextlib import suppress

        with suppress(OSError):
            os.unlink(tmp)


def _cache_dir() -> str:
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "capa")


def _path(key: str) -> str:
    # One file per interpreter, mode and width, so two environments sharing a home do
    # not overwrite each other's text on every call; the full key inside decides.
    head = key.split(_SEP, 4)[:4]
    name = f"help-{zlib.crc32(_SEP.join(head).encode()):08x}.txt"
    return os.path.join(_cache_dir(), name)


def _one_line(text: str) -> str:
    return text.replace("\n", "\\n").replace("\r", "\\r")


def _key(width: int) -> str | None:
    """What the root help depends on, cheap to check: ``None`` if it cannot be cached.

    Besides version, interpreter, mode, width and lock: every distribution on ``sys.path``
    (its metadata directory's name, which carries the version) with the size and mtime of
    its ``entry_points.txt`` — a stat per distribution, no file read. Which of them are
    capa plugins, and their source files, is recorded at :func:`store` time; a change to
    the set of entry points changes this key first.
    """
    mode = os.environ.get(_MODE_ENV, "dev").strip().lower() or "dev"
    if mode not in ("dev", "production"):
        return None  # the slow path reports the bad value
    parts = [__version__, sys.executable, mode, str(width)]
    if mode == "production":
        parts.append(_lock_part())
    for folder in _search_folders():
        for name in _metadata_dirs(folder):
            parts.append(f"{name} {_file_stat(os.path.join(folder, name, 'entry_points.txt'))}")
    return _one_line(_SEP.join(parts))


def _lock_part() -> str:
    """The ``plugins.lock`` production mode would find (capa.trust.resolve's search order)."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    user = xdg if xdg else os.path.join(os.path.expanduser("~"), ".config")
    here = os.path.join(os.getcwd(), "plugins.lock")
    for path in (here, os.path.join(user, "capa", "plugins.lock")):
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            continue  # not there (or unreadable, which the gate reports): next place
        return f"lock {path} {len(data)} {zlib.crc32(data):08x}"
    return "lock none"


def _search_folders() -> list[str]:
    """``sys.path`` folders that may hold distributions (the standard library holds none)."""
    stdlib = os.path.dirname(os.__file__)
    skip = {stdlib, os.path.join(stdlib, "lib-dynload")}
    return [entry or os.getcwd() for entry in sys.path if (entry or os.getcwd()) not in skip]


def _metadata_dirs(folder: str) -> list[str]:
    try:
        names = os.listdir(folder)
    except OSError:
        # Not a folder: a zip on sys.path (its stat stands for its contents) or nothing.
        return [] if not os.path.exists(folder) else [""]
    return sorted(n for n in names if n.endswith((".dist-info", ".egg-info")))


def _file_stat(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return f"{path} - -"
    return f"{path} {st.st_mtime_ns} {st.st_size}"


def _source_files() -> list[str]:
    """The command modules of capa and the source files of every installed capa plugin."""
    files = _tree(os.path.dirname(os.path.abspath(__file__)), recursive=False)
    for folder in _search_folders():
        for name in _metadata_dirs(folder):
            section = _capa_section(os.path.join(folder, name, "entry_points.txt"))
            for value in section or ():
                module = value.partition("=")[2].strip().partition(":")[0]
                if module:
                    files += _package_files(module.split(".")[0])
    return files


def _capa_section(path: str) -> list[str] | None:
    """The lines of the ``[capa]`` section of an ``entry_points.txt``, if it has one."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError):
        return None  # no entry points (or unreadable: importlib.metadata skips it too)
    lines: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            if lines is not None:
                break
            if line == "[capa]":
                lines = []
        elif lines is not None and line and not line.startswith(("#", ";")):
            lines.append(line)
    return lines


def _package_files(top: str) -> list[str]:
    """Every source file of the top-level module ``top`` as found on ``sys.path``."""
    for entry in sys.path:
        base = os.path.join(entry or os.getcwd(), top)
        if os.path.isdir(base):
            return _tree(base, recursive=True)
        if os.path.isfile(base + ".py"):
            return [base + ".py"]
    return [os.path.join("<missing>", top)]


def _tree(folder: str, *, recursive: bool) -> list[str]:
    files = []
    for here, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__") if recursive else []
        files += [os.path.join(here, n) for n in sorted(names) if n.endswith(".py")]
    return files
