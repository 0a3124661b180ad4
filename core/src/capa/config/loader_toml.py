"""TOML configuration files: parsing with tomllib, and a line map for messages.

:func:`parse_toml` is what :func:`capa.config.loader.load_document` calls for a ``.toml``
file. tomllib keeps no positions, so the line of each table header and ``key =`` line
comes from a light scan of the text (:func:`_toml_lines`); parse failures and integers
too long for ``int()`` become one :class:`~capa.config.loader.ConfigFileError` each.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from capa.config.loader import MAX_INT_BITS, ConfigFileError, Loc, _deep_message, _fail

__all__ = ["parse_toml"]


_TOML_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_TOML_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+?)\s*=")


def parse_toml(path: Path, text: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    """Parse TOML ``text`` read from ``path``: the table and its line map (best effort)."""
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
