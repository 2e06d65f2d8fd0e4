"""Self-contained HTML reports of a training run, with matplotlib plots (layer 3: reads what ``train`` and
``inspect`` recorded; nothing below imports it)."""

from __future__ import annotations

from .figures import Plot
from .page import ReportData, build_report, make_plots, write_report

__all__ = ["Plot", "ReportData", "build_report", "make_plots", "write_report"]
