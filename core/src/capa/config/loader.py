"""Reading configuration files: YAML or TOML by suffix, with line numbers where known.

Every way a file can be unusable (missing, a directory, a FIFO or device, a symlink loop,
empty, binary, oversized, malformed, nested too deep, an integer too large, an alias bomb,
part of an include cycle) becomes a :class:`ConfigFileError` carrying one
:class:`~capa.problems.Problem`, so callers report it like any other validation finding.
The hard limits are checked before parsing where possible (size and file type from
``stat``, YAML nesting from the parser's event stream before any tree is built), so no
input makes loading hang, exhaust memory or raise anything else. Nothing here writes.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
import sys
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
    if suffix in TOML_SUFFIXES:
        data, lines = _parse_toml(path, text)
    else:
        data, lines = _parse_yaml(path, text)
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


# ---------------------------------------------------------------------------------- TOML
_TOML_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_TOML_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+?)\s*=")


def _parse_toml(path: Path, text: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    import tomllib

    try:
        data = tomllib.loads(text)
    except RecursionError:
        # tomllib recurses once per nested array / inline table.
        raise _fail(path, "file.too_deep", f"malformed TOML: {_deep_message()}") from None
    except ValueError as exc:
        if isinstance(exc, tomllib.TOMLDecodeError):
            raise _toml_syntax(path, exc) from None
        # int() refuses more than sys.get_int_max_str_digits() digits (CVE-2020-10735).
        limit = getattr(sys, "get_int_max_str_digits", lambda: 4300)() or 4300
        match = re.search(rf"[0-9_]{{{limit},}}", text)
        line = text.count("\n", 0, match.start()) + 1 if match else None
        raise _fail(
            path,
            "file.number_out_of_range",
            f"integer out of range (integers must fit in {MAX_INT_BITS} bits)",
            line,
        ) from None
    return data, _toml_lines(text)


def _toml_syntax(path: Path, exc: Exception) -> ConfigFileError:
    message = str(exc)
    match = re.search(r"\(at line (\d+), column \d+\)", message)
    line = int(match.group(1)) if match else None
    message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
    return _fail(path, "file.syntax", f"malformed TOML: {message}", line)


def _toml_key_parts(raw: str) -> list[str]:
    return [p.strip().strip("\"'") for p in raw.split(".")]


def _toml_table_loc(parts: tuple[str, ...], counters: dict[tuple[str, ...], int]) -> Loc:
    """Location of a table header: each array-of-tables prefix gets its current index."""
    loc: list[str | int] = []
    for i, part in enumerate(parts):
        loc.append(part)
        index = counters.get(parts[: i + 1])
        if index is not None:
            loc.append(index)
    return tuple(loc)


def _toml_lines(text: str) -> dict[Loc, int]:
    """Best-effort line map: table headers and ``key =`` lines (not multi-line values).

    tomllib keeps no positions, and a line number is only a hint in a message, so a
    simple scan that places the common cases is worth more than a second parser.
    """
    lines: dict[Loc, int] = {}
    counters: dict[tuple[str, ...], int] = {}
    table: Loc = ()
    depth = 0  # bracket depth of a multi-line array or inline table being skipped
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip() if '"' not in line else line.strip()
        if depth > 0:
            depth += stripped.count("[") + stripped.count("{")
            depth -= stripped.count("]") + stripped.count("}")
            continue
        header = _TOML_HEADER.match(line)
        if header and stripped.startswith("["):
            parts = tuple(_toml_key_parts(header.group(2)))
            is_array = header.group(1) == "[["
            if is_array:
                counters[parts] = counters.get(parts, -1) + 1
                # a new element starts its nested arrays of tables afresh
                for nested in [
                    k for k in counters if len(k) > len(parts) and k[: len(parts)] == parts
                ]:
                    del counters[nested]
            table = _toml_table_loc(parts, counters)
            lines.setdefault(table, number)
            continue
        key = _TOML_KEY.match(line)
        if key:
            loc = (*table, *_toml_key_parts(key.group(1)))
            lines.setdefault(loc, number)
            value = line[key.end() :].split("#", 1)[0]
            depth = max(
                0, value.count("[") + value.count("{") - value.count("]") - value.count("}")
            )
    return lines


# ---------------------------------------------------------------------------------- YAML
def _parse_yaml(path: Path, text: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    import yaml  # type: ignore[import-untyped]

    # libyaml when present: parsing is ~50x faster than the pure-Python parser.
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        has_aliases = _yaml_prescan(path, text, yaml, loader_cls)
        loader = loader_cls(text)
        try:
            node = loader.get_single_node()
            if node is None:
                raise _fail(path, "file.empty", "file holds no data (only comments or nulls)")
            if has_aliases:
                _check_aliases(path, node, yaml)
            _check_int_scalars(path, node, yaml)
            # Before construction, which flattens merge keys (``<<``) into the nodes.
            lines = _yaml_line_map(path, node, yaml)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or exc.context or "syntax error"
        if "nesting depth" in what:  # libyaml's own limit, met while scanning ahead
            raise _fail(path, "file.too_deep", _deep_message(), line) from None
        raise _fail(path, "file.syntax", f"malformed YAML: {what}", line) from None
    except yaml.YAMLError as exc:
        raise _fail(path, "file.syntax", f"malformed YAML: {exc}") from None
    except RecursionError:  # the depth pre-scan makes this unreachable; kept as a guard
        raise _fail(path, "file.too_deep", f"malformed YAML: {_deep_message()}") from None
    except ValueError as exc:  # a constructor's int()/float() on an absurd literal
        raise _fail(path, "file.syntax", f"malformed YAML: {exc}") from None
    if data is None:
        raise _fail(path, "file.empty", "file holds no data (only comments or nulls)")
    if not isinstance(data, dict):
        raise _fail(
            path,
            "file.not_a_table",
            f"top level must be a mapping of keys, found {type(data).__name__}",
            1,
        )
    if not all(isinstance(k, str) for k in data):
        raise _fail(path, "file.syntax", "top-level keys must be strings")
    return data, lines


def _yaml_line_map(path: Path, node: Any, yaml: Any) -> dict[Loc, int]:
    lines: dict[Loc, int] = {}
    duplicate = _yaml_lines(node, yaml, lines)
    if duplicate is not None:
        loc, first, again = duplicate
        raise _fail(
            path,
            "file.duplicate_key",
            f"{format_loc(loc)}: key appears twice (lines {first} and {again}); "
            "YAML would silently keep only the last",
            again,
        )
    return lines


def _yaml_prescan(path: Path, text: str, yaml: Any, loader_cls: Any) -> bool:
    """Check nesting depth from the event stream, before any (recursive) tree building.

    The parser itself is iterative; composing nodes recurses once per level (in C with
    libyaml, where no recursion limit would stop it). Returns whether any alias occurs.
    """
    depth = 0
    aliases = False
    loader = loader_cls(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else None
                    raise _fail(path, "file.too_deep", _deep_message(), line)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                aliases = True
    finally:
        loader.dispose()
    return aliases


def _children(node: Any, yaml: Any) -> list[Any]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_aliases(path: Path, root: Any, yaml: Any) -> None:
    """Refuse recursive aliases and aliases that expand to too many values.

    Counts, per node, how many values it expands to (memoised, so the cost is the number
    of distinct nodes, not of the expansion) with an iterative depth-first walk.
    """
    expanded: dict[int, int] = {}
    on_path: set[int] = set()
    distinct = 0
    cap = 10 * MAX_ALIAS_NODES + 10 * MAX_CONFIG_BYTES  # sizes saturate: no huge integers
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            total = 1 + sum(expanded[id(c)] for c in _children(node, yaml))
            expanded[key] = min(total, cap)
            continue
        if key in expanded:
            continue
        if key in on_path:
            line = node.start_mark.line + 1 if node.start_mark else None
            raise _fail(
                path,
                "file.alias_recursive",
                "a YAML alias refers to a value that contains it (recursive alias)",
                line,
            )
        distinct += 1
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node, yaml):
            if id(child) in on_path:
                line = child.start_mark.line + 1 if child.start_mark else None
                raise _fail(
                    path,
                    "file.alias_recursive",
                    "a YAML alias refers to a value that contains it (recursive alias)",
                    line,
                )
            if id(child) not in expanded:
                stack.append((child, False))
    extra = expanded[id(root)] - distinct
    if extra > MAX_ALIAS_NODES:
        node, loc = _largest_expansion(root, expanded, yaml)
        where = f"{format_loc(loc)}: " if loc else ""
        raise _fail(
            path,
            "file.alias_expansion",
            f"{where}YAML aliases expand to more than {MAX_ALIAS_NODES:,} values "
            f"({expanded[id(node)]:,} here); write the data out or share less",
            node.start_mark.line + 1 if node.start_mark else None,
        )


def _largest_expansion(root: Any, expanded: Mapping[int, int], yaml: Any) -> tuple[Any, Loc]:
    """Where the expansion is: descend while one child alone is over the limit."""
    node: Any = root
    loc: Loc = ()
    while True:
        items: list[tuple[Any, str | int]]
        if isinstance(node, yaml.MappingNode):
            items = [(v, str(k.value)) for k, v in node.value]
        elif isinstance(node, yaml.SequenceNode):
            items = [(v, i) for i, v in enumerate(node.value)]
        else:
            return node, loc
        best = next(((v, part) for v, part in items if expanded[id(v)] > MAX_ALIAS_NODES), None)
        if best is None:
            return node, loc
        node, loc = best[0], (*loc, best[1])


_INT_TAG = "tag:yaml.org,2002:int"


def _check_int_scalars(path: Path, root: Any, yaml: Any) -> None:
    """Refuse integer literals too long to be a 64-bit integer before int() sees them.

    int() of thousands of digits is slow and, past 4,300, raises; the cheap length test
    catches both, with the line, and leaves the exact range to :func:`_check_values`.
    """
    seen: set[int] = set()
    pending = [root]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _INT_TAG and len(node.value) > 80:
                raise _fail(
                    path,
                    "file.number_out_of_range",
                    f"integer with {len(node.value)} characters is out of range "
                    f"(integers must fit in {MAX_INT_BITS} bits)",
                    node.start_mark.line + 1 if node.start_mark else None,
                )
        else:
            pending.extend(_children(node, yaml))


_MAX_LINE_ENTRIES = 100_000


def _yaml_lines(root: Any, yaml: Any, out: dict[Loc, int]) -> tuple[Loc, int, int] | None:
    """Map each key path to its line; each node is visited once (aliases may loop).

    Returns ``(loc, first_line, second_line)`` of the first key that a mapping repeats.
    """
    seen: set[int] = set()
    pending: list[tuple[Any, Loc]] = [(root, ())]
    while pending and len(out) < _MAX_LINE_ENTRIES:
        node, loc = pending.pop()
        out.setdefault(loc, node.start_mark.line + 1)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key, line = str(key_node.value), key_node.start_mark.line + 1
                if key in keys and key != "<<":
                    return (*loc, key), keys[key], line
                keys[key] = line
                out.setdefault((*loc, key), line)
                pending.append((value_node, (*loc, key)))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend((item, (*loc, i)) for i, item in enumerate(node.value))
    return None
