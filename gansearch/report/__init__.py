"""`gansearch report`: Table 1 for the best configurations of a finished search, beside the
paper's rows, written under `<experiment_dir>/report/` and logged to MLflow.

    make.py           ReportOptions, Report, make_report, format_report: the whole report
    choose.py         which trials to report (the best, or the Pareto front's first)
    configuration.py  one configuration's final evaluation, figures, files and MLflow run (or
                      why it was skipped)
    table.py          Table 1: the paper's rows, ours and the reference rows, and their cells
    pareto.py         a multi-objective search's Pareto front table, Markdown and plot

Imports go one way: make uses the others, configuration and pareto use table. MLflow is written
through gansearch.tracking's ReportLogger only. The names below are those `gansearch.report`
had as one module, so its importers need not change.
"""

from gansearch.report.choose import best_trials, choose_trials, pareto_trials
from gansearch.report.configuration import (
    REPORT_DIR,
    RETRAINED,
    RETRAINED_BEST,
    Provenance,
    Skipped,
    interpolations,
    learning_curves,
    row_or_skipped,
    table_one_row,
)
from gansearch.report.make import (
    TAG_SKIPPED,
    Report,
    ReportOptions,
    format_report,
    make_report,
    write_importances,
    write_table1,
)
from gansearch.report.pareto import pareto_markdown, pareto_table
from gansearch.report.table import (
    DATASET_LABELS,
    PAPER,
    PAPER_TABLE,
    QUALITY_FIELDS,
    REFERENCE,
    TABLE_NAME,
    ReportRow,
    comparability,
    reference_note,
    table1,
    table1_markdown,
)

__all__ = [
    "DATASET_LABELS",
    "PAPER",
    "PAPER_TABLE",
    "QUALITY_FIELDS",
    "REFERENCE",
    "REPORT_DIR",
    "RETRAINED",
    "RETRAINED_BEST",
    "TABLE_NAME",
    "TAG_SKIPPED",
    "Provenance",
    "Report",
    "ReportOptions",
    "ReportRow",
    "Skipped",
    "best_trials",
    "choose_trials",
    "comparability",
    "format_report",
    "interpolations",
    "learning_curves",
    "make_report",
    "pareto_markdown",
    "pareto_table",
    "pareto_trials",
    "reference_note",
    "row_or_skipped",
    "table_one_row",
    "table1",
    "table1_markdown",
    "write_importances",
    "write_table1",
]
