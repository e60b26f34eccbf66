"""A study's ratings as the three long frames of :mod:`srkeras.mos.schema` (for ``pipelines.report``).

``acr``: rater, method, image, score, role, repeat, trial, response_ms; ``pairs``: rater, image,
method_a (shown left), method_b (right), choice ``a`` / ``b`` / ``tie``, role_a, role_b, repeat, trial,
response_ms; ``metrics``: method, image, psnr (``inf`` for HR), ssim of the test stimuli, then one column
per further metric stored for the study (``lpips``, ``niqe``...: table ``stimulus_metric``; NaN where a
stimulus has none; a database not yet migrated to it has none). :func:`rater_completion` says which
raters finished (the ``incomplete`` screening rule). Raters are their opaque tokens, images the HR source
names. :func:`study_methods` gives the study's mode and its methods with their roles in study order.
Method names appear here: admin side only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from db.engine import Database
from db.models import Method, PairChoice, Rater, Rating, SourceImage, Stimulus, StimulusMetric, Trial, TrialMode
from db.queries import TrialJoin, answered_trials, study_row

ACR_FRAME = ["rater", "method", "image", "score", "role", "repeat", "trial", "response_ms"]
PAIR_FRAME = ["rater", "image", "method_a", "method_b", "choice", "role_a", "role_b", "repeat", "trial", "response_ms"]
METRIC_FRAME = ["method", "image", "psnr", "ssim"]


def _vote_columns(j: TrialJoin) -> tuple:
    return (
        Rater.token, Trial.mode, Trial.position, Trial.is_repeat_of, Rating.score, Rating.choice,
        Rating.response_ms, j.method.name, j.method.role, j.source.name, j.method_a.name, j.method_a.role,
        j.method_b.name, j.method_b.role, j.source_a.name,
    )


def vote_frames(s: Session, study_id: int, rater_ids: Iterable[int] | None = None):
    """(acr, pairs) frames of the study's answered trials (only those of ``rater_ids`` when given), in
    rater then answer order, inside the caller's transaction; pair choices in the frame spelling
    (:attr:`srkeras.mos.vocabulary.PairChoice.frame`)."""
    import pandas as pd

    acr, pairs = [], []
    for tok, mode, pos, rep, score, choice, ms, m, role, src, ma, role_a, mb, role_b, src_a in s.execute(
        answered_trials(study_id, _vote_columns, rater_ids)
    ):
        common = dict(rater=tok, repeat=rep is not None, trial=pos, response_ms=math.nan if ms is None else ms)
        if mode == TrialMode.ACR:
            acr.append(dict(common, method=m, image=src, score=float(score), role=role))
        else:
            pairs.append(dict(common, image=src_a, method_a=ma, method_b=mb, choice=PairChoice(choice).frame,
                              role_a=role_a, role_b=role_b))
    return pd.DataFrame(acr, columns=ACR_FRAME), pd.DataFrame(pairs, columns=PAIR_FRAME)


def _metric_frame(s: Session, study_id: int):
    import pandas as pd

    rows = s.execute(
        select(Method.name, SourceImage.name, Stimulus.psnr, Stimulus.ssim)
        .join(Method, Stimulus.method_id == Method.id)
        .join(SourceImage, Stimulus.source_id == SourceImage.id)
        .where(Stimulus.study_id == study_id, SourceImage.is_calibration.is_(False))
        .order_by(Method.id, SourceImage.id)
    ).all()
    extra = []
    if inspect(s.connection()).has_table(StimulusMetric.__tablename__):  # a report never migrates the database
        extra = s.execute(
            select(Method.name, SourceImage.name, StimulusMetric.name, StimulusMetric.value)
            .join(Stimulus, StimulusMetric.stimulus_id == Stimulus.id)
            .join(Method, Stimulus.method_id == Method.id)
            .join(SourceImage, Stimulus.source_id == SourceImage.id)
            .where(Stimulus.study_id == study_id, SourceImage.is_calibration.is_(False))
            .order_by(StimulusMetric.id)
        ).all()
    met = {(m, src): dict(method=m, image=src, psnr=math.inf if p is None else p, ssim=math.nan if x is None else x)
           for m, src, p, x in rows}
    names = list(dict.fromkeys(k for *_, k, _ in extra))
    for m, src, k, v in extra:
        if (m, src) in met:
            met[(m, src)][k] = math.nan if v is None else v
    return pd.DataFrame(list(met.values()), columns=METRIC_FRAME + names)


def rating_frames(db: Database, name: str):
    """(acr, pairs, metrics) pandas DataFrames of study ``name``, repeats included and marked ``repeat``."""

    def work(s: Session):
        st = study_row(s, name)
        return (*vote_frames(s, st.id), _metric_frame(s, st.id))

    return db.run(work)


def rater_completion(db: Database, name: str) -> dict[str, bool]:
    """``{rater token: finished their session}`` of every rater of study ``name``, in creation order."""

    def work(s: Session) -> dict[str, bool]:
        st = study_row(s, name)
        rows = s.execute(
            select(Rater.token, Rater.completed_at).where(Rater.study_id == st.id).order_by(Rater.id)
        ).all()
        return {tok: done is not None for tok, done in rows}

    return db.run(work)


def study_methods(db: Database, name: str) -> tuple[str, dict[str, str]]:
    """(study mode, ``{method name: role}`` in study order) of study ``name``."""

    def work(s: Session):
        st = study_row(s, name)
        rows = s.execute(select(Method.name, Method.role).where(Method.study_id == st.id).order_by(Method.id)).all()
        return str(st.mode), {m: str(r) for m, r in rows}

    return db.run(work)


def stimulus_file_methods(db: Database, name: str) -> dict[str, str]:
    """``{stimulus file stem (SHA-256): method name}`` of study ``name`` (admin knowledge: simulations)."""

    def work(s: Session) -> dict[str, str]:
        st = study_row(s, name)
        rows = s.execute(
            select(Stimulus.sha256, Method.name).join(Method, Stimulus.method_id == Method.id)
            .where(Stimulus.study_id == st.id)
        ).all()
        return {sha: m for sha, m in rows}

    return db.run(work)
