"""Reading configuration files: YAML or TOML by suffix, with line numbers where known.

Every way a file can be unusable (missing, a directory, empty, binary, oversized,
malformed, part of an include cycle) becomes a :class:`ConfigFileError` carrying one
:class:`~capa.problems.Problem`, so callers report it like any other validation finding.
Nothing here writes anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capa.errors import ConfigError
from capa.problems import Problem, Severity

__all__ = [
    "MAX_CONFIG_BYTES",
    "ConfigFileError",
    "Document",
    "LoadStack",
    "Loc",
    "format_loc",
    "load_document",
    "resolve_path",
]

MAX_CONFIG_BYTES = 10 * 1024 * 1024
"""Largest configuration file accepted; anything bigger is certainly not a config file."""

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
    """Resolve a path written inside a file relative to that file's directory."""
    candidate = Path(value).expanduser()
    if not candidate.is_absolute():
        candidate = relative_to.parent / candidate
    return candidate.resolve()


class LoadStack:
    """Files currently being loaded, to refuse include cycles with the whole chain."""

    def __init__(self) -> None:
        self._stack: list[Path] = []

    @contextmanager
    def entering(self, path: Path) -> Iterator[None]:
        """Mark ``path`` as being loaded; raises if it already is (a cycle)."""
        resolved = path.resolve()
        if resolved in self._stack:
            chain = " -> ".join(p.name for p in [*self._stack, resolved])
            raise _fail(resolved, "file.cycle", f"include cycle: {chain}")
        self._stack.append(resolved)
        try:
            yield
        finally:
            self._stack.pop()


def load_document(path: Path, *, max_bytes: int = MAX_CONFIG_BYTES) -> Document:
    """Read and parse one configuration file, YAML or TOML chosen by its suffix."""
    path = Path(path)
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
    return Document(path.resolve(), data, lines)


def _read_text(path: Path, max_bytes: int) -> str:
    try:
        if not path.exists():
            raise _fail(path, "file.not_found", "file not found")
        if path.is_dir():
            raise _fail(path, "file.is_directory", "is a directory, expected a file")
        size = path.stat().st_size
        if size > max_bytes:
            raise _fail(
                path,
                "file.too_large",
                f"file is {size / 1e6:.1f} MB; configuration files are limited to "
                f"{max_bytes / 1e6:.0f} MB",
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise _fail(path, "file.unreadable", f"cannot read file: {exc.strerror or exc}") from None
    if b"\x00" in raw[:8192]:
        raise _fail(path, "file.binary", "binary file (contains NUL bytes), expected text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(
            path, "file.encoding", f"not UTF-8 text (bad byte at offset {exc.start})"
        ) from None
    if not text.strip():
        raise _fail(path, "file.empty", "file is empty")
    return text


# ---------------------------------------------------------------------------------- TOML
_TOML_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_TOML_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+?)\s*=")


def _parse_toml(path: Path, text: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(match.group(1)) if match else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        raise _fail(path, "file.syntax", f"malformed TOML: {message}", line) from None
    return data, _toml_lines(text)


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

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or exc.context or "syntax error"
        raise _fail(path, "file.syntax", f"malformed YAML: {what}", line) from None
    except yaml.YAMLError as exc:
        raise _fail(path, "file.syntax", f"malformed YAML: {exc}") from None
    except RecursionError:
        raise _fail(path, "file.syntax", "malformed YAML: nesting too deep") from None
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
    lines: dict[Loc, int] = {}
    if node is not None:
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
    return data, lines


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
