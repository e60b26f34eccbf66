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
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections import Counter
from collections.abc import Collection, Iterable, Sequence

from db.models import MethodRole, TrialMode


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


def select_items(items: Sequence[Item], counts: dict, budget: int, reached: Collection = ()) -> list[Item]:
    """The ``budget`` least-voted items (ties: Latin order), fixed up to cover every method.

    ``counts`` maps ``Item.key`` to the votes already assigned; keys in ``reached`` (items at their
    target) rank after every other item whatever their count. Returns distinct items in Latin order.
    """
    budget = min(budget, len(items))
    index = {it.key: i for i, it in enumerate(items)}
    ranked = sorted(items, key=lambda it: (it.key in reached, counts.get(it.key, 0), index[it.key]))
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
        drop = max(droppable, key=lambda it: (it.key in reached, counts.get(it.key, 0), index[it.key]))
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
