"""Turning what went wrong into one line: unwrap exception groups, name the cause.

A failure inside a task group reaches the conductor as an ``ExceptionGroup`` ("unhandled
errors in a TaskGroup (1 sub-exception)"), which says nothing about what failed. The
run's ``exit_reason``, its event and the operator's one line need the real cause: the
innermost exceptions, with the device they concern when there is one.
"""

from __future__ import annotations

__all__ = ["describe_failure", "leaf_exceptions"]


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, in order; ``[exc]`` otherwise."""
    if isinstance(exc, BaseExceptionGroup):
        leaves: list[BaseException] = []
        for inner in exc.exceptions:
            leaves.extend(leaf_exceptions(inner))
        return leaves
    return [exc]


def describe_failure(exc: BaseException) -> str:
    """``Type: message`` of the real cause(s), groups unwrapped (at most three listed)."""
    leaves = leaf_exceptions(exc)
    parts = [f"{type(e).__name__}: {e}" for e in leaves[:3]]
    more = f" (+{len(leaves) - 3} more)" if len(leaves) > 3 else ""
    return "; ".join(parts) + more
