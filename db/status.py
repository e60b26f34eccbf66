"""Admin summary of a study's progress: raters, ratings per method and votes per item against the target."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import assignment
from db.engine import Database
from db.models import Rater, Rating, StudyMode, Trial, TrialMode
from db.queries import stimulus_methods, study_row, test_stimuli, vote_key, vote_rows


def _spread(values: list[int]) -> dict:
    values = values or [0]
    return {"min": min(values), "mean": sum(values) / len(values), "max": max(values)}


def study_status(db: Database, name: str) -> dict:
    """Admin summary: raters started/completed, ratings per method, votes per item min/mean/max vs target.

    Keys: name, status, mode, raters, completed, ratings, ratings_per_method {method: n},
    votes_per_stimulus {min, mean, max, target, items} (ratings per test item, repeats excluded;
    items = stimuli for ACR plus pairs for pair mode), assigned_per_stimulus {min, mean, max}, sampling,
    target_half_width, valid_votes {min, mean, max, target, at_target, items, total, screened_out}: the
    votes that count toward the targets (screened-out raters' left out: they are topped up), ``at_target``
    items whose target is met under the study's sampling (``active``: every pair once the pair answers reach
    target x pairs; ``adaptive``: target votes and the MOS half-width at most ``target_half_width``).
    Method names appear here: admin only.
    """

    def work(s: Session) -> dict:
        st = study_row(s, name)
        n_raters = select(func.count()).select_from(Rater).where(Rater.study_id == st.id)
        raters = s.scalar(n_raters) or 0
        completed = s.scalar(n_raters.where(Rater.completed_at.is_not(None))) or 0
        n_ratings = s.scalar(
            select(func.count()).select_from(Rating).join(Rater, Rating.rater_id == Rater.id).where(Rater.study_id == st.id)
        )
        methods = {m.id: m.name for m in st.methods}
        method_of = stimulus_methods(s, st.id)
        per_method: Counter = Counter()
        votes: Counter = Counter()
        valid: Counter = Counter()
        assigned: Counter = Counter()
        screened = assignment.screened_out(s, st.id)
        for rid, mode, sid, a, b, rating_id in vote_rows(s, st.id):
            key = vote_key(mode, sid, a, b, method_of)
            assigned[key] += 1
            if rating_id is not None:
                votes[key] += 1
                valid[key] += rid not in screened
                for stim in (sid,) if mode == TrialMode.ACR else (a, b):
                    per_method[methods[method_of[stim]]] += 1
        stim = test_stimuli(s, st.id)
        all_items = [it for m in StudyMode(st.mode).trial_modes for it in assignment.latin_items(stim, m, seed=st.seed)]
        items = [it.key for it in all_items]
        reached, _ = assignment.targets(s, st, all_items, valid, valid)
        return {
            "name": st.name,
            "status": st.status,
            "mode": st.mode,
            "raters": raters,
            "completed": completed,
            "ratings": n_ratings or 0,
            "ratings_per_method": {n: per_method.get(n, 0) for n in methods.values()},
            "votes_per_stimulus": {
                **_spread([votes.get(k, 0) for k in items]),
                "target": st.votes_per_stimulus,
                "items": len(items),
            },
            "assigned_per_stimulus": _spread([assigned.get(k, 0) for k in items]),
            "sampling": st.sampling,
            "target_half_width": st.target_half_width,
            "valid_votes": {
                **_spread([valid.get(k, 0) for k in items]),
                "target": st.votes_per_stimulus,
                "at_target": len(reached & set(items)),
                "items": len(items),
                "total": sum(valid.values()),
                "screened_out": sum(votes.values()) - sum(valid.values()),
            },
        }

    return db.run(work)


def rating_ledger(db: Database) -> dict:
    """Every stored rating and trial owner of the whole database, for audits (the soak benchmark).

    Keys: ``ratings`` [(trial id, rater token)], ``raters`` (count), ``distinct_rated_trials`` (count),
    ``trial_owner`` {trial id: rater token}.
    """

    def work(s: Session) -> dict:
        return {
            "ratings": [tuple(r) for r in s.execute(
                select(Rating.trial_id, Rater.token).join(Rater, Rating.rater_id == Rater.id)).all()],
            "raters": s.scalar(select(func.count()).select_from(Rater)) or 0,
            "distinct_rated_trials": s.scalar(select(func.count(func.distinct(Rating.trial_id)))) or 0,
            "trial_owner": dict(s.execute(select(Trial.id, Rater.token).join(Rater, Trial.rater_id == Rater.id)).all()),
        }

    return db.run(work)
