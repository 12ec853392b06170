"""Evaluation against ground truth, and reports: detection metrics and poison success (``metrics.py``),
the run report, CLI summary and flagged-set CSV (``report.py``), the paper's table over seeds
(``table.py``). Nothing here is used to detect or unlearn."""
