"""20 simulated raters in parallel threads through the data layer: no rating lost, none duplicated."""

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
from db.models import Rater, Rating, Trial
from tests._raters import honest_score

N_RATERS = 20


@pytest.mark.timeout(180)
def test_parallel_raters_lose_and_duplicate_nothing(db_url, make_study):
    # 4 test sources x 3 methods = 12 items; cap 8 = 6 items + 2 repeats per rater.
    st = make_study(db_url, trials_per_rater=8, votes_per_stimulus=100, repeats=2)
    db = open_database(db_url)
    start = threading.Barrier(N_RATERS)
    submitted: dict[str, dict[int, int]] = {}
    outcomes = Counter()
    lock = threading.Lock()

    def race(tok, trial_id, score, n=3):
        """``n`` simultaneous identical submissions of one answer (double/triple click)."""
        gate = threading.Barrier(n)

        def one(_):
            gate.wait()
            return submit_rating(db, tok, trial_id, score=score, response_ms=2000)

        with ThreadPoolExecutor(n) as ex:
            return list(ex.map(one, range(n)))

    method_of = stimulus_file_methods(db, st.name)

    def rater(i: int) -> str:
        rng = random.Random(i)
        start.wait()  # everyone starts (and gets assigned) at once
        tok = start_rater(db, st.name, display=f"sim{i}")
        mine: dict[int, int] = {}
        k = 0
        while (t := next_trial(db, tok)) is not None:
            assert t.trial_id not in mine, "a trial came back after it was answered"
            # the anchors as expected (a screened-out rater's votes are topped up, issue 20), else any score
            # that repeats agree on
            score = honest_score(method_of, t, 2 + len(t.image_path) % 3)
            if k == 0:  # concurrent duplicate submits of the first answer
                res = race(tok, t.trial_id, score)
                assert sum(not r.duplicate for r in res) == 1, res
                assert len({r.rating_id for r in res}) == 1
                with lock:
                    outcomes["raced"] += 1
            else:
                r = submit_rating(db, tok, t.trial_id, score=score, response_ms=2000)
                assert not r.duplicate
                if rng.random() < 0.3:  # a refresh re-posting the same answer
                    assert submit_rating(db, tok, t.trial_id, score=score).duplicate
                    with lock:
                        outcomes["resent"] += 1
                if rng.random() < 0.2:  # a conflicting re-post is refused
                    with pytest.raises(RatingRejected, match="already answered"):
                        submit_rating(db, tok, t.trial_id, score=score % 5 + 1)
            mine[t.trial_id] = score
            k += 1
        with lock:
            submitted[tok] = mine
        return tok

    try:
        with ThreadPoolExecutor(N_RATERS) as ex:
            tokens = list(ex.map(rater, range(N_RATERS)))
        assert len(set(tokens)) == N_RATERS and outcomes["raced"] == N_RATERS

        expected = {tid: sc for m in submitted.values() for tid, sc in m.items()}
        with db.session() as s:
            stored = dict(s.execute(select(Rating.trial_id, Rating.score)).all())
            n_rows = s.scalar(select(func.count()).select_from(Rating))
            n_trials = s.scalar(select(func.count()).select_from(Trial))
            completed = s.scalar(select(func.count()).select_from(Rater).where(Rater.completed_at.is_not(None)))
        assert n_rows == len(stored) == len(expected) == n_trials == N_RATERS * 8  # nothing lost or doubled
        assert stored == expected
        assert completed == N_RATERS
        for tok in tokens:
            info = get_rater(db, tok)
            assert info.completed and info.done == info.total == 8 and info.completion_code
        # Assignment ran serialised: votes per stimulus still differ by at most one.
        status = study_status(db, st.name)
        v = status["votes_per_stimulus"]
        assert v["max"] - v["min"] <= 1 and status["ratings"] == N_RATERS * 8
        assert sum(status["ratings_per_method"].values()) == N_RATERS * 6
    finally:
        db.close()
