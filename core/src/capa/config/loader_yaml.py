"""YAML configuration files: parsing with the safe loader, limits checked on the nodes.

:func:`parse_yaml` is what :func:`capa.config.loader.load_document` calls for a ``.yaml``
or ``.yml`` file. Before any tree is built the event stream is pre-scanned for nesting
depth; on the composed node graph, before construction, alias expansion and integer
literal lengths are bounded and each key path is mapped to its line (duplicate keys are
refused). Every failure is one :class:`~capa.config.loader.ConfigFileError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from capa.config.loader import (
    MAX_ALIAS_NODES,
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    MAX_INT_BITS,
    Loc,
    _deep_message,
    _fail,
    format_loc,
)

__all__ = ["parse_yaml"]


def parse_yaml(path: Path, text: str) -> tuple[dict[str, Any], dict[Loc, int]]:
    """Parse YAML ``text`` read from ``path``: the top-level mapping and its line map."""
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
