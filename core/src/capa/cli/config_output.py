"""Printing validation reports, shared by ``validate``, ``config``, ``hardware``, ``method``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from capa.config.validate import Report
    from capa.problems import Problem

__all__ = ["EXIT_INVALID", "echo_problem_lines", "echo_summary", "problem_line"]

EXIT_INVALID = 2
"""Seed 001: every validate command exits 2 for any error-severity problem."""


def problem_line(problem: Problem) -> str:
    """``[severity] path :: code: message (file:line)`` on one line."""
    where = problem.source
    if where and problem.line is not None:
        where = f"{where}:{problem.line}"
    path = problem.path or "(file)"
    suffix = f" ({where})" if where else ""
    return f"[{problem.severity.value}] {path} :: {problem.code}: {problem.message}{suffix}"


def echo_problem_lines(report: Report, *, errors_to_stderr: bool = False) -> None:
    """One line per problem; errors go to stderr when asked (``capa validate``)."""
    for problem in report.problems:
        click.echo(problem_line(problem), err=errors_to_stderr and problem.is_error)


def echo_summary(report: Report) -> None:
    """``path: N error(s), N warning(s), N info``."""
    from capa.problems import Severity

    errors = report.count(Severity.ERROR)
    warnings = report.count(Severity.WARNING)
    infos = report.count(Severity.INFO)
    click.echo(
        f"{report.path}: {errors} error{'s' * (errors != 1)}, "
        f"{warnings} warning{'s' * (warnings != 1)}, {infos} info"
    )
