"""Admin outputs of a MOS study: the ratings CSV, the long CSVs, the quick MOS and preference tables.

This module only loads; every statistic comes from :mod:`srkeras.mos` (``mos_table`` and
``preference_table`` are thin wrappers over :func:`db.frames.rating_frames` plus
:func:`srkeras.mos.scores.vote_table` / :func:`srkeras.mos.pairs.preference_table`). Exports are
read-only: the QC flags in a CSV are computed for it, never recorded as a side effect (recording is the
explicit :func:`db.qc.rater_qc`). Every CSV is spreadsheet-safe (:func:`srkeras.mos.schema.neutralise`).
Everything here names methods: admin side only, never the rater app. Raters are named by pseudonym
(``rater-01``... in creation order, :mod:`srkeras.mos.pseudonyms`), never by token.
"""

from __future__ import annotations

import csv
import io

from sqlalchemy.orm import Session

from db.engine import Database
from db.frames import rater_completion, rating_frames, study_methods
from db.models import PairChoice, Rater, Rating, StudyMode, Trial, TrialMode
from db.qc import current_flags, study_pseudonyms, study_qc
from db.queries import TrialJoin, answered_trials, study_row
from srkeras.mos.files import safe_frame
from srkeras.mos.pairs import PREFERENCE_TABLE
from srkeras.mos.pairs import preference_table as _preference_table
from srkeras.mos.pseudonyms import pseudonyms, rename
from srkeras.mos.schema import neutralise
from srkeras.mos.scores import N_BOOT, VOTE_TABLE, vote_table
from srkeras.mos.screening import FAST_MS

CSV_COLUMNS = [
    "study",
    "rating_id",
    "rater",
    "rater_display",
    "rater_completed",
    "rater_qc_flags",
    "trial_id",
    "position",
    "mode",
    "is_gold",
    "is_repeat_of",
    "source",
    "method",
    "stimulus_sha256",
    "left_method",
    "right_method",
    "left_sha256",
    "right_sha256",
    "score",
    "choice",
    "chosen_method",
    "psnr",
    "ssim",
    "shown_at",
    "answered_at",
    "response_ms",
    "too_fast",
    "viewport_w",
    "viewport_h",
    "device_pixel_ratio",
]

MOS_COLUMNS = VOTE_TABLE
PREF_COLUMNS = PREFERENCE_TABLE
#: Server-made identifiers, written verbatim: the rater's pseudonym (``rater-NN``, never the token: a
#: token is a credential that opens the rater's session and shows their completion code).
VERBATIM_COLUMNS = frozenset({"rater"})


def _csv_columns(j: TrialJoin) -> tuple:
    return (Rating, Trial, Rater, j.stimulus, j.method, j.source, j.stimulus_a, j.method_a, j.stimulus_b, j.method_b,
            j.source_a)


def _iso(t):
    return None if t is None else t.isoformat()


def _csv_row(study: str, fast_ms: int, flags: dict, names: dict, rt, t, r, s0, m0, src0, sa_, ma, sb_, mb,
             srca) -> dict:
    """One CSV row from a row of :func:`db.queries.answered_trials` (see :data:`CSV_COLUMNS`)."""
    row = dict(
        study=study,
        rating_id=rt.id,
        rater=names[r.token],
        rater_display=r.display or "",
        rater_completed=int(r.completed_at is not None),
        rater_qc_flags=flags.get(r.id, r.qc_flags or ""),
        trial_id=t.id,
        position=t.position,
        mode=t.mode,
        is_gold=int(bool(t.is_gold)),
        is_repeat_of="" if t.is_repeat_of is None else t.is_repeat_of,
        score="" if rt.score is None else rt.score,
        choice=rt.choice or "",
        shown_at=_iso(t.shown_at),
        answered_at=_iso(rt.answered_at),
        response_ms="" if rt.response_ms is None else rt.response_ms,
        too_fast="" if rt.response_ms is None else int(rt.response_ms < fast_ms),
        viewport_w=rt.viewport_w or "",
        viewport_h=rt.viewport_h or "",
        device_pixel_ratio=rt.device_pixel_ratio or "",
    )
    if t.mode == TrialMode.ACR:
        row.update(
            source=src0.name,
            method=m0.name,
            stimulus_sha256=s0.sha256,
            psnr="" if s0.psnr is None else f"{s0.psnr:.4f}",
            ssim="" if s0.ssim is None else f"{s0.ssim:.6f}",
        )
    else:
        row.update(
            source=srca.name,
            left_method=ma.name,
            right_method=mb.name,
            left_sha256=sa_.sha256,
            right_sha256=sb_.sha256,
            chosen_method={PairChoice.A: ma.name, PairChoice.B: mb.name}.get(rt.choice, ""),
        )
    return row


def export_ratings_csv(db: Database, name: str, fast_ms: int | None = None) -> str:
    """All ratings of study ``name`` as CSV text, one row per rating (admin only: has method names).

    QC: ``rater_qc_flags`` are each rater's flags computed now (as :func:`db.qc.rater_qc` would record
    them; nothing is written); ``too_fast`` marks the single answer. ``psnr`` is empty for the HR
    stimulus. Text cells a spreadsheet would run as formulas get a leading ``'``.
    """
    fast_ms = FAST_MS if fast_ms is None else fast_ms

    def work(s: Session) -> str:
        st = study_row(s, name)
        flags = {r.id: ",".join(q["flags"]) for r, q in study_qc(s, st.id, fast_ms)}
        names = study_pseudonyms(s, st.id)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
        w.writeheader()
        for row in s.execute(answered_trials(st.id, _csv_columns)):
            w.writerow({k: v if k in VERBATIM_COLUMNS else neutralise(v)
                        for k, v in _csv_row(st.name, fast_ms, flags, names, *row).items()})
        return buf.getvalue()

    return db.run(work)


def export_long_csv(db: Database, name: str) -> dict[str, str]:
    """Study ``name`` in the long CSV format that ``pipelines.report`` imports (:mod:`srkeras.mos.schema`).

    ``{"ratings.csv": ..., "pairs.csv": ..., "metrics.csv": ...}``, each key only when the study has such
    rows: ACR ``rater,method,image,score,role,repeat,trial,response_ms``, pairs
    ``rater,image,method_a,method_b,choice,role_a,role_b,repeat,trial,response_ms`` and metrics
    ``method,image,psnr,ssim`` plus every metric the study stored; ``rater`` is the pseudonym. Reporting these with
    ``--ratings-csv/--pairs-csv --metrics-csv`` gives the numbers of ``--db``; text cells are
    spreadsheet-safe and read back unchanged.
    """
    acr, pairs, metrics = rating_frames(db, name)
    names = pseudonyms(rater_completion(db, name))  # creation order, as study_pseudonyms
    acr, pairs = rename(acr, names), rename(pairs, names)
    files = {"ratings.csv": acr, "pairs.csv": pairs, "metrics.csv": metrics}
    return {k: safe_frame(df).to_csv(index=False, lineterminator="\n", float_format="%.17g")
            for k, df in files.items() if len(df)}


def _excluded(db: Database, name: str, exclude_flags) -> set[str]:
    excl = {str(f) for f in exclude_flags}
    if not excl:
        return set()
    return {tok for tok, flags in current_flags(db, name).items() if excl & set(flags)}


def mos_table(db: Database, name: str, exclude_flags=(), n_boot: int = N_BOOT):
    """Per-method MOS of the ACR votes of study ``name`` (method order): :func:`srkeras.mos.scores.vote_table`.

    Columns :data:`MOS_COLUMNS`: method, role, mos, std, n (votes), ci95 (t half width over the votes),
    ci95_low, ci95_high, boot_ci95_low/high (:func:`srkeras.mos.scores.method_interval`: the report's and
    the dashboard's interval, same replicates and seed), psnr and ssim (mean over the
    method's test stimuli; psnr is inf for HR), n_stimuli. Repeats are excluded; raters whose current QC
    flags include one of ``exclude_flags`` (e.g. ``("gold_fail",)``) too; by default nobody is. Empty
    (no rows) for pair-only studies. The full analysis is ``pipelines.report`` / the admin dashboard.
    """
    import pandas as pd

    mode, roles = study_methods(db, name)
    if mode == StudyMode.PAIR:
        return pd.DataFrame(columns=MOS_COLUMNS)
    acr, _, metrics = rating_frames(db, name)
    acr = acr.loc[~acr["rater"].isin(_excluded(db, name, exclude_flags))]
    return vote_table(acr, metrics, roles, n_boot=n_boot)


def preference_table(db: Database, name: str, exclude_flags=()):
    """Pair-comparison votes of study ``name`` per method pair: :func:`srkeras.mos.pairs.preference_table`.

    Methods in study order; ``a_preference`` = (a_wins + no_preference / 2) / n, ``ci95`` its normal
    half width. Repeats excluded; raters whose current QC flags include one of ``exclude_flags`` left
    out. Empty for ACR-only studies.
    """
    _, roles = study_methods(db, name)
    _, pairs, _ = rating_frames(db, name)
    pairs = pairs.loc[~pairs["rater"].isin(_excluded(db, name, exclude_flags))]
    return _preference_table(pairs, list(roles))
