"""Admin outputs of a MOS study: the ratings CSV, the per-method MOS table and the pair preferences.

MOS with a 95 % confidence interval from the t distribution, ``mos +- t(0.975, n-1) * std / sqrt(n)``
(sample std, ddof=1), as in ITU-T P.800.2 / P.1401; repeated (test-retest) trials are left out so each
rater counts once per stimulus. Everything here names methods: admin side only, never the rater app.
"""

from __future__ import annotations

import csv
import io
import math

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from db.engine import Database
from db.models import Method, PairChoice, Rater, Rating, SourceImage, Stimulus, StudyMode, Trial, TrialMode
from db.qc import FAST_MS, rater_qc
from db.queries import TrialJoin, answered_trials, study_row

CSV_COLUMNS = [
    "study",
    "rating_id",
    "rater_token",
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

MOS_COLUMNS = ["method", "role", "mos", "std", "n", "ci95", "ci95_low", "ci95_high", "psnr", "ssim", "n_stimuli"]


def _csv_columns(j: TrialJoin) -> tuple:
    return (Rating, Trial, Rater, j.stimulus, j.method, j.source, j.stimulus_a, j.method_a, j.stimulus_b, j.method_b,
            j.source_a)


def _flags(text: str | None) -> set[str]:
    return set(filter(None, (text or "").split(",")))


def _iso(t):
    return None if t is None else t.isoformat()


def _csv_row(study: str, fast_ms: int, rt, t, r, s0, m0, src0, sa_, ma, sb_, mb, srca) -> dict:
    """One CSV row from a row of :func:`db.queries.answered_trials` (see :data:`CSV_COLUMNS`)."""
    row = dict(
        study=study,
        rating_id=rt.id,
        rater_token=r.token,
        rater_display=r.display or "",
        rater_completed=int(r.completed_at is not None),
        rater_qc_flags=r.qc_flags or "",
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

    QC: ``rater_qc_flags`` are recomputed first (see :func:`db.qc.rater_qc`) so the file carries
    current flags; ``too_fast`` marks the single answer. ``psnr`` is empty for the HR stimulus.
    """
    fast_ms = FAST_MS if fast_ms is None else fast_ms
    rater_qc(db, name, fast_ms=fast_ms)

    def work(s: Session) -> str:
        st = study_row(s, name)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
        w.writeheader()
        for row in s.execute(answered_trials(st.id, _csv_columns)):
            w.writerow(_csv_row(st.name, fast_ms, *row))
        return buf.getvalue()

    return db.run(work)


def _ci95(values):
    from scipy import stats

    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    std = math.sqrt(var)
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return mean, std, half


def _mos_rows(s: Session, name: str):
    """(study, methods, test stimuli (method, psnr, ssim), ACR ratings (method, score, rater flags))."""
    st = study_row(s, name)
    methods = list(s.scalars(select(Method).where(Method.study_id == st.id).order_by(Method.id)))
    stim = s.execute(
        select(Stimulus.method_id, Stimulus.psnr, Stimulus.ssim)
        .join(SourceImage, Stimulus.source_id == SourceImage.id)
        .where(Stimulus.study_id == st.id, SourceImage.is_calibration.is_(False))
    ).all()
    ratings = s.execute(
        select(Stimulus.method_id, Rating.score, Rater.qc_flags)
        .join(Trial, Rating.trial_id == Trial.id)
        .join(Rater, Rating.rater_id == Rater.id)
        .join(Stimulus, Trial.stimulus_id == Stimulus.id)
        .where(Rater.study_id == st.id, Trial.mode == TrialMode.ACR, Trial.is_repeat_of.is_(None))
    ).all()
    return st, methods, stim, ratings


def mos_table(db: Database, name: str, exclude_flags=()):
    """Per-method MOS of the ACR ratings of study ``name`` as a pandas DataFrame (method order).

    Columns: method, role, mos, std (sample), n (ratings), ci95 (half width, t distribution),
    ci95_low, ci95_high, psnr and ssim (mean over the method's test stimuli; psnr is inf for HR),
    n_stimuli. Repeats are excluded; raters carrying any flag in ``exclude_flags`` (e.g.
    ``("gold_fail",)``) are excluded too; by default nobody is. Empty (no rows) for pair-only studies.
    """
    import pandas as pd

    st, methods, stim, ratings = db.run(lambda s: _mos_rows(s, name))
    if st.mode == StudyMode.PAIR:
        return pd.DataFrame(columns=MOS_COLUMNS)
    excl = set(exclude_flags)
    rows = []
    for m in methods:
        scores = [sc for mid, sc, fl in ratings if mid == m.id and not (excl & _flags(fl))]
        ps = [math.inf if p is None else p for mid, p, _ in stim if mid == m.id]
        ss = [x for mid, _, x in stim if mid == m.id and x is not None]
        mos, std, half = _ci95(scores)
        rows.append(
            dict(
                method=m.name,
                role=m.role,
                mos=mos,
                std=std,
                n=len(scores),
                ci95=half,
                ci95_low=mos - half,
                ci95_high=mos + half,
                psnr=(sum(ps) / len(ps)) if ps else math.nan,
                ssim=(sum(ss) / len(ss)) if ss else math.nan,
                n_stimuli=len(ps),
            )
        )
    return pd.DataFrame(rows, columns=MOS_COLUMNS)


PREF_COLUMNS = ["method_a", "method_b", "a_wins", "b_wins", "no_preference", "n", "a_preference", "ci95"]


def _pair_rows(s: Session, name: str):
    """(method names by id, pair ratings (left method, right method, choice, rater flags))."""
    st = study_row(s, name)
    sa_, sb_ = aliased(Stimulus), aliased(Stimulus)
    names = {m.id: m.name for m in s.scalars(select(Method).where(Method.study_id == st.id))}
    rows = s.execute(
        select(sa_.method_id, sb_.method_id, Rating.choice, Rater.qc_flags)
        .join(Trial, Rating.trial_id == Trial.id)
        .join(Rater, Rating.rater_id == Rater.id)
        .join(sa_, Trial.stimulus_a_id == sa_.id)
        .join(sb_, Trial.stimulus_b_id == sb_.id)
        .where(Rater.study_id == st.id, Trial.mode == TrialMode.PAIR, Trial.is_repeat_of.is_(None))
    ).all()
    return names, rows


def preference_table(db: Database, name: str, exclude_flags=()):
    """Pair-comparison results of study ``name`` per method pair (methods in study order), as a DataFrame.

    ``a_preference`` = (a_wins + no_preference / 2) / n, the share of votes for ``method_a`` with ties
    split; ``ci95`` its normal-approximation half width 1.96 sqrt(p (1 - p) / n). Repeats excluded;
    raters carrying a flag in ``exclude_flags`` left out. Empty for ACR-only studies.
    """
    import pandas as pd

    names, rows = db.run(lambda s: _pair_rows(s, name))
    excl = set(exclude_flags)
    tally: dict[tuple[int, int], list[int]] = {}
    for left, right, choice, flags in rows:
        if excl & _flags(flags):
            continue
        a, b = sorted((left, right))
        t = tally.setdefault((a, b), [0, 0, 0])
        if choice == PairChoice.NONE:
            t[2] += 1
        else:
            chosen = left if choice == PairChoice.A else right
            t[0 if chosen == a else 1] += 1
    out = []
    for (a, b), (wa, wb, ties) in sorted(tally.items()):
        n = wa + wb + ties
        p = (wa + ties / 2) / n
        out.append(dict(method_a=names[a], method_b=names[b], a_wins=wa, b_wins=wb, no_preference=ties, n=n,
                        a_preference=p, ci95=1.96 * math.sqrt(p * (1 - p) / n)))
    return pd.DataFrame(out, columns=PREF_COLUMNS)
