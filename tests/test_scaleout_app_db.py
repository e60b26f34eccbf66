"""Several rater-app servers on one database, at the data layer (issue 15).

Each app server process holds its own :class:`db.Database` (engine and connection pool, cached per
process by ``mos_app.state.get_database``); every bit of coordination between servers lives in the
database: the study row lock around assignment, the rater row lock around an answer, the unique key
on ``rating.trial_id``. Two ``Database`` objects on one URL are therefore two servers as far as the
data layer can tell (on SQLite each has its own in-process write lock, so the cross-process path,
``BEGIN IMMEDIATE`` plus the busy timeout, is the one exercised).

20 raters run in parallel threads; every request goes to the other server than the previous one (a load
balancer without stickiness). Every answer is re-sent to the other server (a retried request after a
timeout), and one trial per rater is answered from two tabs on two servers at once. Afterwards every
answer is stored exactly once, no trial is lost, and the votes per stimulus are exactly those of the
same raters on one server (spread at most 1, same histogram). The browser test with two real
``streamlit run`` processes is ``tests/test_scaleout_app_browser.py``.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from db import (
    RatingRejected,
    get_rater,
    next_trial,
    open_database,
    start_rater,
    stimulus_file_methods,
    study_status,
    submit_rating,
)
from db.models import Rater, Rating, Study, Trial
from tests._raters import honest_score

N_RATERS = 20
TRIALS = 5  # per rater: 4 votes + 1 test-retest repeat
REPEATS = 1


def _rater(servers, study: str, i: int, start: threading.Barrier) -> tuple[str, dict[int, int], Counter]:
    """One rater alternating between ``servers``; returns (token, {trial: score}, outcome counts)."""
    rng = random.Random(i)
    hops = iter(range(10**6))

    def server():
        return servers[(i + next(hops)) % len(servers)]

    seen = Counter()
    start.wait()
    tok = start_rater(server(), study, display=f"sim{i}")
    mine: dict[int, int] = {}
    method_of = stimulus_file_methods(server(), study)
    while (t := next_trial(server(), tok)) is not None:
        assert t.trial_id not in mine, "a trial came back on another server after it was answered"
        assert t.position == len(mine) and t.done == len(mine), "resumed at the wrong trial"
        # the anchors as screening expects (a screened-out rater's votes are topped up, issue 20)
        score = honest_score(method_of, t, 2 + len(t.image_path) % 3)
        if len(mine) == 1:  # two tabs of this rater on two servers answer the same trial at once
            gate = threading.Barrier(2)

            def tab(db, score=score, tid=t.trial_id, gate=gate):
                gate.wait()
                return submit_rating(db, tok, tid, score=score, response_ms=1500)

            with ThreadPoolExecutor(2) as ex:
                res = list(ex.map(tab, servers[:2]))
            assert sorted(r.duplicate for r in res) == [False, True] and res[0].rating_id == res[1].rating_id
            seen["two_tabs"] += 1
        else:
            first = submit_rating(server(), tok, t.trial_id, score=score, response_ms=1500)
            assert not first.duplicate
        # The request is retried on the other server (the reply was lost): it counts once.
        again = submit_rating(server(), tok, t.trial_id, score=score, response_ms=1500)
        assert again.duplicate and again.done == len(mine) + 1
        seen["retried"] += 1
        if rng.random() < 0.3:  # a conflicting answer from a stale tab on another server is refused
            with pytest.raises(RatingRejected, match="already answered"):
                submit_rating(server(), tok, t.trial_id, score=score % 5 + 1)
            seen["refused"] += 1
        mine[t.trial_id] = score
    return tok, mine, seen


def _votes(db, study: str) -> list[int]:
    """Sorted answered votes per test item (repeats excluded), from the admin status query."""
    with db.session() as s:
        st = s.scalars(select(Study).where(Study.name == study)).one()
        rows = s.execute(
            select(Trial.stimulus_id, func.count(Rating.id))
            .join(Rater, Trial.rater_id == Rater.id)
            .join(Rating, Rating.trial_id == Trial.id)
            .where(Rater.study_id == st.id, Trial.is_repeat_of.is_(None))
            .group_by(Trial.stimulus_id)
        ).all()
    n_items = study_status(db, study)["votes_per_stimulus"]["items"]
    counts = [n for _, n in rows]
    return sorted(counts + [0] * (n_items - len(counts)))


@pytest.mark.timeout(240)
def test_two_servers_store_each_answer_once_and_balance_as_one(db_url, make_study):
    multi = make_study(db_url, name="multi", trials_per_rater=TRIALS, votes_per_stimulus=100, repeats=REPEATS)
    solo = make_study(db_url, name="solo", trials_per_rater=TRIALS, votes_per_stimulus=100, repeats=REPEATS,
                      image_seed=0)
    servers = [open_database(db_url), open_database(db_url)]
    start = threading.Barrier(N_RATERS)
    try:
        with ThreadPoolExecutor(N_RATERS) as ex:
            runs = list(ex.map(lambda i: _rater(servers, multi.name, i, start), range(N_RATERS)))
        tokens = [tok for tok, _, _ in runs]
        expected = {tid: sc for _, mine, _ in runs for tid, sc in mine.items()}
        seen = sum((c for _, _, c in runs), Counter())
        assert len(set(tokens)) == N_RATERS
        assert seen["two_tabs"] == N_RATERS and seen["retried"] == N_RATERS * TRIALS

        db = servers[0]
        with db.session() as s:
            study_raters = select(Rater.id).join(Study, Rater.study_id == Study.id).where(Study.name == multi.name)
            stored = dict(s.execute(select(Rating.trial_id, Rating.score).where(Rating.rater_id.in_(study_raters))).all())
            n_rows = s.scalar(select(func.count()).select_from(Rating).where(Rating.rater_id.in_(study_raters)))
            n_trials = s.scalar(select(func.count()).select_from(Trial).where(Trial.rater_id.in_(study_raters)))
        # Every answer stored exactly once, no trial lost, the stored values are the ones given.
        assert n_rows == len(stored) == len(expected) == n_trials == N_RATERS * TRIALS
        assert stored == expected
        for tok in tokens:
            info = get_rater(servers[1], tok)
            assert info.completed and info.done == info.total == TRIALS and info.completion_code

        # The admin status reads the same through either server.
        status = [study_status(d, multi.name) for d in servers]
        assert status[0] == status[1]
        assert status[0]["ratings"] == N_RATERS * TRIALS and status[0]["completed"] == N_RATERS

        # Like with like: the same raters, one server, one after another (answering as screening expects:
        # a screened-out rater's votes would be topped up, issue 20, and change the later lists).
        method_of = stimulus_file_methods(db, solo.name)
        for i in range(N_RATERS):
            tok = start_rater(db, solo.name, seed=i)
            while (t := next_trial(db, tok)) is not None:
                submit_rating(db, tok, t.trial_id, score=honest_score(method_of, t), response_ms=3000)
        v_multi, v_solo = _votes(db, multi.name), _votes(db, solo.name)
        assert sum(v_multi) == N_RATERS * (TRIALS - REPEATS)
        assert v_multi[-1] - v_multi[0] <= 1, v_multi
        assert v_multi == v_solo, "two servers in parallel balance votes exactly as one server in sequence"
        solo_status = study_status(db, solo.name)["votes_per_stimulus"]
        assert {k: status[0]["votes_per_stimulus"][k] for k in ("min", "max", "mean")} == \
            {k: solo_status[k] for k in ("min", "max", "mean")}
    finally:
        for d in servers:
            d.close()
