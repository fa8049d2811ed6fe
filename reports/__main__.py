"""``python -m reports OUT_DIR`` (from the repository root) or ``python -m dcbench.reports OUT_DIR``."""

from dcbench.cli import reports_main

raise SystemExit(reports_main())
