"""Safe arithmetic expressions for derived channels (``heat_flux_gain * hf_raw + offset``).

An expression is parsed with :func:`ast.parse` (parsing never executes anything) and then
compiled into a small tree of our own nodes; any syntax outside the grammar below is
refused with the column where it starts. Nothing is ever passed to ``eval``. Written here
rather than taken from a library because the grammar is tiny, must be vectorised with
numpy, must carry units, and must keep per-run state for the window functions — no
expression library offers that combination.

Grammar: numbers; names (channels, or constants declared beside the expression);
``+ - * / **``, unary ``-``/``+`` and parentheses; and the functions

========================= ======================================================
``abs sqrt exp log log10`` element-wise
``min(a, b)`` ``max(a, b)`` element-wise of two operands
``clip(x, lo, hi)``        limits
``movavg(channel, n)``     mean of the channel's last ``n`` samples (stateful)
``delta(channel)``         difference with the channel's previous sample (stateful)
========================= ======================================================

Units: ``+``, ``-``, ``min``, ``max`` and ``clip`` need operands in one unit (a bare number
takes its partner's unit); ``abs``, ``movavg`` and ``delta`` keep their operand's unit;
``*``, ``/``, ``**`` and the other functions make the unit unknown (a gain turns volts into
kW/m2), which validation then cannot check: it reports a mismatch only where it can prove
one.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Expression", "ExpressionError", "Units", "parse_expression"]

MAX_LENGTH = 1000
"""Longest expression accepted (characters)."""
MAX_NODES = 200
"""Most syntax nodes accepted: an expression is a formula, not a program."""
MAX_WINDOW = 1_000_000
"""Largest ``movavg`` window (samples)."""

Units = Mapping[str, str]
"""Name -> unit of every channel an expression may read."""


class ExpressionError(ValueError):
    """An expression is malformed, uses something outside the grammar, or mixes units.

    Attributes:
        column: 1-based column in the expression where the problem starts, if known.
    """

    def __init__(self, message: str, column: int | None = None) -> None:
        self.column = column
        where = f" (column {column})" if column is not None else ""
        super().__init__(f"{message}{where}")


# ---------------------------------------------------------------------- nodes
class _Node:
    """A compiled expression node: evaluates arrays, knows its unit."""

    unit: str | None = None  # None: unknown; "" a bare number (adopts its partner's unit)

    def evaluate(self, env: Mapping[str, Any], state: dict[int, Any]) -> Any:
        raise NotImplementedError


@dataclass
class _Const(_Node):
    value: float
    unit: str | None = ""

    def evaluate(self, env: Mapping[str, Any], state: dict[int, Any]) -> Any:
        return self.value


@dataclass
class _Name(_Node):
    name: str
    unit: str | None = None

    def evaluate(self, env: Mapping[str, Any], state: dict[int, Any]) -> Any:
        return env[self.name]


@dataclass
class _Apply(_Node):
    fn: Callable[..., Any]
    args: list[_Node]
    unit: str | None = None

    def evaluate(self, env: Mapping[str, Any], state: dict[int, Any]) -> Any:
        return self.fn(*(a.evaluate(env, state) for a in self.args))


@dataclass
class _MovingAverage(_Node):
    """Mean of the last ``n`` samples of a channel, carried across batches."""

    source: _Name
    n: int
    unit: str | None = None

    def evaluate(self, env: Mapping[str, Any], state: dict[int, Any]) -> Any:
        import numpy as np

        x = np.atleast_1d(np.asarray(env[self.source.name], dtype=np.float64))
        history = state.get(id(self), np.empty(0))
        joined = np.concatenate([history, x])
        # Cumulative sums give every window's mean in one vectorised pass; the first
        # windows of a run are shorter (the mean of what has been seen so far).
        csum = np.concatenate([[0.0], np.cumsum(joined)])
        end = np.arange(len(history) + 1, len(joined) + 1)
        start = np.maximum(end - self.n, 0)
        means = (csum[end] - csum[start]) / (end - start)
        state[id(self)] = joined[-(self.n - 1) :] if self.n > 1 else np.empty(0)
        return means


@dataclass
class _Delta(_Node):
    """Difference of each sample with the channel's previous one (NaN for the first)."""

    source: _Name
    unit: str | None = None

    def evaluate(self, env: Mapping[str, Any], state: dict[int, Any]) -> Any:
        import numpy as np

        x = np.atleast_1d(np.asarray(env[self.source.name], dtype=np.float64))
        previous = state.get(id(self), np.nan)
        out = np.diff(x, prepend=previous)
        if len(x):
            state[id(self)] = x[-1]
        return out


# ---------------------------------------------------------------------- public
@dataclass
class Expression:
    """A parsed, unit-checked expression, ready to evaluate on numpy arrays.

    Attributes:
        source: the text it was parsed from.
        inputs: channel names it reads, in order of first use.
        unit: the unit of its value where it can be inferred, else ``None``.
        stateful: whether it keeps state between evaluations (``movavg``, ``delta``);
            such an expression must see every sample of its inputs, in order.
    """

    source: str
    inputs: tuple[str, ...]
    unit: str | None
    stateful: bool
    _root: _Node = field(repr=False)
    _state: dict[int, Any] = field(default_factory=dict, repr=False)

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        """The expression's values for arrays (or scalars) of its inputs, broadcast."""
        import numpy as np

        with np.errstate(all="ignore"):  # log(0), x/0: NaN / inf values, not exceptions
            return np.asarray(self._root.evaluate(values, self._state), dtype=np.float64)

    def reset(self) -> None:
        """Forget the window state (a new run)."""
        self._state.clear()


def parse_expression(
    text: str, *, channels: Units, constants: Mapping[str, float] | None = None
) -> Expression:
    """Parse ``text`` against the known ``channels`` (name -> unit) and ``constants``.

    Raises:
        ExpressionError: malformed, too long or complex, an unknown name or function, a
            window function on something other than a channel, or mixed units.
    """
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not a valid expression: {exc.msg}", exc.offset or None) from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise ExpressionError(f"expression too complex ({count} parts; at most {MAX_NODES})")
    compiler = _Compiler(channels, dict(constants or {}))
    root = compiler.compile(tree.body)
    return Expression(
        source=text,
        inputs=tuple(compiler.inputs),
        unit=root.unit,
        stateful=compiler.stateful,
        _root=root,
    )


# ---------------------------------------------------------------------- compiler
def _np(name: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        import numpy as np

        return getattr(np, name)(*args)

    call.__name__ = name
    return call


_ELEMENTWISE = {"abs": "abs", "sqrt": "sqrt", "exp": "exp", "log": "log", "log10": "log10"}
_SAME_UNIT = {"abs"}
_BINARY = {"min": "minimum", "max": "maximum"}
_OPERATORS: dict[type[ast.operator], tuple[str, str]] = {
    ast.Add: ("add", "+"),
    ast.Sub: ("subtract", "-"),
    ast.Mult: ("multiply", "*"),
    ast.Div: ("divide", "/"),
    ast.Pow: ("power", "**"),
}


class _Compiler:
    def __init__(self, channels: Units, constants: dict[str, float]) -> None:
        self.channels = channels
        self.constants = constants
        self.inputs: list[str] = []
        self.stateful = False

    def compile(self, node: ast.expr) -> _Node:
        col = getattr(node, "col_offset", -1) + 1 or None
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise ExpressionError(f"only numbers are allowed, not {node.value!r}", col)
            if not math.isfinite(float(node.value)):
                raise ExpressionError("numbers must be finite", col)
            return _Const(float(node.value))
        if isinstance(node, ast.Name):
            return self._name(node.id, col)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = self.compile(node.operand)
            if isinstance(node.op, ast.UAdd):
                return operand
            return _Apply(_np("negative"), [operand], operand.unit)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return self._binary(node, col)
        if isinstance(node, ast.Call):
            return self._call(node, col)
        raise ExpressionError(f"{type(node).__name__} is not allowed in an expression", col)

    def _name(self, name: str, col: int | None) -> _Node:
        if name in self.constants:
            value = self.constants[name]
            if not math.isfinite(value):
                raise ExpressionError(f"constant {name!r} is not finite", col)
            return _Const(float(value))
        if name in self.channels:
            if name not in self.inputs:
                self.inputs.append(name)
            return _Name(name, self.channels[name])
        from capa.config.problems import did_you_mean

        known = [*self.channels, *self.constants]
        raise ExpressionError(f"unknown name {name!r}{did_you_mean(name, known)}", col)

    def _binary(self, node: ast.BinOp, col: int | None) -> _Node:
        left, right = self.compile(node.left), self.compile(node.right)
        fn_name, symbol = _OPERATORS[type(node.op)]
        unit: str | None
        if symbol in "+-":
            unit = _same_unit(left, right, symbol, col)
        else:  # * / **: a gain or an exponent changes the unit in ways labels cannot tell
            unit = "" if left.unit == "" and right.unit == "" else None
        return _Apply(_np(fn_name), [left, right], unit)

    def _call(self, node: ast.Call, col: int | None) -> _Node:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise ExpressionError("only plain calls like sqrt(x) are allowed", col)
        name = node.func.id
        allowed = sorted([*_ELEMENTWISE, *_BINARY, "clip", "movavg", "delta"])
        if name not in allowed:
            raise ExpressionError(f"unknown function {name!r}; allowed: {', '.join(allowed)}", col)
        if name in ("movavg", "delta"):
            return self._window(name, node.args, col)
        args = [self.compile(a) for a in node.args]
        if name in _ELEMENTWISE:
            _arity(name, args, 1, col)
            unit = args[0].unit if name in _SAME_UNIT else ("" if args[0].unit == "" else None)
            return _Apply(_np(_ELEMENTWISE[name]), args, unit)
        if name in _BINARY:
            _arity(name, args, 2, col)
            return _Apply(_np(_BINARY[name]), args, _same_unit(args[0], args[1], name, col))
        if name == "clip":
            _arity(name, args, 3, col)
            unit = _same_unit(args[0], args[1], name, col)
            unit = _same_unit(_Const(0.0, unit), args[2], name, col)
            return _Apply(_np("clip"), args, unit)
        raise AssertionError(name)  # every allowed name is handled above

    def _window(self, name: str, args: list[ast.expr], col: int | None) -> _Node:
        want = 2 if name == "movavg" else 1
        if len(args) != want:
            raise ExpressionError(f"{name}() takes {want} argument(s), got {len(args)}", col)
        if not isinstance(args[0], ast.Name) or args[0].id not in self.channels:
            raise ExpressionError(f"{name}() works on a channel name", col)
        source = self._name(args[0].id, col)
        assert isinstance(source, _Name)
        self.stateful = True
        if name == "delta":
            return _Delta(source, source.unit)
        size = args[1]
        if not (
            isinstance(size, ast.Constant)
            and isinstance(size.value, int)
            and not isinstance(size.value, bool)
            and 1 <= size.value <= MAX_WINDOW
        ):
            raise ExpressionError(
                f"movavg() window must be a whole number of samples from 1 to {MAX_WINDOW}", col
            )
        return _MovingAverage(source, size.value, source.unit)


def _arity(name: str, args: list[_Node], n: int, col: int | None) -> None:
    if len(args) != n:
        raise ExpressionError(f"{name}() takes {n} argument(s), got {len(args)}", col)


def _same_unit(left: _Node, right: _Node, what: str, col: int | None) -> str | None:
    from capa.config.units import canonical_unit

    if left.unit == "":
        return right.unit
    if right.unit == "":
        return left.unit
    if left.unit is None or right.unit is None:
        return None
    if canonical_unit(left.unit) != canonical_unit(right.unit):
        raise ExpressionError(f"unit mismatch: {left.unit} {what} {right.unit}", col)
    return left.unit
