"""The report as files (``summary.json``, CSV tables, ``report.html``) and spreadsheet-safe CSV cells.

:func:`report_files` returns every output of ``python -m pipelines.report`` as ``{file name: bytes}``, so
the CLI writes them and the admin dashboard offers them as downloads without either importing the other.

Spreadsheet formula injection (OWASP "CSV injection"): a text cell starting with ``=``, ``+``, ``-``,
``@``, tab or carriage return is run as a formula by Excel / LibreOffice (``=HYPERLINK(...)`` in a rater
name or a method name). :func:`neutralise` prefixes such text with ``'`` (OWASP's recommendation);
numbers, and text that is a plain decimal number such as ``-0.5``, stay numbers. :func:`unneutralise`
undoes it when a file written here is read back (both live in :mod:`srkeras.mos.schema`).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from srkeras.mos import html
from srkeras.mos.report import Report, summary
from srkeras.mos.schema import neutralise, unneutralise

__all__ = ["csv_text", "neutralise", "report_files", "safe_frame", "unneutralise"]

STIMULI_COLS = ["method", "image", "n", "mos", "ci95_low", "ci95_high", "mos_screened", "mle", "mle_ci95_low",
                "mle_ci95_high"]
RATER_COLS = ["rater", "n", "rejected", "reasons", "p913_bias", "mle_bias", "mle_inconsistency"]
PAIR_COLS = ["method", "bt", "ci95_low", "ci95_high"]
#: Report files in the order they are listed (``methods_by_dataset.csv`` only with several datasets,
#: ``metric_ranking.csv``, the objective metrics ranked by agreement with MOS, only with metrics).
REPORT_FILES = ("summary.json", "stimuli.csv", "raters.csv", "methods.csv", "pairs.csv", "report.html")


def safe_frame(df: pd.DataFrame, keep=()) -> pd.DataFrame:
    """Copy of ``df`` with every text cell :func:`neutralise`-d (columns in ``keep`` untouched), and
    every column name too: a header cell is a cell (a metric column named ``=HYPERLINK(...)``)."""
    out = df.copy()
    for c in out.columns:
        if c not in keep and (out[c].dtype == object or pd.api.types.is_string_dtype(out[c])):
            out[c] = out[c].map(neutralise)
    out.columns = [neutralise(c) for c in out.columns]
    return out


def csv_text(df: pd.DataFrame | None, first=()) -> str:
    """``df`` as spreadsheet-safe CSV text, columns ``first`` first; lists joined by ``; ``."""
    df = pd.DataFrame(columns=list(first)) if df is None else df.copy()
    for c in df.columns:
        if df[c].map(lambda v: isinstance(v, list | tuple | np.ndarray)).any():
            df[c] = df[c].map(lambda v: "; ".join(map(str, v)) if isinstance(v, list | tuple | np.ndarray) else v)
    cols = [c for c in first if c in df.columns] + [c for c in df.columns if c not in first]
    return safe_frame(df[cols]).to_csv(index=False, lineterminator="\n")


def report_files(rep: Report, title: str = "MOS study report") -> dict[str, bytes]:
    """Every report file of ``rep`` as ``{name: bytes}`` (see :data:`REPORT_FILES`)."""
    files = {
        "summary.json": json.dumps(summary(rep), indent=2, allow_nan=False),
        "stimuli.csv": csv_text(rep.stimuli, STIMULI_COLS),
        "raters.csv": csv_text(rep.raters, RATER_COLS),
        "methods.csv": csv_text(rep.methods, ["method"]),
        "pairs.csv": csv_text(rep.pairs, PAIR_COLS),
    }
    if rep.methods_by_dataset is not None:
        files["methods_by_dataset.csv"] = csv_text(rep.methods_by_dataset, ["dataset", "method"])
    if rep.metric_ranking:
        files["metric_ranking.csv"] = csv_text(pd.DataFrame(rep.metric_ranking), ["rank", "metric"])
    files["report.html"] = html.render(rep, title)
    return {k: v.encode("utf-8") for k, v in files.items()}
