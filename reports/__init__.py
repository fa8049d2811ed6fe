"""Reports built from the results store alone: ``python -m reports OUT_DIR``."""

from dcbench.reports.build import build_report
from dcbench.reports.tables import latex_table, markdown_table, summarize, write_tables

__all__ = ["build_report", "latex_table", "markdown_table", "summarize", "write_tables"]
