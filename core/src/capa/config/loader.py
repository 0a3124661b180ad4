"""Reading configuration files: YAML or TOML by suffix, with line numbers where known.

Every way a file can be unusable (missing, a directory, a FIFO or device, a symlink loop,
empty, binary, oversized, malformed, nested too deep, an integer too large, an alias bomb,
part of an include cycle) becomes a :class:`ConfigFileError` carrying one
:class:`~capa.problems.Problem`, so callers report it like any other validation finding.
The hard limits are checked before parsing where possible (size and file type from
``stat``, YAML nesting from the parser's event stream before any tree is built), so no
input makes loading hang, exhaust memory or raise anything else. Nothing here writes.

This module reads files (type, size, encoding), holds the limits and the shared error and
location types, and checks the parsed values; the parsers themselves are in
:mod:`capa.config.loader_yaml` and :mod:`capa.config.loader_toml`.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from capa.errors import ConfigError
from capa.problems import Problem, Severity

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "MAX_INT_BITS",
    "ConfigFileError",
    "Document",
    "LoadStack",
    "Loc",
    "format_loc",
    "load_document",
    "resolve_path",
    "safe_resolve",
]

MAX_CONFIG_BYTES = 1024 * 1024
"""Largest configuration file accepted (1 MiB); anything bigger is not a config file.

A rig with a 10,000-point calibration lookup table is about 200 kB. The limit bounds
the worst case: the pure-Python TOML parser needs seconds per MiB of dense arrays.
"""

MAX_DEPTH = 64
"""Deepest nesting of tables and lists accepted (real files nest fewer than 10 levels).

Both parsers and everything downstream (pydantic, JSON encoding of the manifest) recurse
per level; a bound far below Python's recursion limit keeps all of them safe.
"""

MAX_ALIAS_NODES = 100_000
"""How many values YAML aliases may add beyond those written in the file.

Aliases that share a few parameter tables add little; a "billion laughs" alias bomb
would expand to hundreds of millions of values and exhaust memory in the run.
"""

MAX_INT_BITS = 64
"""Integers must fit in 64 bits (a larger one is a typo, and breaks Arrow and SQLite)."""

YAML_SUFFIXES = (".yaml", ".yml")
TOML_SUFFIXES = (".toml",)

Loc = tuple[str | int, ...]
"""A location inside a document: keys and list indices (``("devices", 1, "params")``)."""


class ConfigFileError(ConfigError):
    """A file could not be read as a configuration document.

    Attributes:
        problem: the finding, with code ``file.*`` and the file as its source.
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


def format_loc(loc: Sequence[str | int]) -> str:
    """Render a location as ``devices[1].params.port``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class Document:
    """A parsed configuration file.

    Attributes:
        path: the file, resolved.
        data: its top-level table.
        lines: 1-based line numbers of the locations the parser could place.
    """

    path: Path
    data: dict[str, Any]
    lines: Mapping[Loc, int] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """The file name as shown in messages."""
        return str(self.path)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """Line of ``loc``, or of its nearest enclosing location the parser placed."""
        parts = tuple(loc)
        while parts:
            line = self.lines.get(parts)
            if line is not None:
                return line
            parts = parts[:-1]
        return None


def _fail(path: Path, code: str, message: str, line: int | None = None) -> ConfigFileError:
    return ConfigFileError(Problem(Severity.ERROR, code, "", message, str(path), line))


def resolve_path(value: str, relative_to: Path) -> Path:
    """Resolve a path written inside a file relative to that file's directory.

    Raises :class:`ConfigFileError` (code ``file.bad_path``, source ``relative_to``) for a
    path that names no file at all: a NUL byte, or ``~user`` of an unknown user.
    """
    if "\x00" in value:
        raise _fail(relative_to, "file.bad_path", "a path cannot contain a NUL byte")
    try:
        candidate = Path(value).expanduser()
    except RuntimeError:
        user = value.split("/", 1)[0]
        raise _fail(
            relative_to, "file.bad_path", f"cannot expand {user!r} (no such user)"
        ) from None
    if not candidate.is_absolute():
        candidate = relative_to.parent / candidate
    return safe_resolve(candidate)


def safe_resolve(path: Path) -> Path:
    """``path.resolve()``, or the absolute path when it cannot be resolved (a symlink loop).

    Python 3.11 raises on a symlink loop, 3.13 does not; either way the file itself is
    then refused by :func:`load_document` with a clear ``file.symlink_loop``.
    """
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return path.absolute()


class LoadStack:
    """Files currently being loaded, to refuse include cycles with the whole chain."""

    def __init__(self) -> None:
        self._stack: list[Path] = []

    @contextmanager
    def entering(self, path: Path) -> Iterator[None]:
        """Mark ``path`` as being loaded; raises if it already is (a cycle)."""
        resolved = safe_resolve(path)
        if resolved in self._stack:
            chain = " -> ".join(p.name for p in [*self._stack, resolved])
            raise _fail(resolved, "file.cycle", f"include cycle: {chain}")
        self._stack.append(resolved)
        try:
            yield
        finally:
            self._stack.pop()


def load_document(path: Path, *, max_bytes: int = MAX_CONFIG_BYTES) -> Document:
    """Read and parse one configuration file, YAML or TOML chosen by its suffix.

    The hard limits (size, nesting depth, integer size, alias expansion, regular files
    only) are checked before or while parsing, so no input can make this hang, exhaust
    memory or raise anything but :class:`ConfigFileError`.
    """
    path = Path(path)
    _stat_regular(path, max_bytes)  # first: a symlink to /dev/zero has no useful suffix
    suffix = path.suffix.lower()
    if suffix not in YAML_SUFFIXES + TOML_SUFFIXES:
        raise _fail(
            path,
            "file.unsupported_suffix",
            f"unsupported file type {suffix or '(none)'!r}; use .yaml, .yml or .toml",
        )
    text = _read_text(path, max_bytes)
    # Imported here: the parser modules build on this one's errors and limits.
    if suffix in TOML_SUFFIXES:
        from capa.config.loader_toml import parse_toml

        data, lines = parse_toml(path, text)
    else:
        from capa.config.loader_yaml import parse_yaml

        data, lines = parse_yaml(path, text)
    _check_values(path, data, lines)
    return Document(safe_resolve(path), data, lines)


_FILE_TYPES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(path: Path, mode: int) -> ConfigFileError:
    what = next((name for test, name in _FILE_TYPES if test(mode)), "not a regular file")
    return _fail(path, "file.not_regular", f"is {what}, expected a regular file")


def _read_text(path: Path, max_bytes: int) -> str:
    raw = _read_bounded(path, max_bytes)
    if b"\x00" in raw[:8192]:
        raise _fail(path, "file.binary", "binary file (contains NUL bytes), expected text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(
            path, "file.encoding", f"not UTF-8 text (bad byte at offset {exc.start})"
        ) from None
    if "\x00" in text:
        raise _fail(path, "file.binary", "binary file (contains NUL bytes), expected text")
    if not text.strip():
        raise _fail(path, "file.empty", "file is empty")
    return text


def _stat_regular(path: Path, max_bytes: int) -> None:
    """Refuse, from ``stat()`` alone, anything that is not a regular file of sane size.

    Decided before the file is opened: a FIFO would block open() and read() forever,
    /dev/zero would never end, a huge file would fill memory.
    """
    try:
        info = os.stat(path)
    except ValueError:
        raise _fail(path, "file.bad_path", "a path cannot contain a NUL byte") from None
    except OSError as exc:
        raise _os_error(path, exc) from None
    if stat.S_ISDIR(info.st_mode):
        raise _fail(path, "file.is_directory", "is a directory, expected a file")
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(path, info.st_mode)
    if info.st_size > max_bytes:
        raise _too_large(path, info.st_size, max_bytes)


def _read_bounded(path: Path, max_bytes: int) -> bytes:
    _stat_regular(path, max_bytes)
    try:
        # O_NONBLOCK: should the path be swapped for a FIFO after the stat, open() must
        # not wait for a writer; fstat() below then refuses it.
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
        fd = os.open(path, flags)
        with os.fdopen(fd, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise _not_regular(path, mode)
            raw = fh.read(max_bytes + 1)  # bounded even if the file grew meanwhile
    except OSError as exc:
        raise _os_error(path, exc) from None
    if len(raw) > max_bytes:
        raise _too_large(path, len(raw), max_bytes)
    return raw


def _os_error(path: Path, exc: OSError) -> ConfigFileError:
    if exc.errno == errno.ELOOP:
        return _fail(
            path, "file.symlink_loop", "symbolic link loop (the link points back at itself)"
        )
    if exc.errno == errno.ENOENT:
        return _fail(path, "file.not_found", "file not found")
    return _fail(path, "file.unreadable", f"cannot read file: {exc.strerror or exc}")


def _too_large(path: Path, size: int, max_bytes: int) -> ConfigFileError:
    return _fail(
        path,
        "file.too_large",
        f"file is {size:,} bytes; configuration files are limited to {max_bytes:,} bytes "
        f"({max_bytes / 2**20:g} MiB)",
    )


# ------------------------------------------------------------------------ value limits
_SCALARS = (str, bool, int, float, type(None), datetime, date, time)


def _check_values(path: Path, data: Any, lines: Mapping[Loc, int]) -> None:
    """Refuse values no model should have to meet: too deep, huge integers, inf/nan, bytes.

    Walks the parsed data without recursion. Aliased YAML values were bounded before
    construction, and recursive ones refused, so the walk is finite.
    """
    pending: list[tuple[Any, Loc]] = [(data, ())]
    while pending:
        value, loc = pending.pop()
        if len(loc) > MAX_DEPTH:
            raise _value_error(path, lines, loc[:MAX_DEPTH], "file.too_deep", _deep_message())
        if isinstance(value, dict):
            pending.extend((v, (*loc, str(k))) for k, v in value.items())
        elif isinstance(value, list | tuple):
            pending.extend((v, (*loc, i)) for i, v in enumerate(value))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if value.bit_length() > MAX_INT_BITS:
                raise _value_error(
                    path,
                    lines,
                    loc,
                    "file.number_out_of_range",
                    f"integer with {len(str(value))} digits is out of range "
                    f"(integers must fit in {MAX_INT_BITS} bits)",
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise _value_error(
                    path,
                    lines,
                    loc,
                    "file.number_out_of_range",
                    f"{value} is not a usable number; write a finite value",
                )
        elif not isinstance(value, _SCALARS):
            raise _value_error(
                path,
                lines,
                loc,
                "file.unsupported_value",
                f"values of type {type(value).__name__} are not supported "
                "(use text, numbers, booleans, lists and tables)",
            )


def _deep_message() -> str:
    return f"nested more than {MAX_DEPTH} levels deep"


def _value_error(
    path: Path, lines: Mapping[Loc, int], loc: Loc, code: str, message: str
) -> ConfigFileError:
    line = None
    parts = tuple(loc)
    while parts and line is None:
        line = lines.get(parts)
        parts = parts[:-1]
    where = f"{format_loc(loc)}: " if loc else ""
    return _fail(path, code, f"{where}{message}", line)
