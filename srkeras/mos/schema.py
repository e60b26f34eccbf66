"""Frame schema of rating data and the long-CSV import (issue 12).

Every statistic in :mod:`srkeras.mos` works on three pandas frames. A loader (the CSV import below, or
``db.rating_frames(db, study)``) must return them with exactly these columns:

``acr`` (one row per ACR vote): ``rater`` str, ``method`` str, ``image`` str, ``score`` float (1..5);
optional ``dataset`` str, ``response_ms`` float (ms from image shown to answer; NaN unknown), ``role``
(``low_anchor`` / ``high_anchor`` / ``test``: the method's role; anchors are the hidden gold trials, NN
expected <= 2 and HR >= 4), ``repeat`` bool (a test-retest repeat of the same rater's earlier vote on the
same stimulus: used for the retest check only, excluded from every score), ``trial`` int (answer order).

``pairs`` (one row per pair vote): ``rater``, ``image``, ``method_a``, ``method_b`` str, ``choice`` in
``a`` / ``b`` / ``tie``; optional ``dataset``, ``response_ms``, ``role_a``, ``role_b``, ``repeat``, ``trial``.

``metrics`` (one row per stimulus): ``method``, ``image`` str and any numeric columns (``psnr``,
``ssim``, ``lpips``, ...; ``inf`` allowed, e.g. PSNR of HR); optional ``dataset``.

When ``dataset`` is given, the stimulus key is ``dataset/image`` (images of different sets may share a
name); give ``dataset`` in the metrics file too then. Missing optional columns get their defaults
(``role`` test, ``repeat`` False, ``response_ms`` NaN): without a ``repeat`` column no vote is a repeat,
so a rater's second vote on a stimulus (a second session) counts in the MOS like the first, and the
test-retest check has no data; mark test-retest copies with ``repeat`` 1. :func:`validate_acr`,
:func:`validate_pairs` and :func:`validate_metrics` check and normalise a frame and raise
:class:`RatingsFileError` naming the source and the line (CSV line; frame row + 2 for frames).
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from srkeras.mos.vocabulary import FRAME_CHOICES, MethodRole

ACR_COLUMNS = ("rater", "method", "image", "score")
PAIR_COLUMNS = ("rater", "image", "method_a", "method_b", "choice")
METRIC_KEYS = ("method", "image")
OPTIONAL = ("dataset", "response_ms", "role", "repeat", "trial")
PAIR_OPTIONAL = ("dataset", "response_ms", "role_a", "role_b", "repeat", "trial")
ROLES = tuple(r.value for r in MethodRole)
CHOICES = FRAME_CHOICES  # a, b, tie: :class:`srkeras.mos.vocabulary.PairChoice` as frames spell it
SCORE_RANGE = (1.0, 5.0)
#: Text starting with one of these is run as a formula by spreadsheets (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
#: Columns the report computes per stimulus or method (and ``summary.json`` keys per method): a metric
#: column of one of these names would be confused with (or overwrite) the report's own, so it is refused.
REPORT_COLUMNS = frozenset({
    "n", "mos", "std", "se", "ci95", "ci95_low", "ci95_high", "mos_screened", "ci95_screened",
    "ci95_low_screened", "ci95_high_screened", "zmos", "p913_mos", "mle", "mle_ci95_low", "mle_ci95_high",
    "raters", "images", "mean_rank", "role", *(f"hist_{k}" for k in range(1, 6)),
})
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


class RatingsFileError(ValueError):
    """Malformed rating/metric data; ``source`` and ``line`` (1-based, header = 1) locate the fault."""

    def __init__(self, source: str, line: int | None, message: str):
        self.source, self.line = str(source), line
        where = f"{source}, line {line}" if line is not None else str(source)
        super().__init__(f"{where}: {message}")


def neutralise(value):
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula; else unchanged.

    Numbers, and text that is a plain decimal number such as ``-0.5``, are left alone (OWASP's advice).
    """
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    return value if _NUMBER.fullmatch(value) else "'" + value


def unneutralise(text: str) -> str:
    """Inverse of :func:`neutralise` for text read back from a CSV file written with it."""
    if len(text) > 1 and text[0] == "'" and text[1:].startswith(FORMULA_START) and not _NUMBER.fullmatch(text[1:]):
        return text[1:]
    return text


def _text(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip()


def _name(v) -> str:
    return unneutralise(_text(v))


def _number(v, src, line, col, *, allow_inf=False, allow_empty=False) -> float:
    s = _text(v)
    if s == "" and allow_empty:
        return float("nan")
    try:
        x = float(s)
    except ValueError:
        raise RatingsFileError(src, line, f"column {col!r}: {s!r} is not a number") from None
    if math.isnan(x) or (math.isinf(x) and not allow_inf):
        raise RatingsFileError(src, line, f"column {col!r}: {s!r} is not a finite number")
    return x


def _flag(v, src, line, col) -> bool:
    s = _text(v).lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise RatingsFileError(src, line, f"column {col!r}: {s!r} is not a boolean (0/1/true/false)")


def _required(df: pd.DataFrame, cols, src) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise RatingsFileError(src, 1, f"missing column(s) {', '.join(missing)}; have {', '.join(map(str, df.columns))}")


def _names(df, cols, src, first_line) -> None:
    for c in cols:
        for i, v in enumerate(df[c].tolist()):
            if _text(v) == "":
                raise RatingsFileError(src, first_line + i, f"column {c!r} is empty")


def _key_images(out: pd.DataFrame) -> None:
    if "dataset" in out.columns:
        ds = out["dataset"].map(_name)
        out["dataset"] = ds
        out["image"] = [f"{d}/{i}" if d else i for d, i in zip(ds, out["image"])]


def _role(v, src, line, col) -> str:
    s = _text(v).lower() or MethodRole.TEST.value
    if s not in ROLES:
        raise RatingsFileError(src, line, f"column {col!r}: {s!r} is not one of {', '.join(ROLES)}")
    return s


def _common(df, out, src, first_line, role_cols) -> None:
    n = len(df)
    rows = range(first_line, first_line + n)
    if "response_ms" in df.columns:
        ms = [_number(v, src, ln, "response_ms", allow_empty=True) for v, ln in zip(df["response_ms"], rows)]
        if any(x < 0 for x in ms if not math.isnan(x)):
            bad = next(ln for x, ln in zip(ms, rows) if x < 0)
            raise RatingsFileError(src, bad, "column 'response_ms' is negative")
        out["response_ms"] = np.asarray(ms, float)
    else:
        out["response_ms"] = np.full(n, np.nan)
    for c in role_cols:
        vals = df[c] if c in df.columns else [""] * n
        out[c] = [_role(v, src, ln, c) for v, ln in zip(vals, rows)]
    vals = df["repeat"] if "repeat" in df.columns else [""] * n
    out["repeat"] = np.array([_flag(v, src, ln, "repeat") for v, ln in zip(vals, rows)], bool)
    if "trial" in df.columns:
        out["trial"] = [_number(v, src, ln, "trial", allow_empty=True) for v, ln in zip(df["trial"], rows)]
    else:
        out["trial"] = np.arange(n, dtype=float)
    if "dataset" in df.columns:
        out["dataset"] = df["dataset"].tolist()
    _key_images(out)


def validate_acr(df: pd.DataFrame, source: str = "<acr frame>", first_line: int = 2) -> pd.DataFrame:
    """Check an ACR frame against the schema; return a normalised copy (see module docstring)."""
    _required(df, ACR_COLUMNS, source)
    df = df.reset_index(drop=True)
    _names(df, ("rater", "method", "image"), source, first_line)
    out = pd.DataFrame({c: df[c].map(_name) for c in ("rater", "method", "image")})
    lo, hi = SCORE_RANGE
    scores = []
    for i, v in enumerate(df["score"].tolist()):
        x = _number(v, source, first_line + i, "score")
        if not lo <= x <= hi:
            raise RatingsFileError(source, first_line + i, f"column 'score': {x:g} outside {lo:g}..{hi:g}")
        scores.append(x)
    out["score"] = np.asarray(scores, float)
    _common(df, out, source, first_line, ("role",))
    roles = out.groupby("method")["role"].nunique()
    if (roles > 1).any():
        raise RatingsFileError(source, None, f"method(s) {', '.join(roles[roles > 1].index)} have several roles")
    return out


def validate_pairs(df: pd.DataFrame, source: str = "<pairs frame>", first_line: int = 2) -> pd.DataFrame:
    """Check a pair-comparison frame against the schema; return a normalised copy."""
    _required(df, PAIR_COLUMNS, source)
    df = df.reset_index(drop=True)
    _names(df, ("rater", "image", "method_a", "method_b"), source, first_line)
    out = pd.DataFrame({c: df[c].map(_name) for c in ("rater", "image", "method_a", "method_b")})
    choices = []
    for i, (v, a, b) in enumerate(zip(df["choice"], out["method_a"], out["method_b"])):
        s = _text(v).lower()
        if s not in CHOICES:
            raise RatingsFileError(source, first_line + i, f"column 'choice': {s!r} is not one of {', '.join(CHOICES)}")
        if a == b:
            raise RatingsFileError(source, first_line + i, f"method_a and method_b are both {a!r}")
        choices.append(s)
    out["choice"] = choices
    _common(df, out, source, first_line, ("role_a", "role_b"))
    return out


def validate_metrics(df: pd.DataFrame, source: str = "<metrics frame>", first_line: int = 2) -> pd.DataFrame:
    """Check an objective-metric frame (``method,image,<metric>...``); every other column must be numeric
    and named apart from the report's own columns (:data:`REPORT_COLUMNS`)."""
    _required(df, METRIC_KEYS, source)
    clash = [str(c) for c in df.columns if str(c) in REPORT_COLUMNS]
    if clash:
        raise RatingsFileError(source, 1, f"metric column(s) {', '.join(clash)} have the name of a column the "
                                          f"report computes; rename them (e.g. metric_{clash[0]})")
    df = df.reset_index(drop=True)
    _names(df, METRIC_KEYS, source, first_line)
    out = pd.DataFrame({c: df[c].map(_name) for c in METRIC_KEYS})
    for c in df.columns:
        if c in (*METRIC_KEYS, "dataset"):
            continue
        out[str(c)] = [
            _number(v, source, first_line + i, c, allow_inf=True, allow_empty=True) for i, v in enumerate(df[c])
        ]
    if "dataset" in df.columns:
        out["dataset"] = df["dataset"].tolist()
        _key_images(out)
    dup = out.duplicated(["method", "image"]).to_numpy()
    if dup.any():
        raise RatingsFileError(source, first_line + int(np.argmax(dup)), "duplicate (method, image) row")
    return out


def metric_columns(metrics: pd.DataFrame | None) -> list[str]:
    """The numeric metric columns of a validated metrics frame."""
    if metrics is None:
        return []
    return [c for c in metrics.columns if c not in (*METRIC_KEYS, "dataset")]


def validate_frames(acr, pairs, metrics, source: str):
    """(acr, pairs, metrics) of one source (e.g. ``study 'x'``) validated, each None when empty."""
    return (validate_acr(acr, f"{source} (acr)") if acr is not None and len(acr) else None,
            validate_pairs(pairs, f"{source} (pairs)") if pairs is not None and len(pairs) else None,
            validate_metrics(metrics, f"{source} (metrics)") if metrics is not None and len(metrics) else None)


def merge_metrics(stored: pd.DataFrame | None, given: pd.DataFrame | None) -> tuple[pd.DataFrame | None, list[str]]:
    """A study's ``stored`` metrics with the metric columns of a ``given`` metrics file merged in.

    Rows stay the stored stimuli, matched on (method, image); a column only the file has is added (NaN
    where it has no row), a column both have takes the file's value wherever the file gives one (the
    file wins). Returns (merged frame, the stored columns the file overrode). Either side may be None.
    """
    if given is None or stored is None:
        return (stored if given is None else given), []
    cols = metric_columns(given)
    clashes = [c for c in cols if c in stored.columns]
    merged = stored.merge(given[[*METRIC_KEYS, *cols]], on=list(METRIC_KEYS), how="left", suffixes=("", " (given)"))
    for c in clashes:
        merged[c] = merged.pop(f"{c} (given)").combine_first(merged[c])
    return merged, clashes


def _read_csv(path) -> pd.DataFrame:
    path = Path(path)
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise RatingsFileError(path, None, f"cannot open: {e.strerror}") from None
    with fh:
        try:
            rows = list(csv.reader(fh))
        except (csv.Error, UnicodeDecodeError) as e:
            raise RatingsFileError(path, None, f"not a readable CSV file: {e}") from None
    if not rows:
        raise RatingsFileError(path, 1, "empty file (expected a header line)")
    header = [unneutralise(h.strip()).lower() for h in rows[0]]  # headers written neutralised read back
    if len(set(header)) != len(header):
        raise RatingsFileError(path, 1, "duplicate column names in the header")
    body = []
    for ln, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            raise RatingsFileError(path, ln, "empty line")
        if len(row) != len(header):
            raise RatingsFileError(path, ln, f"{len(row)} fields, the header has {len(header)}")
        body.append(row)
    if not body:
        raise RatingsFileError(path, 2, "no data rows")
    return pd.DataFrame(body, columns=header, dtype=object)


def read_acr_csv(path) -> pd.DataFrame:
    """Read a long ACR CSV ``rater,method,image,score[,dataset,response_ms,role,repeat,trial]``."""
    return validate_acr(_read_csv(path), str(path))


def read_pairs_csv(path) -> pd.DataFrame:
    """Read a long pair CSV ``rater,image,method_a,method_b,choice[,dataset,response_ms,role_a,role_b,repeat]``."""
    return validate_pairs(_read_csv(path), str(path))


def text_columns(df: pd.DataFrame) -> list[str]:
    """Columns of a metrics frame that are labels, not metrics (e.g. ``category``): not a key nor
    ``dataset`` nor a metric's name (:data:`srkeras.metrics.registry.METRICS`), with at least one cell
    and no cell that reads as a number. A column with numbers and
    a stray word stays a metric column (and is refused, naming the cell)."""

    def is_number(v) -> bool:
        try:
            float(_text(v))
        except ValueError:
            return False
        return True

    from srkeras.metrics.registry import METRICS  # a metric's own column is never a label

    return [str(c) for c in df.columns if c not in (*METRIC_KEYS, "dataset") and str(c).lower() not in METRICS
            and any(_text(v) for v in df[c]) and not any(is_number(v) for v in df[c] if _text(v))]  # fmt: skip


def read_metrics_csv(path, on_ignored=None) -> pd.DataFrame:
    """Read an objective-metric CSV ``method,image,<metric>...`` (e.g. ``psnr,ssim,lpips``); text columns
    (:func:`text_columns`) are left out, their names passed to ``on_ignored`` (a one-line notice)."""
    df = _read_csv(path)
    ignored = text_columns(df)
    if ignored and on_ignored is not None:
        on_ignored(ignored)
    return validate_metrics(df.drop(columns=ignored), str(path))
