"""MOS data layer: schema/migrations, rater flow, rejection of bad input, balance, QC, MOS table."""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from db import (
    ABANDONED_AFTER,
    MethodSpec,
    RatingRejected,
    SourceSpec,
    StimulusSpec,
    StudyClosed,
    StudyExists,
    StudyFull,
    UnknownRater,
    UnknownStudy,
    assignment,
    calibration_examples,
    close_study,
    export_ratings_csv,
    get_rater,
    get_study,
    list_studies,
    mos_table,
    next_trial,
    open_database,
    preference_table,
    rater_qc,
    register_study,
    start_rater,
    study_status,
    submit_rating,
)
from db.engine import head_revision
from db.models import Base, Method, Rater, Rating, SourceImage, Stimulus, Trial

# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def n_ratings(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Rating))


def trial_rows(db, token):
    """[(position, source name, method name, role, trial)] of one rater (admin-side view)."""
    with db.session() as s:
        r = s.scalars(select(Rater).where(Rater.token == token)).one()
        out = []
        for t in s.scalars(select(Trial).where(Trial.rater_id == r.id).order_by(Trial.position)):
            stims = [t.stimulus] if t.mode == "acr" else [t.stimulus_a, t.stimulus_b]
            out.append(
                dict(
                    position=t.position,
                    mode=t.mode,
                    source=stims[0].source.name,
                    methods=tuple(x.method.name for x in stims),
                    roles=tuple(x.method.role for x in stims),
                    stimuli=tuple(x.id for x in stims),
                    is_gold=t.is_gold,
                    repeat_of=t.is_repeat_of,
                    id=t.id,
                )
            )
        return out


def honest(row) -> int:
    """A score that passes screening (the anchors as expected): screened-out raters' votes count toward
    no target (issue 20, top-up), so tests of targets answer with it."""
    return {"low_anchor": 1, "high_anchor": 5}.get(row["roles"][0], 3)


def answer_all(db, token, score_for=None, choice="A", response_ms=3000):
    """Answer every trial of ``token``; ``score_for(trial_row) -> int`` (admin knowledge) or 3."""
    rows = {r["id"]: r for r in trial_rows(db, token)}
    res = None
    while (t := next_trial(db, token)) is not None:
        if t.mode == "acr":
            sc = score_for(rows[t.trial_id]) if score_for else 3
            res = submit_rating(db, token, t.trial_id, score=sc, response_ms=response_ms)
        else:
            res = submit_rating(db, token, t.trial_id, choice=choice, response_ms=response_ms)
    return res


# ------------------------------------------------------------------------------------------------
# schema and migrations
# ------------------------------------------------------------------------------------------------


def test_migrated_schema_matches_orm(db_url):
    """``alembic upgrade head`` on an empty database gives exactly the ORM metadata (no diff)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    db = open_database(db_url)
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
            assert set(inspect(conn).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
            mc = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            diff = compare_metadata(mc, Base.metadata)
        assert diff == [], diff
    finally:
        db.close()
    # Re-opening a current database is a no-op; downgrade to base and upgrade again round-trips.
    from alembic import command

    from db.engine import alembic_config, upgrade

    db = open_database(db_url)
    try:
        with db.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        with db.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        upgrade(db.engine)
        with db.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        db.close()


def test_sqlite_pragmas(sqlite_url):
    db = open_database(sqlite_url)
    try:
        with db.engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"
            assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    finally:
        db.close()


def test_db_constraints_refuse_double_rating_and_bad_scores(db, make_study, db_url):
    """Even bypassing the service, the schema refuses a 2nd rating of a trial and a score of 6."""
    st = make_study(db_url)
    tok = start_rater(db, st.name)
    t = next_trial(db, tok)
    submit_rating(db, tok, t.trial_id, score=3)
    with pytest.raises(IntegrityError):
        with db.session(write=True) as s:
            rid = s.scalar(select(Rater.id).where(Rater.token == tok))
            s.add(Rating(trial_id=t.trial_id, rater_id=rid, score=4))
    t2 = next_trial(db, tok)
    for bad in (dict(score=6), dict(score=0), dict(score=None, choice=None), dict(score=3, choice="A"), dict(choice="C")):
        with pytest.raises(IntegrityError):
            with db.session(write=True) as s:
                rid = s.scalar(select(Rater.id).where(Rater.token == tok))
                s.add(Rating(trial_id=t2.trial_id, rater_id=rid, **bad))
    with pytest.raises(IntegrityError):  # unique (rater, position)
        with db.session(write=True) as s:
            tr = s.get(Trial, t2.trial_id)
            s.add(Trial(rater_id=tr.rater_id, position=tr.position, mode="acr", stimulus_id=tr.stimulus_id))
    with pytest.raises(IntegrityError):  # foreign keys are enforced (SQLite too)
        with db.session(write=True) as s:
            s.add(Rating(trial_id=10**6, rater_id=10**6, score=3))
    assert n_ratings(db) == 1


# ------------------------------------------------------------------------------------------------
# rater flow and blindness
# ------------------------------------------------------------------------------------------------


def test_full_rater_flow(db, make_study, db_url):
    st = make_study(db_url, break_every=4)
    info = get_study(db, st.name)
    assert [s.name for s in list_studies(db)] == [st.name]
    assert (info.mode, info.status, info.scale, info.votes_per_stimulus, info.break_every) == ("acr", "open", 4, 3, 4)
    tok = start_rater(db, st.name, display="  27in 4K monitor ")
    assert len(tok) >= 32
    r = get_rater(db, tok)
    # 4 test sources x 3 methods, plus 2 repeats
    assert (r.study_name, r.done, r.total, r.completed, r.display) == (st.name, 0, 14, False, "27in 4K monitor")

    first = next_trial(db, tok)
    again = next_trial(db, tok)  # a refresh: the same trial, shown_at kept
    assert first.trial_id == again.trial_id and first.position == 0 and first.shown_at == again.shown_at
    assert first.total == 14 and first.done == 0 and first.mode == "acr" and first.left_path is None
    seen, result = [], None
    t = first
    while t is not None:
        seen.append(t.position)
        assert t.break_due == (t.position > 0 and t.position % 4 == 0)
        result = submit_rating(db, tok, t.trial_id, score=1 + t.position % 5, viewport_w=1280,
                                       viewport_h=800, device_pixel_ratio=2.0)
        assert result.done == len(seen) and not result.duplicate
        t = next_trial(db, tok)
    assert seen == list(range(14))
    assert result.completed and result.completion_code and result.completion_code.startswith("MOS-")
    r = get_rater(db, tok)
    assert (r.done, r.total, r.completed, r.completion_code) == (14, 14, True, result.completion_code)
    with db.session() as s:
        rt = s.scalars(select(Rating).order_by(Rating.id)).first()
        assert (rt.viewport_w, rt.viewport_h, rt.device_pixel_ratio) == (1280, 800, 2.0)
        assert rt.response_ms is not None and rt.response_ms >= 0  # server-side when the client sends none


def test_trial_view_is_blind_and_files_are_content_addressed(db, make_study, db_url):
    st = make_study(db_url)
    method_names = {"nearest", "bicubic", "hr"}
    tok = start_rater(db, st.name)
    while (t := next_trial(db, tok)) is not None:
        blob = repr(t).lower()
        assert not any(m in blob for m in method_names), blob
        p = Path(t.image_path)
        assert p.parent == st.stimuli_dir.resolve()
        assert p.name == hashlib.sha256(p.read_bytes()).hexdigest() + ".png"
        submit_rating(db, tok, t.trial_id, score=3)
    for ex in calibration_examples(db, st.name):
        assert not any(m in repr(ex).lower() for m in method_names)


def test_calibration_examples_are_not_trials(db, make_study, db_url):
    st = make_study(db_url, calibration_images=1)
    ex = calibration_examples(db, st.name)
    assert [(e.score, e.label, e.source_index) for e in ex] == [(1, "bad", 0), (5, "excellent", 0)]
    with db.session() as s:
        cal = s.scalars(select(SourceImage).where(SourceImage.is_calibration.is_(True))).one()
        cal_stims = {x.id for x in s.scalars(select(Stimulus).where(Stimulus.source_id == cal.id))}
        cal_shas = {x.sha256 for x in s.scalars(select(Stimulus).where(Stimulus.source_id == cal.id))}
    assert {Path(e.image_path).stem for e in ex} == cal_shas and len(cal_stims) == 2
    for _ in range(3):
        tok = start_rater(db, st.name)
        assert not cal_stims & {x for row in trial_rows(db, tok) for x in row["stimuli"]}


# ------------------------------------------------------------------------------------------------
# bad input: rejected with a clear message, nothing stored
# ------------------------------------------------------------------------------------------------


def test_bad_input_rejected_nothing_stored(db, make_study, db_url):
    st = make_study(db_url)
    tok = start_rater(db, st.name)
    other = start_rater(db, st.name)
    t = next_trial(db, tok)
    t_other = next_trial(db, other)

    cases = [
        (dict(score=0), "from 1"),
        (dict(score=6), "from 1"),
        (dict(score=-3), "from 1"),
        (dict(score=2.5), "whole number"),
        (dict(score="3"), "whole number"),
        (dict(score=True), "whole number"),
        (dict(score=float("nan")), "whole number"),
        (dict(), "no answer"),
        (dict(choice="A"), "score from 1 to 5"),  # wrong kind for an ACR trial
        (dict(choice="left"), "choice must be"),
        (dict(score=3, choice="A"), "not both"),
        (dict(score=3, response_ms=-5), "response_ms"),
        (dict(score=3, device_pixel_ratio=0), "device_pixel_ratio"),
        (dict(score=3, viewport_w=float("inf")), "viewport_w"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(RatingRejected, match=msg):
            submit_rating(db, tok, t.trial_id, **kwargs)
    # unknown or forged tokens
    for bad_tok in ["", "x" * 200, tok[:-1] + ("A" if tok[-1] != "A" else "B"), "' OR 1=1 --", None]:
        with pytest.raises(UnknownRater, match="unknown rater token"):
            submit_rating(db, bad_tok, t.trial_id, score=3)
        with pytest.raises(UnknownRater):
            next_trial(db, bad_tok)
        with pytest.raises(UnknownRater):
            get_rater(db, bad_tok)
    # another rater's trial, a nonexistent trial, a bad trial id, a trial not shown yet
    with pytest.raises(RatingRejected, match="does not belong to this rater"):
        submit_rating(db, tok, t_other.trial_id, score=3)
    with pytest.raises(RatingRejected, match="does not belong to this rater"):
        submit_rating(db, tok, 10**9, score=3)
    with pytest.raises(RatingRejected, match="trial id must be an integer"):
        submit_rating(db, tok, "1", score=3)
    later = [r for r in trial_rows(db, tok) if r["position"] == 5][0]
    with pytest.raises(RatingRejected, match="not been shown"):
        submit_rating(db, tok, later["id"], score=3)
    assert n_ratings(db) == 0

    # answered trial: identical resubmission is idempotent, a different answer is refused
    first = submit_rating(db, tok, t.trial_id, score=4)
    dup = submit_rating(db, tok, t.trial_id, score=4)
    assert dup.duplicate and dup.rating_id == first.rating_id and not first.duplicate and dup.done == 1
    with pytest.raises(RatingRejected, match="already answered"):
        submit_rating(db, tok, t.trial_id, score=2)
    assert n_ratings(db) == 1

    # stale trial after the study closed
    t2 = next_trial(db, tok)
    close_study(db, st.name)
    with pytest.raises(StudyClosed, match="closed"):
        submit_rating(db, tok, t2.trial_id, score=3)
    with pytest.raises(StudyClosed):
        next_trial(db, tok)
    with pytest.raises(StudyClosed):
        start_rater(db, st.name)
    assert submit_rating(db, tok, t.trial_id, score=4).duplicate  # a retry of a stored answer still succeeds
    assert n_ratings(db) == 1
    assert get_study(db, st.name).status == "closed"
    with pytest.raises(UnknownStudy):
        get_study(db, "nope")
    with pytest.raises(UnknownStudy):
        start_rater(db, "nope")


# ------------------------------------------------------------------------------------------------
# balanced assignment
# ------------------------------------------------------------------------------------------------


def test_balanced_assignment(db, make_study, db_url):
    """7 raters, cap 5 (3 items + 2 repeats) over 12 items: votes differ by <= 1 after every rater,
    every rater sees every method, never two versions of one source back to back."""
    st = make_study(db_url, trials_per_rater=5, votes_per_stimulus=10)
    with db.session() as s:
        items = [x.id for x in s.scalars(select(Stimulus).join(SourceImage).where(SourceImage.is_calibration.is_(False)))]
    assert len(items) == 12
    votes = Counter()
    for i in range(7):
        tok = start_rater(db, st.name)
        rows = trial_rows(db, tok)
        assert len(rows) == 5
        assert {m for r in rows for m in r["methods"]} == {"nearest", "bicubic", "hr"}
        assert all(a["source"] != b["source"] for a, b in zip(rows, rows[1:])), rows
        # gold = the anchors' trials
        assert all(r["is_gold"] == (r["roles"][0] != "test") for r in rows)
        answer_all(db, tok, honest)
        for r in rows:
            if r["repeat_of"] is None:
                votes[r["stimuli"][0]] += 1
        counts = [votes[x] for x in items]
        assert max(counts) - min(counts) <= 1, (i, counts)
        status = study_status(db, st.name)
        assert status["votes_per_stimulus"]["max"] - status["votes_per_stimulus"]["min"] <= 1
        assert status["votes_per_stimulus"]["max"] == max(counts)
    status = study_status(db, st.name)
    assert status["raters"] == status["completed"] == 7 and status["ratings"] == 35
    assert status["ratings_per_method"] == {"nearest": 7, "bicubic": 7, "hr": 7}  # 21 = 7 x 3, repeats excluded
    assert math.isclose(status["votes_per_stimulus"]["mean"], 21 / 12)


def test_study_full_after_target_votes(db, make_study, db_url):
    st = make_study(db_url, votes_per_stimulus=2, repeats=0)
    for _ in range(2):  # each rater takes every item once
        answer_all(db, start_rater(db, st.name), honest)
    with pytest.raises(StudyFull, match=f"target of 2 votes per stimulus with {n_ratings(db)} ratings stored"):
        start_rater(db, st.name)


def test_unstarted_lists_never_close_the_study(db, make_study, db_url):
    """Start and leave, 12 times (issue 24, item 4): the 13th rater still starts, ratings count right,
    and ``StudyFull`` says truthfully whether the target is reached or the votes are held by raters
    answering now."""
    st = make_study(db_url, votes_per_stimulus=1, repeats=0)  # one rater's list takes every item
    for _ in range(12):
        start_rater(db, st.name)  # consent, Start, closed tab: no answer
    rater = start_rater(db, st.name)  # was: StudyFull "has reached its target" with 0 ratings stored
    submit_rating(db, rater, next_trial(db, rater).trial_id, score=4)
    with pytest.raises(StudyFull, match="held by raters rating now; try again later \\(within 120 minutes"):
        start_rater(db, st.name)  # a rater answering holds their list for ABANDONED_AFTER
    answer_all(db, rater, honest)
    assert n_ratings(db) == 12 and study_status(db, st.name)["ratings"] == 12
    with pytest.raises(StudyFull, match="target of 1 votes per stimulus with 12 ratings stored"):
        start_rater(db, st.name)


def test_abandoned_raters_free_their_stimuli(db, make_study, db_url):
    """Open trials of a rater inactive for > ABANDONED_AFTER stop counting: the next rater gets them."""
    import datetime as dt

    from db.models import utcnow

    st = make_study(db_url, trials_per_rater=8, repeats=2, votes_per_stimulus=5)  # 6 of 12 items each
    gone = start_rater(db, st.name)
    submit_rating(db, gone, next_trial(db, gone).trial_id, score=3)
    gone_items = {r["stimuli"] for r in trial_rows(db, gone) if r["repeat_of"] is None}
    # While "gone" is active, a newcomer gets the other 6 items.
    fresh = start_rater(db, st.name)
    assert not gone_items & {r["stimuli"] for r in trial_rows(db, fresh) if r["repeat_of"] is None}
    # Two hours and a bit later (both idle), a third rater gets the 5 items "gone" never answered,
    # plus one of the least-voted others.
    old = utcnow() - ABANDONED_AFTER - dt.timedelta(minutes=5)
    with db.session(write=True) as s:
        for r in s.scalars(select(Rater)):
            r.created_at = old
        for t in s.scalars(select(Trial).where(Trial.shown_at.is_not(None))):
            t.shown_at = old
    third = start_rater(db, st.name)
    third_items = {r["stimuli"] for r in trial_rows(db, third) if r["repeat_of"] is None}
    answered = {r["stimuli"] for r in trial_rows(db, gone) if r["position"] == 0}
    assert len(third_items & (gone_items - answered)) == 5
    # "gone" can still come back and continue where they stopped.
    assert next_trial(db, gone).position == 1


def test_repeats_and_gold(db, make_study, db_url):
    st = make_study(db_url, n_images=7, repeats=3)  # 6 test sources x 3 methods = 18 items
    tok = start_rater(db, st.name, seed=1)
    rows = trial_rows(db, tok)
    by_id = {r["id"]: r for r in rows}
    reps = [r for r in rows if r["repeat_of"] is not None]
    assert len(rows) == 21 and len(reps) == 3
    for r in reps:
        orig = by_id[r["repeat_of"]]
        assert orig["stimuli"] == r["stimuli"] and not orig["is_gold"]
        assert r["position"] - orig["position"] >= 18 // 3 + 1
    golds = [r for r in rows if r["is_gold"] and r["repeat_of"] is None]
    assert Counter(r["roles"][0] for r in golds) == {"low_anchor": 6, "high_anchor": 6}
    assert all(a["source"] != b["source"] for a, b in zip(rows, rows[1:]))


def test_same_seed_same_order(make_study, tmp_path):
    """Two fresh copies of a study: the same rater seed gives the same list, another seed another."""
    orders = []
    for i, seed in enumerate((7, 7, 8)):
        st = make_study(f"sqlite:///{tmp_path / f'seed{i}.db'}", stimuli_dir=tmp_path / f"stim{i}")
        db = st.open()
        try:
            tok = start_rater(db, st.name, seed=seed)
            orders.append([(r["source"], r["methods"], r["repeat_of"] is not None) for r in trial_rows(db, tok)])
        finally:
            db.close()
    assert orders[0] == orders[1]
    assert orders[0] != orders[2]


def test_arrange_never_adjacent_when_feasible():
    rng = random.Random(0)
    for trial in range(300):
        n_src = rng.randint(2, 6)
        counts = [rng.randint(1, 6) for _ in range(n_src)]
        slots = [
            assignment.Slot(assignment.Item("acr", (k,), (0,), src))
            for k, src in enumerate(s for s, c in enumerate(counts) for _ in range(c))
        ]
        n = len(slots)
        feasible = max(counts) <= (n + 1) // 2
        order = assignment.arrange(slots, random.Random(trial))
        assert sorted(id(s) for s in order) == sorted(id(s) for s in slots)
        adjacent = sum(a.source == b.source for a, b in zip(order, order[1:]))
        if feasible:
            assert adjacent == 0, (counts, [s.source for s in order])
        # deterministic
        again = assignment.arrange(slots, random.Random(trial))
        assert [s.item for s in again] == [s.item for s in order]


def test_select_items_covers_every_method_even_with_irregular_counts():
    rows = [assignment.StimRow(m * 100 + s, m, s, "test") for m in range(4) for s in range(6)]
    items = assignment.latin_items(rows, "acr", seed=3)
    # Method 2 much more voted than the rest: a pure least-voted pick would leave it out.
    counts = {it.key: (5 if it.methods == (2,) else 0) for it in items}
    sel = assignment.select_items(items, counts, 4)
    assert {it.methods[0] for it in sel} == {0, 1, 2, 3} and len(set(it.key for it in sel)) == 4


# ------------------------------------------------------------------------------------------------
# pair mode
# ------------------------------------------------------------------------------------------------


def test_pair_mode_flow(db, make_study, db_url):
    st = make_study(db_url, mode="pair", repeats=1)
    tok = start_rater(db, st.name)
    rows = trial_rows(db, tok)
    # 4 sources x 3 method pairs + 1 repeat; the NN-vs-HR pair is the gold
    assert len(rows) == 13 and all(r["mode"] == "pair" for r in rows)
    assert all(r["is_gold"] == (set(r["roles"]) == {"low_anchor", "high_anchor"}) for r in rows)
    lefts = Counter(r["methods"][0] for r in rows)
    assert len(lefts) >= 2  # sides are randomised
    t = next_trial(db, tok)
    assert t.mode == "pair" and t.image_path is None and t.left_path != t.right_path
    with pytest.raises(RatingRejected, match="comparison trial"):
        submit_rating(db, tok, t.trial_id, score=3)
    r = submit_rating(db, tok, t.trial_id, choice="none")
    assert submit_rating(db, tok, t.trial_id, choice="none").duplicate
    with pytest.raises(RatingRejected, match="already answered"):
        submit_rating(db, tok, t.trial_id, choice="A")
    res = answer_all(db, tok, choice="B")
    assert res.completed and r.done == 1
    csv_text = export_ratings_csv(db, st.name)
    assert len(csv_text.strip().splitlines()) == 1 + 13
    assert mos_table(db, st.name).empty


def test_preference_table(db, make_study, db_url):
    """A rater who always prefers the better method (hr > bicubic > nearest): shares are 0 or 1."""
    st = make_study(db_url, mode="pair", repeats=0)
    rank = {"nearest": 0, "bicubic": 1, "hr": 2}
    for k in range(2):
        tok = start_rater(db, st.name)
        rows = {r["id"]: r for r in trial_rows(db, tok)}
        while (t := next_trial(db, tok)) is not None:
            left, right = rows[t.trial_id]["methods"]
            pick = "A" if rank[left] > rank[right] else "B"
            submit_rating(db, tok, t.trial_id, choice=pick if k == 0 else "none")
    tab = preference_table(db, st.name)
    assert len(tab) == 3 and (tab["n"] == 8).all()
    for _, row in tab.iterrows():
        a_better = rank[row.method_a] > rank[row.method_b]
        assert (row.a_wins, row.b_wins, row.no_preference) == ((4, 0, 4) if a_better else (0, 4, 4))
        assert row.a_preference == (0.75 if a_better else 0.25)
        assert math.isclose(row.ci95, 1.96 * math.sqrt(0.75 * 0.25 / 8))
    # Gold pairs (NN vs HR): the first rater always chose HR, the second never did.
    qc = rater_qc(db, st.name)
    assert [q["gold_n"] for q in qc] == [4, 4]
    assert [q["gold_accuracy"] for q in qc] == [1.0, 0.0]
    assert "gold_fail" not in qc[0]["flags"] and "gold_fail" in qc[1]["flags"]


def test_both_mode_blocks(db, make_study, db_url):
    st = make_study(db_url, mode="both", trials_per_rater=12, repeats=2)
    tok = start_rater(db, st.name)
    rows = trial_rows(db, tok)
    modes = [r["mode"] for r in rows]
    assert len(rows) == 12 and modes == sorted(modes)  # ACR block first, then pairs
    assert {m for r in rows if r["mode"] == "acr" for m in r["methods"]} == {"nearest", "bicubic", "hr"}
    assert all(a["source"] != b["source"] for a, b in zip(rows, rows[1:]))


# ------------------------------------------------------------------------------------------------
# QC, export and MOS
# ------------------------------------------------------------------------------------------------

IDEAL = {"nearest": 1, "bicubic": 3, "hr": 5}


def test_rater_qc_flags(db, make_study, db_url):
    st = make_study(db_url, n_images=7, repeats=2)
    good = start_rater(db, st.name, display="good")
    answer_all(db, good, score_for=lambda r: IDEAL[r["methods"][0]], response_ms=4000)
    lazy = start_rater(db, st.name, display="lazy")
    answer_all(db, lazy, score_for=lambda r: 3, response_ms=600)
    partial = start_rater(db, st.name, display="partial")
    t = next_trial(db, partial)
    first = trial_rows(db, partial)[0]
    submit_rating(db, partial, t.trial_id, score=IDEAL[first["methods"][0]], response_ms=2500)
    qc = {q["display"]: q for q in rater_qc(db, st.name)}
    assert qc["good"]["flags"] == [] and qc["good"]["gold_accuracy"] == 1.0
    assert qc["good"]["retest_agreement"] == 1.0 and qc["good"]["retest_n"] == 2
    assert qc["good"]["gold_n"] == 12 and qc["good"]["fast_fraction"] == 0.0
    assert set(qc["lazy"]["flags"]) == {"gold_fail", "too_fast", "straight_lining"}
    assert qc["lazy"]["gold_accuracy"] == 0.0 and qc["lazy"]["score_std"] == 0.0
    assert qc["lazy"]["fast_n"] == qc["lazy"]["n_ratings"] == 20
    assert qc["partial"]["flags"] == ["incomplete"]
    with db.session() as s:  # flags are recorded on the rater rows
        stored = dict(s.execute(select(Rater.display, Rater.qc_flags)).all())
    assert stored["good"] == "" and set(stored["lazy"].split(",")) == {"gold_fail", "too_fast", "straight_lining"}
    # nobody is dropped from the MOS by default; excluding a flag is explicit
    tab = mos_table(db, st.name)
    assert tab.set_index("method").loc["nearest", "n"] == 6 + 6 + 1 * (trial_rows(db, partial)[0]["methods"][0] == "nearest")
    tab2 = mos_table(db, st.name, exclude_flags=("straight_lining", "incomplete"))
    assert tab2.set_index("method")["mos"].to_dict() == {"nearest": 1.0, "bicubic": 3.0, "hr": 5.0}


def test_mos_table_values(db, make_study, db_url):
    """MOS, sample std and the t-based 95% CI checked by hand for 3 raters x 4 sources."""
    from scipy import stats

    st = make_study(db_url, repeats=0)
    offsets = [0, 1, -1]  # rater r gives IDEAL + offset (clipped), so per method: known values
    for off in offsets:
        tok = start_rater(db, st.name)
        answer_all(db, tok, score_for=lambda r, o=off: min(5, max(1, IDEAL[r["methods"][0]] + o)))
    tab = mos_table(db, st.name).set_index("method")
    for m, base in IDEAL.items():
        vals = [min(5, max(1, base + o)) for o in offsets for _ in range(4)]
        n = len(vals)
        mean = sum(vals) / n
        sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        assert tab.loc[m, "n"] == 12
        assert math.isclose(tab.loc[m, "mos"], mean) and math.isclose(tab.loc[m, "std"], sd)
        assert math.isclose(tab.loc[m, "ci95"], half) and math.isclose(tab.loc[m, "ci95_low"], mean - half)
    # bicubic: 4 x (3, 4, 2) -> mean 3, sd sqrt(8/11), t(0.975, 11) = 2.2010
    assert math.isclose(tab.loc["bicubic", "ci95"], 2.200985 * math.sqrt(8 / 11) / math.sqrt(12), rel_tol=1e-5)
    assert math.isinf(tab.loc["hr", "psnr"]) and tab.loc["hr", "ssim"] == 1.0
    assert tab.loc["nearest", "psnr"] < tab.loc["bicubic", "psnr"] < 100
    assert tab.loc["nearest", "ssim"] < tab.loc["bicubic", "ssim"] < 1.0


def test_export_csv(db, make_study, db_url):
    import csv
    import io

    st = make_study(db_url)
    tok = start_rater(db, st.name, display="phone")
    answer_all(db, tok, score_for=lambda r: IDEAL[r["methods"][0]], response_ms=1000)
    rows = list(csv.DictReader(io.StringIO(export_ratings_csv(db, st.name))))
    assert len(rows) == n_ratings(db) == 14
    assert {r["method"] for r in rows} == {"nearest", "bicubic", "hr"}
    assert all(r["rater"] == "rater-01" and r["rater_display"] == "phone" for r in rows)  # pseudonym, not token
    assert tok not in export_ratings_csv(db, st.name)
    assert all(int(r["score"]) == IDEAL[r["method"]] for r in rows)
    assert all(r["too_fast"] == "1" and "too_fast" in r["rater_qc_flags"].split(",") for r in rows)
    assert sum(r["is_repeat_of"] != "" for r in rows) == 2
    assert all(r["psnr"] == "" for r in rows if r["method"] == "hr")


def test_register_study_validation(db, tmp_path):
    stim = tmp_path / "s"
    stim.mkdir()
    for sha in ("a" * 64, "b" * 64):
        (stim / f"{sha}.png").write_bytes(b"x")
    M = [MethodSpec("nearest", "low_anchor"), MethodSpec("hr", "high_anchor")]
    S = [SourceSpec("x.png", "0" * 64, 8, 8)]
    X = [StimulusSpec("nearest", "x.png", "a" * 64, 8, 8, 20.0, 0.5),
         StimulusSpec("hr", "x.png", "b" * 64, 8, 8, None, 1.0)]
    kw = dict(mode="acr", scale=4, votes_per_stimulus=3, stimuli_dir=stim)
    with pytest.raises(ValueError, match="at least 2 test"):
        register_study(db, "v", methods=M, sources=S, stimuli=X, **kw)
    with pytest.raises(ValueError, match="low anchor"):
        register_study(db, "v", methods=M[:1], sources=S, stimuli=X, **kw)
    S2 = S + [SourceSpec("y.png", "1" * 64, 8, 8)]
    with pytest.raises(ValueError, match="no stimulus"):
        register_study(db, "v", methods=M, sources=S2, stimuli=X, **kw)
    X2 = X + [StimulusSpec("nearest", "y.png", "a" * 64, 8, 8, 20.0, 0.5),
              StimulusSpec("hr", "y.png", "c" * 64, 8, 8, None, 1.0)]
    with pytest.raises(ValueError, match="missing"):
        register_study(db, "v", methods=M, sources=S2, stimuli=X2, **kw)
    X2[-1] = StimulusSpec("hr", "y.png", "b" * 64, 8, 8, None, 1.0)
    with pytest.raises(ValueError, match="too small"):
        register_study(db, "v", methods=M, sources=S2, stimuli=X2, trials_per_rater=3, **kw)
    info = register_study(db, "v", methods=M, sources=S2, stimuli=X2, **kw)
    assert info.name == "v" and list_studies(db) == [info]
    with pytest.raises(StudyExists):
        register_study(db, "v", methods=M, sources=S2, stimuli=X2, **kw)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Method)) == 2


def test_alembic_command_line_config(db_url, monkeypatch):
    """``MOS_DB_URL=... alembic -c db/alembic.ini upgrade head`` (env.py's standalone path) works too."""
    from alembic import command
    from alembic.config import Config

    ini = Path(__file__).resolve().parents[1] / "db" / "alembic.ini"
    monkeypatch.setenv("MOS_DB_URL", db_url)
    command.upgrade(Config(str(ini)), "head")
    db = open_database(db_url, migrate=False)
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
            assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
    finally:
        db.close()
