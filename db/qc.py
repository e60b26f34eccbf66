"""Per-rater quality control of a study in the database: load its frames, screen, record the flags.

Who is screened out and why is decided only by :func:`srkeras.mos.screening.screen` (every rule, its
threshold and its numbers are documented there); this module loads the study's answers as rating frames
(:func:`db.frames.vote_frames`) with each rater's completion, calls it, and records the flags it returns
(:class:`~srkeras.mos.vocabulary.QcFlag` values, comma-separated, in ``Rater.qc_flags``: ``gold_fail``,
``retest_inconsistent``, ``too_fast``, ``straight_lining``, ``incomplete``; and, from the rules that compare
raters, ``low_correlation``, ``mle_inconsistent``, ``pair_inconsistent``, whole-study only) at a rater's completion
(:func:`record_rater_flags`) and on the admin's request (:func:`rater_qc`). Flags are recorded, never used
to drop data silently.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.engine import Database
from db.frames import vote_frames
from db.models import Rater
from db.queries import rater_row, study_row
from srkeras.mos.pseudonyms import pseudonyms
from srkeras.mos.screening import FAST_MS, qc_records, screen


def _screened(s: Session, study_id: int, raters: list[Rater], fast_ms: float, rater_ids=None, with_bt500=True):
    """(rater, QC record) of ``raters``; the answers read are those of ``rater_ids`` (None: everyone's)."""
    acr, pairs = vote_frames(s, study_id, rater_ids)
    table = screen(acr if len(acr) else None, pairs if len(pairs) else None, with_bt500=with_bt500,
                   completed={r.token: r.completed_at is not None for r in raters}, fast_ms=fast_ms)
    records = qc_records(table)
    return [(r, records[r.token]) for r in raters]


def study_pseudonyms(s: Session, study_id: int) -> dict[str, str]:
    """``{token: "rater-NN"}`` of every rater of a study, numbered in creation order
    (:mod:`srkeras.mos.pseudonyms`): what every report, export and dashboard calls a rater."""
    return pseudonyms(s.scalars(select(Rater.token).where(Rater.study_id == study_id).order_by(Rater.id)))


def study_qc(s: Session, study_id: int, fast_ms: float = FAST_MS) -> list[tuple[Rater, dict]]:
    """(rater row, :func:`srkeras.mos.screening.qc_records` entry) of every rater of a study, in creation
    order, screened together (BT.500 compares raters); nothing written."""
    raters = list(s.scalars(select(Rater).where(Rater.study_id == study_id).order_by(Rater.id)))
    return _screened(s, study_id, raters, fast_ms) if raters else []


def record_rater_flags(db: Database, token: str, fast_ms: float = FAST_MS) -> list[str]:
    """Screen one rater on their own answers and record their flags (at completion); returns them.

    Only the rules on the rater's own answers run here (gold, retest, too fast, straight-lining,
    incomplete): the rules that compare raters (``bt500``, never stored; ``low_correlation``,
    ``mle_inconsistent``, ``pair_inconsistent``) need the whole study and are recorded by :func:`rater_qc`. The screening runs in a read
    transaction and the flags are stored by a short write of their own, so the rating hot path never
    holds the write lock while pandas works.
    """

    def screen_one(s: Session) -> tuple[int, list[str]]:
        r = rater_row(s, token)
        rater = s.get(Rater, r.id)
        ((_, q),) = _screened(s, rater.study_id, [rater], fast_ms, rater_ids=[r.id], with_bt500=False)
        return r.id, [str(f) for f in q["flags"]]

    rater_id, flags = db.run(screen_one)
    db.run(lambda s: s.execute(update(Rater).where(Rater.id == rater_id).values(qc_flags=",".join(flags))),
           write=True)
    return flags


def rater_qc(db: Database, name: str, fast_ms: float = FAST_MS, store: bool = True) -> list[dict]:
    """QC of every rater of study ``name`` (creation order); with ``store`` records the flags in the DB.

    Recording is this explicit call (and a rater's completion, :func:`record_rater_flags`); exports and
    reports compute the current flags read-only. Each dict: rater (the pseudonym ``rater-NN`` of
    :func:`study_pseudonyms`; the token, a credential, is never returned), display, completed, n_trials,
    n_ratings, gold_n, gold_correct, gold_accuracy, retest_n, retest_agreement, retest_mean_abs_diff,
    fast_n, fast_fraction, median_response_ms, score_std, longest_same_score_run, flags (list of
    :class:`~srkeras.mos.vocabulary.QcFlag`), rejected and reasons (the screening verdict the Dashboard shows, ``bt500``
    included). Ratios are None when undefined.
    """

    def work(s: Session) -> list[dict]:
        out = []
        study_id = study_row(s, name).id
        names = study_pseudonyms(s, study_id)
        for r, q in study_qc(s, study_id, fast_ms):
            flags = ",".join(q["flags"])
            if store and r.qc_flags != flags:
                r.qc_flags = flags
            out.append(
                {"rater": names[r.token], "display": r.display, "completed": r.completed_at is not None,
                 "n_trials": r.n_trials, **q}
            )
        return out

    return db.run(work, write=store)


def current_flags(db: Database, name: str, fast_ms: float = FAST_MS) -> dict[str, list[str]]:
    """``{rater token: current QC flags}`` of study ``name``, computed now and not recorded (for the
    database's own use: filtering a study's frames; never shown)."""
    return db.run(lambda s: {r.token: [str(f) for f in q["flags"]]
                             for r, q in study_qc(s, study_row(s, name).id, fast_ms)})
