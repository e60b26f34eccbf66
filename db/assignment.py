"""Balanced assignment of trials to raters (pure functions; ``db.raters`` runs them in a transaction).

A study's *items* are what gets votes: ACR items are single stimuli, pair items are unordered pairs of
two methods' stimuli of the same source. Items are kept in a fixed cyclic *Latin order*: round ``r``,
slot ``j`` holds method (or method pair) ``j`` on source ``(r + j) mod S``, with methods and sources
shuffled once by the study seed. Each new rater takes the ``budget`` items with the fewest votes so
far, ties broken by Latin order. With every rater finishing, this is a cursor walking round the cycle:

* votes per item differ by at most 1 after any number of raters (each rater takes distinct items);
* any ``budget >= M`` consecutive items cover every method (slot ``j`` cycles through the M methods);
* consecutive raters get different sources for the same method.

If the counts are irregular (e.g. after abandoned raters' trials were removed), a fix-up swaps items so
the rater still sees every method. The rater's own order is then shuffled with their seed, subject to
"never two versions of the same source back to back", and test-retest repeats are inserted well after
their originals.

Sampling (``study.sampling``; the storage side of :mod:`srkeras.mos.active`): ``balanced`` (default) as
above. ``active`` (pairs): pair trials are placeholders until the rater reaches one; :func:`choose_pair`
then picks it from every valid answer so far (a read: the choice may be slightly stale) and :func:`fix_pair`
stores it with ``shown_at`` in one conditional UPDATE, so of two servers (or tabs) showing one trial the
first fixes it and the second shows it: answers still go to trial ids, none lost or doubled. The study
is full when its pair answers reach ``votes_per_stimulus`` x pairs. ``adaptive`` (ACR): new raters get
the stimuli whose MOS interval is widest; one is at target with ``votes_per_stimulus`` votes and a
half-width <= ``study.target_half_width``. Top-up: answers of raters whose recorded QC flags screen them
out (:func:`screened_out`) count toward no target, so their items are handed out again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import random
from collections import Counter
from collections.abc import Collection, Iterable, Sequence

import numpy as np
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from db.models import (
    Method,
    MethodRole,
    PairChoice,
    QcFlag,
    Rater,
    Rating,
    Sampling,
    SourceImage,
    Stimulus,
    Study,
    Trial,
    TrialMode,
    utcnow,
)
from srkeras.mos import active


@dataclasses.dataclass(frozen=True)
class Item:
    """Something a rater can vote on. ``stimuli`` is (stimulus,) for ACR, canonical (a, b) for pairs
    (a has the smaller method id); ``methods`` are the method ids in the same order."""

    mode: TrialMode
    stimuli: tuple[int, ...]
    methods: tuple[int, ...]
    source: int
    is_gold: bool = False

    @property
    def key(self) -> tuple:
        return (self.mode, *self.stimuli)


@dataclasses.dataclass(eq=False)  # identity semantics: a repeat equals its original field by field
class Slot:
    """One entry of a rater's ordered list (before it becomes a ``Trial`` row)."""

    item: Item
    repeat_of: int | None = None  # index (in the final list) of the original this slot repeats
    original: Slot | None = None  # the same, as an object, while the list is being built
    swap: bool = False  # pair trials: show stimuli[1] on the left (as "A")

    @property
    def source(self) -> int:
        return self.item.source


@dataclasses.dataclass(frozen=True)
class StimRow:
    stimulus_id: int
    method_id: int
    source_id: int
    role: MethodRole


def latin_items(
    stimuli: Iterable[StimRow],
    mode: TrialMode,
    seed: int = 0,
    gold_roles=(MethodRole.LOW_ANCHOR, MethodRole.HIGH_ANCHOR),
) -> list[Item]:
    """All items of one trial mode in the study's cyclic Latin order (see module docstring).

    ACR gold items are the anchors' stimuli; the pair gold item is the low-vs-high-anchor pair.
    ``stimuli`` must be the test (non-calibration) stimuli only.
    """
    rows = list(stimuli)
    by = {(r.method_id, r.source_id): r for r in rows}
    roles = {r.method_id: r.role for r in rows}
    rng = random.Random(seed)
    methods = sorted(roles)
    sources = sorted({r.source_id for r in rows})
    rng.shuffle(methods)
    rng.shuffle(sources)
    if mode == TrialMode.ACR:
        slots = [(m,) for m in methods]
    elif mode == TrialMode.PAIR:
        slots = [tuple(sorted(p)) for p in itertools.combinations(methods, 2)]
    else:
        raise ValueError(f"trial mode must be 'acr' or 'pair', got {mode!r}")
    items = []
    n_src = len(sources)
    for r in range(n_src):
        for j, slot in enumerate(slots):
            src = sources[(r + j) % n_src]
            got = [by.get((m, src)) for m in slot]
            if any(g is None for g in got):
                continue  # a missing stimulus: the study builder never makes these
            slot_roles = {roles[m] for m in slot}
            gold = slot_roles <= set(gold_roles) if mode == TrialMode.ACR else slot_roles == set(gold_roles)
            items.append(Item(mode, tuple(g.stimulus_id for g in got), slot, src, gold))
    return items


def select_items(items: Sequence[Item], counts: dict, budget: int, reached: Collection = (),
                 priority: dict | None = None) -> list[Item]:
    """The ``budget`` least-voted items (ties: Latin order), fixed up to cover every method.

    ``counts`` maps ``Item.key`` to the votes already assigned; keys in ``reached`` (items at their
    target) rank after every other item whatever their count; ``priority`` (``adaptive`` sampling: the
    negated expected MOS half-width) ranks before the count. Returns distinct items in Latin order.
    """
    budget = min(budget, len(items))
    index = {it.key: i for i, it in enumerate(items)}
    prio = priority or {}
    ranked = sorted(items, key=lambda it: (it.key in reached, prio.get(it.key, 0), counts.get(it.key, 0),
                                           index[it.key]))
    chosen = ranked[:budget]
    all_methods = {m for it in items for m in it.methods}

    def covered(sel):
        return Counter(m for it in sel for m in it.methods)

    # Fix-up (only needed for irregular counts): bring in the least-voted item of a missing method,
    # dropping the most-voted chosen item whose methods all stay covered.
    for _ in range(len(all_methods)):
        cov = covered(chosen)
        missing = sorted(all_methods - set(cov))
        if not missing or budget == 0:
            break
        m = missing[0]
        add = next((it for it in ranked if m in it.methods and it not in chosen), None)
        if add is None:
            break
        droppable = [it for it in chosen if all(cov[x] > 1 for x in it.methods)]
        if not droppable:
            break
        drop = max(droppable, key=lambda it: (it.key in reached, prio.get(it.key, 0), counts.get(it.key, 0),
                                              index[it.key]))
        chosen = [it for it in chosen if it is not drop] + [add]
    return sorted(chosen, key=lambda it: index[it.key])


def _feasible(counts: Counter, n: int, last) -> bool:
    """Can ``n`` items with these per-source counts be lined up with no equal neighbours, after ``last``?"""
    for s, c in counts.items():
        if c > (n // 2 if s == last else (n + 1) // 2):
            return False
    return True


def arrange(slots: Sequence[Slot], rng: random.Random, last_source=None) -> list[Slot]:
    """Seeded shuffle with no two slots of the same source adjacent (nor the first equal to
    ``last_source``), whenever such an order exists; otherwise as few adjacencies as greedy finds."""
    remaining = list(slots)
    rng.shuffle(remaining)
    out: list[Slot] = []
    last = last_source
    while remaining:
        counts = Counter(s.source for s in remaining)
        n = len(remaining)
        pick = None
        for i, s in enumerate(remaining):
            if s.source == last:
                continue
            counts[s.source] -= 1
            ok = _feasible(counts, n - 1, s.source)
            counts[s.source] += 1
            if ok:
                pick = i
                break
        if pick is None:  # infeasible from here on: prefer any different source, else take the next
            pick = next((i for i, s in enumerate(remaining) if s.source != last), 0)
        s = remaining.pop(pick)
        out.append(s)
        last = s.source
    return out


def insert_repeats(order: list[Slot], n_repeats: int, rng: random.Random) -> list[Slot]:
    """Add up to ``n_repeats`` test-retest copies of (preferably non-gold) slots of ``order``.

    Each copy goes at least ``max(3, len(order) // 3)`` places after its original (fewer only if no
    slot fits), never next to a slot of the same source, and keeps the original's left/right sides.
    Originals are tried in seeded random order until enough copies are placed; copies that cannot be
    placed at all are dropped (tiny lists only).
    """
    n = len(order)
    if n_repeats <= 0 or n < 3:
        return order
    cand = list(range(n))
    rng.shuffle(cand)
    cand.sort(key=lambda i: order[i].item.is_gold)  # stable: non-gold first, random within
    out = list(order)
    placed = 0
    for min_gap in sorted({max(3, n // 3), 2, 1}, reverse=True):
        for orig in cand:
            if placed >= n_repeats:
                break
            src = order[orig]
            if any(s.original is src for s in out):
                continue
            cur = next(i for i, s in enumerate(out) if s is src)  # positions shift as copies go in
            places = [
                p
                for p in range(cur + min_gap + 1, len(out) + 1)
                if out[p - 1].source != src.source and (p == len(out) or out[p].source != src.source)
            ]
            if places:
                out.insert(rng.choice(places), Slot(src.item, swap=src.swap, original=src))
                placed += 1
    where = {id(s): i for i, s in enumerate(out)}
    for s in out:
        if s.original is not None:
            s.repeat_of, s.original = where[id(s.original)], None
    return out


def build_rater_list(
    acr: Sequence[Item], pair: Sequence[Item], n_repeats: int, seed: int
) -> list[Slot]:
    """A rater's full ordered list: ACR block then pair block (each shuffled with ``seed``, no same
    source back to back, also across the block boundary), pair sides randomised, repeats inserted."""
    rng = random.Random(seed)
    rep_acr = (n_repeats + 1) // 2 if acr and pair else (n_repeats if acr else 0)
    rep_pair = n_repeats - rep_acr if pair else 0
    out: list[Slot] = []
    last = None
    for items, reps in ((acr, rep_acr), (pair, rep_pair)):
        if not items:
            continue
        slots = [Slot(it, swap=(it.mode == TrialMode.PAIR and rng.random() < 0.5)) for it in items]
        block = insert_repeats(arrange(slots, rng, last), reps, rng)
        base = len(out)
        for s in block:
            if s.repeat_of is not None:
                s.repeat_of += base
        out.extend(block)
        last = out[-1].source
    return out


#: Shown, unanswered pair trials younger than this count as pending in :func:`choose_pair`.
PENDING_FOR = dt.timedelta(minutes=30)


def screened_out(s: Session, study_id: int) -> set[int]:
    """Ids of the study's raters whose recorded QC flags screen them out: any flag but ``incomplete``
    (an unfinished session's answers are answers; its open trials are freed when it is abandoned)."""
    rows = s.execute(select(Rater.id, Rater.qc_flags).where(Rater.study_id == study_id, Rater.qc_flags.is_not(None)))
    return {rid for rid, flags in rows if set(filter(None, flags.split(","))) - {QcFlag.INCOMPLETE.value}}


def acr_votes(s: Session, study_id: int, exclude: Collection[int] = ()) -> dict[int, list[int]]:
    """{stimulus: first (non-repeat) ACR scores} of the raters not in ``exclude``."""
    out: dict[int, list[int]] = {}
    for sid, score, rid in s.execute(
        select(Trial.stimulus_id, Rating.score, Trial.rater_id).join(Rating, Rating.trial_id == Trial.id)
        .join(Rater, Trial.rater_id == Rater.id)
        .where(Rater.study_id == study_id, Trial.mode == TrialMode.ACR, Trial.is_repeat_of.is_(None))
    ):
        if rid not in exclude:
            out.setdefault(sid, []).append(score)
    return out


def targets(s: Session, st: Study, items: Sequence[Item], firm: Counter, answered: Counter):
    """(keys of the items at their target, ``priority`` for :func:`select_items` or None) under the
    study's sampling; ``firm``/``answered`` count valid votes (screened-out raters' left out)."""
    target = st.votes_per_stimulus
    reached = {it.key for it in items if firm[it.key] >= target}
    if st.sampling == Sampling.ACTIVE:  # one budget for all pairs, spent where informative
        pairs = {it.key for it in items if it.mode == TrialMode.PAIR}
        full = sum(firm[k] for k in pairs) >= target * len(pairs)
        return (reached | pairs) if full else (reached - pairs), None
    if st.sampling != Sampling.ADAPTIVE:
        return reached, None
    keys = [it.key for it in items if it.mode == TrialMode.ACR]
    votes = acr_votes(s, st.id, screened_out(s, st.id))
    n = np.array([len(votes.get(k[1], ())) for k in keys])
    sd = np.array([np.std(votes[k[1]], ddof=1) if len(votes.get(k[1], ())) > 1 else 0.0 for k in keys])
    held = np.array([firm[k] - answered[k] for k in keys])
    width = active.adaptive_half_width(n, sd, held)
    reached -= set(keys)
    reached |= {k for k, w in zip(keys, width) if firm[k] >= target and w <= st.target_half_width}
    return reached, {k: -float(w) for k, w in zip(keys, width)}


def needs_choice(s: Session, trial_id: int) -> bool:
    """True for a pair trial of an ``active`` study still to be chosen (not shown, not gold, not a repeat)."""
    row = s.execute(
        select(Study.sampling, Trial.mode, Trial.is_gold, Trial.is_repeat_of, Trial.shown_at)
        .join(Rater, Trial.rater_id == Rater.id).join(Study, Rater.study_id == Study.id).where(Trial.id == trial_id)
    ).first()
    return row is not None and row[0] == Sampling.ACTIVE and row[1] == TrialMode.PAIR and not row[2] \
        and row[3] is None and row[4] is None


def _rater_neighbours(s: Session, rater_id: int, trial_id: int, source_of: dict) -> tuple[set, set]:
    """(sources that must not be next to trial ``trial_id`` or its repeat copies, (method pair, source)
    items the rater has already been shown)."""
    rows = s.execute(
        select(Trial.id, Trial.position, Trial.stimulus_id, Trial.stimulus_a_id, Trial.stimulus_b_id,
               Trial.is_gold, Trial.is_repeat_of, Trial.shown_at, Trial.mode)
        .where(Trial.rater_id == rater_id).order_by(Trial.position)
    ).all()
    shown = {r.id for r in rows if r.shown_at is not None}
    fixed = {}  # position -> source of the trials whose stimuli are settled
    for r in rows:
        settled = (r.shown_at is not None or r.mode == TrialMode.ACR or r.is_gold
                   or (r.is_repeat_of is not None and r.is_repeat_of in shown))
        if settled and r.id != trial_id and r.is_repeat_of != trial_id:
            fixed[r.position] = source_of[r.stimulus_id if r.mode == TrialMode.ACR else r.stimulus_a_id]
    places = [r.position for r in rows if r.id == trial_id or r.is_repeat_of == trial_id]
    forbidden = {fixed[p + d] for p in places for d in (-1, 1) if p + d in fixed}
    seen = {frozenset((r.stimulus_a_id, r.stimulus_b_id)) for r in rows if r.shown_at and r.mode == TrialMode.PAIR}
    return forbidden, seen


def choose_pair(s: Session, trial_id: int, now: dt.datetime | None = None) -> tuple[int, int]:
    """(stimulus A, stimulus B) for an ``active`` pair trial (:func:`needs_choice`): the method pair of
    :func:`srkeras.mos.active.next_pair` on the pooled valid answers (ties left out) with the open trials
    of the last :data:`PENDING_FOR` as pending, then the source where that pair has had the fewest trials;
    never the anchor pair (the gold check), never a source next to the trial's settled neighbours, an
    item the rater has seen only when nothing else is left; sides and ties drawn with the rater's seed."""
    now = now or utcnow()
    rater_id, position, study_id, seed = s.execute(
        select(Trial.rater_id, Trial.position, Rater.study_id, Rater.seed).join(Rater, Trial.rater_id == Rater.id)
        .where(Trial.id == trial_id)).one()
    stim = s.execute(
        select(Stimulus.id, Stimulus.method_id, Stimulus.source_id, SourceImage.is_calibration)
        .join(SourceImage, Stimulus.source_id == SourceImage.id).where(Stimulus.study_id == study_id)).all()
    source_of = {r.id: r.source_id for r in stim}
    method_of = {r.id: r.method_id for r in stim}
    by = {(r.method_id, r.source_id): r.id for r in stim if not r.is_calibration}
    methods = sorted({m for m, _ in by})
    sources = sorted({src for _, src in by})
    idx = {m: k for k, m in enumerate(methods)}
    roles = dict(s.execute(select(Method.role, Method.id).where(Method.study_id == study_id)).all())
    anchors = tuple(sorted(idx.get(roles.get(r), -1) for r in (MethodRole.LOW_ANCHOR, MethodRole.HIGH_ANCHOR)))
    comparisons, pending, used = [], [], Counter()
    for a, b, choice, count in s.execute(  # valid answers and recent open trials, counted in SQL
        select(Trial.stimulus_a_id, Trial.stimulus_b_id, Rating.choice, func.count())
        .join(Rater, Trial.rater_id == Rater.id).outerjoin(Rating, Rating.trial_id == Trial.id)
        .where(Rater.study_id == study_id, Trial.mode == TrialMode.PAIR, Trial.is_repeat_of.is_(None),
               Trial.is_gold.is_(False), Trial.rater_id.not_in(screened_out(s, study_id)),
               or_(Rating.id.is_not(None), Trial.shown_at >= now - PENDING_FOR))
        .group_by(Trial.stimulus_a_id, Trial.stimulus_b_id, Rating.choice)
    ):
        ia, ib = idx[method_of[a]], idx[method_of[b]]
        if choice is None:
            pending += [(ia, ib)] * count
        elif choice != PairChoice.NONE:
            comparisons += [(ia, ib) if choice == PairChoice.A else (ib, ia)] * count
        used[(min(ia, ib), max(ia, ib), source_of[a])] += count
    forbidden, seen = _rater_neighbours(s, rater_id, trial_id, source_of)
    rng = np.random.default_rng([seed, position])

    def open_sources(i, j, strict):
        return [src for src in sources if src not in forbidden
                and not (strict and frozenset((by[(methods[i], src)], by[(methods[j], src)])) in seen)]

    n = len(methods)
    for strict in (True, False):
        allowed = np.zeros((n, n), bool)
        for i, j in itertools.combinations(range(n), 2):
            allowed[i, j] = (i, j) != anchors and bool(open_sources(i, j, strict))
        if allowed.any():
            break
    else:  # every source is next to a settled neighbour: any source will do
        forbidden.clear()
        allowed = np.triu(np.ones((n, n), bool), 1)
        if n > 2 and min(anchors) >= 0:
            allowed[anchors] = False
    i, j = active.next_pair(comparisons, n, pending, allowed, rng)
    cands = open_sources(i, j, strict) or open_sources(i, j, False)
    fewest = min(used[(i, j, src)] for src in cands)
    src = int(rng.choice([c for c in cands if used[(i, j, c)] == fewest]))
    a, b = by[(methods[i], src)], by[(methods[j], src)]
    return (b, a) if rng.random() < 0.5 else (a, b)


def fix_pair(s: Session, trial_id: int, stimuli: tuple[int, int], now: dt.datetime) -> tuple[dt.datetime, str, str, str]:
    """Store an :func:`choose_pair` choice with ``shown_at = now`` unless the trial was shown meanwhile
    (then the stored pair stays); the trial's repeat copies get the same pair. Returns (shown_at,
    stimuli folder, sha256 of A, sha256 of B) as stored."""
    a, b = stimuli
    n = s.execute(update(Trial).where(Trial.id == trial_id, Trial.shown_at.is_(None))
                  .values(stimulus_a_id=a, stimulus_b_id=b, shown_at=now)
                  .execution_options(synchronize_session=False)).rowcount
    if n == 1:
        s.execute(update(Trial).where(Trial.is_repeat_of == trial_id).values(stimulus_a_id=a, stimulus_b_id=b)
                  .execution_options(synchronize_session=False))
    return stored_pair(s, trial_id)


def stored_pair(s: Session, trial_id: int) -> tuple[dt.datetime | None, str, str, str]:
    """(shown_at, stimuli folder, sha256 of A, sha256 of B) of a pair trial as stored."""
    shown_at, a, b, folder = s.execute(
        select(Trial.shown_at, Trial.stimulus_a_id, Trial.stimulus_b_id, Study.stimuli_dir)
        .join(Rater, Trial.rater_id == Rater.id).join(Study, Rater.study_id == Study.id).where(Trial.id == trial_id)).one()
    sha = dict(s.execute(select(Stimulus.id, Stimulus.sha256).where(Stimulus.id.in_((a, b)))).all())
    return shown_at, folder, sha[a], sha[b]
