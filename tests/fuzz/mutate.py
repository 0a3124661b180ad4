"""Seeded mutations of the demo configuration files (examples/demo), for fuzzing.

A :class:`Case` is one demo experiment (with the hardware and method files it refers to)
in which one file received one mutation: byte flips and inserts, truncation, deleted or
duplicated lines (keys), swapped value types, deep nesting, huge integers, special floats,
YAML aliases (bombs, recursion, merges), special paths (FIFOs, /dev/zero, symlink loops,
NUL bytes, ``~nosuchuser``, directories, very long names), odd encodings and sizes.
Everything is derived from ``random.Random(seed)``: a failing case is reproduced from
its seed alone (``make_case(seed)``).

Used by ``tests/fuzz/test_config_fuzz.py`` (in-process ``capa validate``) and by
``bench/fuzz_configs.py`` (``capa validate`` and ``capa run`` + SIGINT as processes).
"""

from __future__ import annotations

import os
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo"

# experiment -> the files it refers to (all in examples/demo)
EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "free_run.yaml": ("rig.toml",),
    "recipe.yaml": ("rig.toml", "recipe.method.toml"),
    "experiment.yaml": ("rig.toml", "recipe.method.toml"),
}
DEMO_FILES = ("free_run.yaml", "recipe.yaml", "experiment.yaml", "rig.toml", "recipe.method.toml")

Mutator = Callable[[str, random.Random, Path, str], str | bytes]


@dataclass(frozen=True)
class Case:
    """One mutated demo experiment."""

    seed: int
    experiment: str
    target: str
    mutator: str

    @property
    def name(self) -> str:
        """``seed:experiment/target:mutator``, enough to reproduce and to read."""
        return f"{self.seed}:{self.experiment}/{self.target}:{self.mutator}"

    def materialize(self, folder: Path) -> Path:
        """Write the demo files into ``folder`` with the mutation; return the experiment."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in DEMO_FILES:
            shutil.copyfile(DEMO / name, folder / name)
        rng = random.Random(self.seed)
        text = (DEMO / self.target).read_text(encoding="utf-8")
        mutated = MUTATORS[self.mutator](text, rng, folder, Path(self.target).suffix)
        path = folder / self.target
        if isinstance(mutated, bytes):
            path.write_bytes(mutated)
        else:
            path.write_text(mutated, encoding="utf-8", newline="")
        return folder / self.experiment


def make_case(seed: int) -> Case:
    """The case of ``seed``: an experiment, one of its files, one applicable mutator."""
    rng = random.Random(seed)
    experiment = rng.choice(sorted(EXPERIMENTS))
    target = rng.choice((experiment, *EXPERIMENTS[experiment]))
    names = [n for n in sorted(MUTATORS) if target.endswith(".yaml") or n not in YAML_ONLY]
    return Case(seed, experiment, target, rng.choice(names))


# ------------------------------------------------------------------------- mutators
def byte_flip(text: str, rng: random.Random, _folder: Path, _suffix: str) -> bytes:
    data = bytearray(text.encode("utf-8"))
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    return bytes(data)


_INSERTS = [
    b"\x00", b"\xff", b"\n", b":", b"[", b"{", b"]", b"}", b'"', b"'", b"&a", b"*a", b"#",
    b"=", b"- ", b"\t", b"\r", b"\\", b"!!", b"%", b"@", b"`", "é".encode(), "\u202e".encode(),
    "\ufeff".encode(), b"\x1b[2J", b"<<: *a",
]  # fmt: skip


def byte_insert(text: str, rng: random.Random, _folder: Path, _suffix: str) -> bytes:
    data = bytearray(text.encode("utf-8"))
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(data) + 1)
        data[i:i] = rng.choice(_INSERTS)
    return bytes(data)


def truncate(text: str, rng: random.Random, _folder: Path, _suffix: str) -> str:
    return text[: rng.randrange(len(text))]


def _content_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]


def line_delete(text: str, rng: random.Random, _folder: Path, _suffix: str) -> str:
    lines = text.splitlines(keepends=True)
    for _ in range(rng.randint(1, 3)):
        candidates = _content_lines(lines)
        if not candidates:
            break
        del lines[rng.choice(candidates)]
    return "".join(lines)


def line_duplicate(text: str, rng: random.Random, _folder: Path, _suffix: str) -> str:
    lines = text.splitlines(keepends=True)
    i = rng.choice(_content_lines(lines))
    lines.insert(rng.randrange(len(lines) + 1), lines[i])
    return "".join(lines)


_VALUES_TOML = [
    '"text"', "0", "-1", "1.5", "true", "[]", "{}", "[1, 2]", '""', "1e999", "nan", "inf",
    "-inf", "9" * 25, str(2**63), str(-(2**63) - 1), '"' + "x" * 100_000 + '"',
    "2024-01-01", "2024-01-01T10:00:00Z", "{ a = { b = 1 } }", "-0.0", "1e-320", "0x7f",
]  # fmt: skip
_VALUES_YAML = [
    *_VALUES_TOML, "null", "~", ".inf", ".nan", "-.inf", "yes", "on", "!!binary aGk=",
    "!!set {a, b}", "!!python/object:os.system x", "{a: 1}", "[a, [b, [c]]]", "|\n  text",
    "&x 5", "*nosuch", "!!timestamp 2001-12-14", "0o17", "1_000", "12:30:45",
]  # fmt: skip
_ASSIGN = {
    ".toml": re.compile(r"^(\s*[\w.\"'-]+\s*=\s*)(.+)$"),
    ".yaml": re.compile(r"^(\s*-?\s*[\w.-]+:\s+)(\S.*)$"),
}


def type_swap(text: str, rng: random.Random, _folder: Path, suffix: str) -> str:
    lines = text.splitlines(keepends=True)
    pattern = _ASSIGN[suffix]
    candidates = [i for i, line in enumerate(lines) if pattern.match(line.rstrip("\n"))]
    palette = _VALUES_TOML if suffix == ".toml" else _VALUES_YAML
    for _ in range(rng.randint(1, 3)):
        i = rng.choice(candidates)
        match = pattern.match(lines[i].rstrip("\n"))
        if match is not None:  # None: this line was already swapped to a multi-line value
            lines[i] = match.group(1) + rng.choice(palette) + "\n"
    return "".join(lines)


_DEPTHS = [5, 20, 63, 64, 65, 200, 1000, 20_000]


def deep_nesting(text: str, rng: random.Random, _folder: Path, suffix: str) -> str:
    depth = rng.choice(_DEPTHS)
    kind = rng.choice(["list", "table", "block"])
    if suffix == ".toml":
        value = (
            "[" * depth + "]" * depth if kind != "table" else "{ a = " * depth + "1" + " }" * depth
        )
        line = f"deep = {value}\n"
        return line + text if rng.random() < 0.5 else _insert_line(text, line, rng)
    if kind == "block":
        depth = min(depth, 1000)  # indentation grows quadratically with depth
        body = (
            "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(depth)) + "  " * (depth + 1) + "v\n"
        )
        return text + "custom:\n" + body
    value = "[" * depth + "]" * depth if kind == "list" else "{a: " * depth + "1" + "}" * depth
    return text + f"custom:\n  deep: {value}\n"


def _insert_line(text: str, line: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True)
    lines.insert(rng.randrange(len(lines) + 1), line)
    return "".join(lines)


_NUMBER = re.compile(r"(?<![\w.])-?\d+(\.\d+)?(?![\w.])")


def huge_int(text: str, rng: random.Random, _folder: Path, _suffix: str) -> str:
    digits = rng.choice([19, 20, 21, 64, 400, 4300, 4301, 10_000])
    matches = list(_NUMBER.finditer(text))
    match = rng.choice(matches)
    return text[: match.start()] + "9" * digits + text[match.end() :]


def special_float(text: str, rng: random.Random, _folder: Path, suffix: str) -> str:
    specials = ["nan", "inf", "-inf", "1e309", "-0.0", "1e-320", "1.7976931348623157e308"]
    if suffix == ".yaml":
        specials += [".inf", ".nan", "-.inf", ".NaN"]
    matches = list(_NUMBER.finditer(text))
    match = rng.choice(matches)
    return text[: match.start()] + rng.choice(specials) + text[match.end() :]


def yaml_alias(text: str, rng: random.Random, _folder: Path, _suffix: str) -> str:
    kind = rng.choice(["bomb", "recursive", "merge", "undefined", "shared", "bomb_list"])
    if kind == "bomb" or kind == "bomb_list":
        levels = rng.randint(2, 9)
        width = rng.randint(2, 12)
        lines = ["  l0: &l0 [" + ", ".join(["ha"] * width) + "]"]
        for i in range(1, levels):
            lines.append(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
        return _replace_top(text, "custom", "custom:\n" + "\n".join(lines) + "\n")
    if kind == "recursive":
        return _replace_top(text, "custom", "custom: &c\n  self: *c\n")
    if kind == "merge":
        return _replace_top(
            text, "custom", "custom:\n  base: &b {a: 1, b: 2}\n  x: {<<: *b, b: 3}\n"
        )
    if kind == "undefined":
        return _replace_top(text, "custom", "custom:\n  x: *nowhere\n")
    return _replace_top(text, "sample", "sample: &s\n  id: S-1\ncustom:\n  again: *s\n")


def _replace_top(text: str, key: str, block: str) -> str:
    """Drop top-level ``key`` (and its indented body) and append ``block``."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        if re.match(rf"^{key}:", line):
            skipping = True
            continue
        if skipping and (line.startswith((" ", "\t")) or not line.strip()):
            continue
        skipping = False
        out.append(line)
    return "".join(out) + block


def special_path(text: str, rng: random.Random, folder: Path, suffix: str) -> str:
    special = rng.choice(
        ["fifo", "zero", "loop", "nosuchuser", "nul", "empty", "root", "dot", "long", "dir",
         "proc", "urandom", "dangling"]
    )  # fmt: skip
    value = _special_value(special, folder)
    if suffix == ".yaml":
        refs = list(re.finditer(r"^(hardware|method): (.+)$", text, re.M))
        if refs:
            match = rng.choice(refs)
            quoted = '"' + value.replace("\\", "\\\\").replace("\0", "\\0") + '"'
            return text[: match.start(2)] + quoted + text[match.end(2) :]
        return text + f"method: {value!r}\n"
    escaped = value.replace("\\", "\\\\").replace("\0", "\\u0000")
    ports = list(re.finditer(r'^(port|device|source) = "([^"]*)"', text, re.M))
    if not ports:  # a method file names no path: the value lands in an unknown key
        return f'path = "{escaped}"\n' + text
    match = rng.choice(ports)
    return text[: match.start(2)] + escaped + text[match.end(2) :]


def _special_value(special: str, folder: Path) -> str:
    if special == "fifo":
        fifo = folder / "pipe.toml"
        if not fifo.exists():
            os.mkfifo(fifo)
        return "pipe.toml"
    if special == "loop":
        for a, b in (("loop1.toml", "loop2.toml"), ("loop2.toml", "loop1.toml")):
            if not (folder / a).is_symlink():
                (folder / a).symlink_to(b)
        return "loop1.toml"
    if special == "dir":
        (folder / "sub.toml").mkdir(exist_ok=True)
        return "sub.toml"
    if special == "dangling":
        if not (folder / "gone.toml").is_symlink():
            (folder / "gone.toml").symlink_to("nowhere/at/all.toml")
        return "gone.toml"
    return {
        "zero": "/dev/zero",
        "nosuchuser": "~nosuchuser-capa-fuzz/rig.toml",
        "nul": "rig\0.toml",
        "empty": "",
        "root": "/",
        "dot": ".",
        "long": "x" * 5000 + ".toml",
        "proc": "/proc/self/mem",
        "urandom": "/dev/urandom",
    }[special]


def encoding(text: str, rng: random.Random, _folder: Path, _suffix: str) -> bytes:
    kind = rng.choice(["bom", "crlf", "latin1", "utf16", "cr"])
    if kind == "bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    if kind == "crlf":
        return text.replace("\n", "\r\n").encode("utf-8")
    if kind == "cr":
        return text.replace("\n", "\r").encode("utf-8")
    if kind == "utf16":
        return text.encode("utf-16")
    # A file saved as Latin-1: characters Latin-1 has no byte for become "?", as an editor
    # saving in that encoding would write them.
    return (text + "# caf\xe9\n").encode("latin-1", errors="replace")


def size(text: str, rng: random.Random, _folder: Path, suffix: str) -> str:
    # Just under or just over the 1 MiB limit, or a long single line.
    target = rng.choice([900_000, 1_100_000])
    if rng.random() < 0.5:
        pad = ("#" + "x" * 78 + "\n") * (target // 80)
        return text + pad
    key = "padding = " if suffix == ".toml" else "padding: "
    line = key + '"' + "y" * target + '"\n'
    return line + text if suffix == ".toml" else text + line


YAML_ONLY = frozenset({"yaml_alias"})

MUTATORS: dict[str, Mutator] = {
    "byte_flip": byte_flip,
    "byte_insert": byte_insert,
    "truncate": truncate,
    "line_delete": line_delete,
    "line_duplicate": line_duplicate,
    "type_swap": type_swap,
    "deep_nesting": deep_nesting,
    "huge_int": huge_int,
    "special_float": special_float,
    "yaml_alias": yaml_alias,
    "special_path": special_path,
    "encoding": encoding,
    "size": size,
}


def snapshot(folder: Path) -> list[tuple[str, int, int]]:
    """Every entry under ``folder`` (not following links): path, size, mtime."""
    out = []
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        out.append((str(path.relative_to(folder)), info.st_size, info.st_mtime_ns))
    return out
