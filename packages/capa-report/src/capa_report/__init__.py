"""capa-report: ``capa report RUN_ID``, an offline HTML report and PNG figures of a run."""

from __future__ import annotations

__version__ = "0.1.0"
