"""Sampling in the database (issue 20): active pair studies through the rater service, two app servers
on one SQLite file, adaptive ACR studies, and top-up of screened-out raters' votes."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from db import (
    InvalidStudy,
    MethodRole,
    MethodSpec,
    SourceSpec,
    StimulusSpec,
    StudyFull,
    next_trial,
    open_database,
    rater_state,
    register_study,
    show_trial,
    start_rater,
    stimulus_file_methods,
    stimulus_file_name,
    study_status,
    submit_rating,
)
from db.models import Rater, Rating, Stimulus, Trial

#: Bradley-Terry log-strengths of the simulated raters: m0, m1, m2 close, m3 and the anchors far.
STRENGTH = {"nearest": -4.0, "m0": 0.0, "m1": 0.2, "m2": 0.4, "m3": 2.0, "hr": 4.0}


def register(db, folder: Path, name: str, methods=tuple(STRENGTH), n_sources: int = 4, **options):
    """A study of dummy stimulus files (the rater service never opens them)."""
    folder.mkdir(exist_ok=True)
    roles = {"nearest": MethodRole.LOW_ANCHOR, "hr": MethodRole.HIGH_ANCHOR}
    ms = [MethodSpec(m, roles.get(m, MethodRole.TEST)) for m in methods]
    srcs = [SourceSpec(f"img{k}.png", "0" * 64, 8, 8) for k in range(n_sources)]
    srcs.append(SourceSpec("cal.png", "1" * 64, 8, 8, is_calibration=True))
    stims = []
    for src in srcs:
        for m in ms:
            if src.is_calibration and m.role == MethodRole.TEST:
                continue
            sha = hashlib.sha256(f"{name}/{m.name}/{src.name}".encode()).hexdigest()
            (folder / stimulus_file_name(sha)).write_bytes(b"png")
            stims.append(StimulusSpec(m.name, src.name, sha, 8, 8, 30.0, 0.9))
    opts = dict(mode="pair", scale=4, votes_per_stimulus=2, repeats=2, seed=0)
    opts.update(options)
    return register_study(db, name, stimuli_dir=folder, methods=ms, sources=srcs, stimuli=stims, **opts)


def bt_choice(view, method_of, rng) -> str:
    a, b = (method_of[Path(p).stem] for p in (view.left_path, view.right_path))
    return "A" if rng.random() < 1 / (1 + np.exp(STRENGTH[b] - STRENGTH[a])) else "B"


def stored_trials(db, token):
    with db.session() as s:
        rid = s.scalar(select(Rater.id).where(Rater.token == token))
        return s.execute(
            select(Trial.id, Trial.position, Trial.stimulus_a_id, Trial.stimulus_b_id, Trial.is_gold,
                   Trial.is_repeat_of, Trial.shown_at).where(Trial.rater_id == rid).order_by(Trial.position)
        ).all()


def test_active_pairs_go_to_close_methods_blind_and_in_safe_order(sqlite_url, tmp_path):
    db = open_database(sqlite_url)
    info = register(db, tmp_path / "stim", "act", trials_per_rater=14, sampling="active")
    method_of = stimulus_file_methods(db, info.name)
    with db.session() as s:
        stim_method = {i: m for i, m in s.execute(select(Stimulus.id, Stimulus.method_id))}
        stim_source = {i: src for i, src in s.execute(select(Stimulus.id, Stimulus.source_id))}
        names = {st.id: m for st in s.scalars(select(Stimulus)) for m in [st.method.name]}
    rng = np.random.default_rng(0)
    answered, raters = Counter(), 0
    while True:
        try:
            tok = start_rater(db, info.name, seed=raters)
        except StudyFull as e:
            assert "reached its target" in str(e)
            break
        raters += 1
        while (t := next_trial(db, tok)) is not None:
            submit_rating(db, tok, t.trial_id, choice=bt_choice(t, method_of, rng), response_ms=3000)
        rows = stored_trials(db, tok)
        by_id = {r.id: r for r in rows}
        for r, nxt in zip(rows, rows[1:]):  # never two versions of one source back to back
            assert stim_source[r.stimulus_a_id] != stim_source[nxt.stimulus_a_id], rows
        for r in rows:
            pair = frozenset((names[r.stimulus_a_id], names[r.stimulus_b_id]))
            if r.is_repeat_of is not None:  # a repeat shows its original's pair, sides as first shown
                o = by_id[r.is_repeat_of]
                assert (r.stimulus_a_id, r.stimulus_b_id) == (o.stimulus_a_id, o.stimulus_b_id)
            elif r.is_gold:
                assert pair == {"nearest", "hr"}
            else:
                assert pair != {"nearest", "hr"}  # the gold pair is no active choice
                answered[pair] += 1
        assert raters < 40
    n_pairs = 15 * 4  # 6 methods -> 15 pairs, on 4 sources: the study's target is 2 x 60 pair answers
    status = study_status(db, info.name)
    assert status["sampling"] == "active"
    assert status["valid_votes"]["total"] >= 2 * n_pairs and status["valid_votes"]["at_target"] == n_pairs
    close = sum(answered[frozenset(p)] for p in (("m0", "m1"), ("m1", "m2"), ("m0", "m2")))
    # balanced sampling would give these 3 of the 14 non-gold pairs 3/14 = 21 % of the answers
    assert close / sum(answered.values()) > 0.45, answered
    assert answered[frozenset(("nearest", "m3"))] + answered[frozenset(("m3", "hr"))] < close / 4
    assert len(set(stim_method.values())) == 6
    db.close()


def test_two_servers_on_one_database_lose_and_double_no_answer(sqlite_url, tmp_path):
    """Two app servers (two engines on one SQLite file), interleaved: a trial reached on both at once is
    chosen once (the second server shows the stored pair), answers sent to both are stored once."""
    one = open_database(sqlite_url)
    info = register(one, tmp_path / "stim", "two", trials_per_rater=10, sampling="active", votes_per_stimulus=1)
    two = open_database(sqlite_url)
    method_of = stimulus_file_methods(one, info.name)
    rng = np.random.default_rng(1)
    tokens = [start_rater(srv, info.name, seed=k) for k, srv in enumerate((one, two, one, two))]
    shown: dict[int, tuple[str, str]] = {}
    sent = 0
    for step in range(10):
        for k, tok in enumerate(tokens):
            first, second = (one, two) if (k + step) % 2 else (two, one)
            a, b = rater_state(first, tok).trial, rater_state(second, tok).trial  # two tabs, two servers
            assert a.trial_id == b.trial_id and a.shown_at is None and b.shown_at is None
            va, vb = show_trial(first, a), show_trial(second, b)  # both choose; one stores
            assert (va.left_path, va.right_path) == (vb.left_path, vb.right_path)
            assert va.shown_at == vb.shown_at
            shown[va.trial_id] = (va.left_path, va.right_path)
            choice = bt_choice(va, method_of, rng)
            r1 = submit_rating(second, tok, va.trial_id, choice=choice, response_ms=2500)
            r2 = submit_rating(first, tok, va.trial_id, choice=choice, response_ms=2500)
            assert not r1.duplicate and r2.duplicate and r1.rating_id == r2.rating_id
            sent += 1
    with one.session() as s:
        ratings = s.execute(select(Rating.trial_id)).scalars().all()
        assert len(ratings) == len(set(ratings)) == sent == 40  # none lost, none doubled
        sha = dict(s.execute(select(Stimulus.id, Stimulus.sha256)).all())
        for tid, a, b in s.execute(select(Trial.id, Trial.stimulus_a_id, Trial.stimulus_b_id)):
            if tid in shown:  # what the rater answered is what is stored
                assert tuple(Path(p).stem for p in shown[tid]) == (sha[a], sha[b])
    assert all(rater_state(one, t).trial is None for t in tokens)
    one.close()
    two.close()


def acr_score(method: str, rng) -> int:
    """Honest scores (anchors as expected); m1's vary (2, 3 or 4 at random), the rest are unanimous."""
    return {"nearest": 1, "hr": 5, "m0": 3}.get(method) or int(rng.integers(2, 5))


def test_adaptive_acr_gives_further_votes_to_the_widest_intervals(sqlite_url, tmp_path):
    db = open_database(sqlite_url)
    info = register(db, tmp_path / "stim", "ada", methods=("nearest", "m0", "m1", "hr"), n_sources=3,
                    mode="acr", sampling="adaptive", target_half_width=0.6, trials_per_rater=6, repeats=0)
    method_of = stimulus_file_methods(db, info.name)
    votes: Counter = Counter()
    k, rng = 0, np.random.default_rng(0)
    while True:
        try:
            tok = start_rater(db, info.name, seed=k)
        except StudyFull:
            break
        while (t := next_trial(db, tok)) is not None:
            m = method_of[Path(t.image_path).stem]
            submit_rating(db, tok, t.trial_id, score=acr_score(m, rng), response_ms=3000)
            votes[m] += 1
        k += 1
        assert k < 40
    status = study_status(db, info.name)
    assert status["valid_votes"]["at_target"] == status["valid_votes"]["items"] == 12
    assert status["valid_votes"]["min"] >= 2  # every stimulus has the minimum of votes_per_stimulus
    # the varying method's intervals need >= 6 votes per stimulus (sd ~0.8, t_{0.975,4} = 2.78: half-width
    # ~1.0 at n = 5), the unanimous ones were done after 2 (every rater still sees every method)
    assert votes["m1"] >= 3 * 6 and votes["m1"] > 1.5 * max(votes["m0"], votes["nearest"], votes["hr"]), votes
    db.close()


def test_top_up_screened_out_raters_votes(sqlite_url, tmp_path):
    """Votes of a rater screened out at completion (gold check failed) count toward no target: the study
    hands their stimuli out again until each has its valid votes; the status shows valid / target."""
    db = open_database(sqlite_url)
    info = register(db, tmp_path / "stim", "top", methods=("nearest", "m0", "hr"), n_sources=3, mode="acr",
                    votes_per_stimulus=1, repeats=0)
    method_of = stimulus_file_methods(db, info.name)

    def answer(tok, score_of):
        while (t := next_trial(db, tok)) is not None:
            submit_rating(db, tok, t.trial_id, score=score_of(method_of[Path(t.image_path).stem]), response_ms=3000)

    answer(start_rater(db, info.name), lambda m: 3)  # the anchors scored 3: gold_fail, screened out
    status = study_status(db, info.name)
    assert status["votes_per_stimulus"]["min"] == 1 and status["ratings"] == 9
    assert status["valid_votes"]["total"] == 0 and status["valid_votes"]["screened_out"] == 9
    assert status["valid_votes"]["at_target"] == 0 and status["valid_votes"]["target"] == 1
    honest = start_rater(db, info.name)  # not full: the screened-out votes are topped up
    answer(honest, lambda m: {"nearest": 1, "hr": 5}.get(m, 3))
    status = study_status(db, info.name)
    assert status["valid_votes"]["min"] == 1 and status["valid_votes"]["at_target"] == 9
    with pytest.raises(StudyFull, match="reached its target"):
        start_rater(db, info.name)
    db.close()


def test_sampling_must_suit_the_mode(sqlite_url, tmp_path, capsys):
    db = open_database(sqlite_url)
    with pytest.raises(InvalidStudy, match="'active' chooses pairs"):
        register(db, tmp_path / "s", "a1", mode="acr", sampling="active")
    with pytest.raises(InvalidStudy, match="target half-width"):
        register(db, tmp_path / "s", "a2", mode="acr", sampling="adaptive")
    with pytest.raises(InvalidStudy, match="sampling must be one of"):
        register(db, tmp_path / "s", "a3", sampling="random")
    db.close()
    from pipelines.prepare_study import main

    base = ["--name", "x", "--hr-dir", str(tmp_path / "none"), "--db", sqlite_url]
    assert main([*base, "--mode", "acr", "--sampling", "active"]) == 1
    assert "--sampling active needs --mode pair or both" in capsys.readouterr().err
    assert main([*base, "--mode", "both", "--sampling", "adaptive"]) == 1
    assert "--target-half-width > 0" in capsys.readouterr().err
    assert main([*base, "--mode", "pair", "--target-half-width", "0.3"]) == 1
    assert "only used with --sampling adaptive" in capsys.readouterr().err


def test_prepare_study_stores_the_sampling(make_study, sqlite_url):
    """``StudySpec.sampling`` (``--sampling``) reaches the study row; a pair trial is then chosen when shown."""
    st = make_study(sqlite_url, name="jobact", mode="pair", sampling="active", repeats=0)
    ada = make_study(sqlite_url, name="jobada", mode="acr", sampling="adaptive", target_half_width=0.3)
    db = open_database(sqlite_url)
    try:
        assert study_status(db, st.name)["sampling"] == "active"
        s2 = study_status(db, ada.name)
        assert s2["sampling"] == "adaptive" and s2["target_half_width"] == 0.3
        tok = start_rater(db, st.name, seed=0)
        t = next_trial(db, tok)
        assert t.shown_at is not None and {Path(t.left_path).stem, Path(t.right_path).stem} <= set(
            stimulus_file_methods(db, st.name))
    finally:
        db.close()


def test_two_servers_in_parallel_threads_store_every_answer_once(sqlite_url, tmp_path):
    """Six raters in threads, each request to the other server than the last, every answer sent twice:
    every trial answered exactly once with the answer given, under active sampling."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    servers = [open_database(sqlite_url), open_database(sqlite_url)]
    info = register(servers[0], tmp_path / "stim", "par", trials_per_rater=8, sampling="active", votes_per_stimulus=3)
    method_of = stimulus_file_methods(servers[0], info.name)
    gate = threading.Barrier(6)

    def rater(k: int) -> dict[int, str]:
        rng, mine, hop = np.random.default_rng(k), {}, k
        gate.wait()
        tok = start_rater(servers[k % 2], info.name, seed=k)
        while (t := next_trial(servers[hop % 2], tok)) is not None:
            choice = bt_choice(t, method_of, rng)
            assert not submit_rating(servers[(hop + 1) % 2], tok, t.trial_id, choice=choice, response_ms=2500).duplicate
            assert submit_rating(servers[hop % 2], tok, t.trial_id, choice=choice, response_ms=2500).duplicate
            mine[t.trial_id] = choice
            hop += 1
        return mine

    try:
        with ThreadPoolExecutor(6) as ex:
            given = {tid: c for mine in ex.map(rater, range(6)) for tid, c in mine.items()}
        with servers[0].session() as s:
            stored = dict(s.execute(select(Rating.trial_id, Rating.choice)).all())
            n_rows = s.scalar(select(func.count()).select_from(Rating))
            n_trials = s.scalar(select(func.count()).select_from(Trial))
        assert n_rows == len(stored) == len(given) == n_trials == 6 * 8 and stored == given
    finally:
        for d in servers:
            d.close()
