"""Rater pseudonyms: what reports, exports and dashboards call a rater (issue 20: a rater's token is a
credential: with it anyone can open the rater's session and read their completion code, so it never
leaves the database and the rater's own browser).

A rater is ``rater-01``, ``rater-02``, ... in the order the study's raters were created (so a name is
stable as raters join, and the same in the report, the CSV exports and the dashboard of one study).
The number is a position, not a function of the token: nothing about the token can be recovered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

PREFIX = "rater-"


def pseudonyms(raters_in_order: Iterable[str]) -> dict[str, str]:
    """``{rater id: "rater-NN"}`` numbered from 1 in the given (creation) order; at least two digits."""
    ids = list(dict.fromkeys(raters_in_order))
    width = max(2, len(str(len(ids))))
    return {r: f"{PREFIX}{k:0{width}d}" for k, r in enumerate(ids, 1)}


def rename(frame: pd.DataFrame | None, names: Mapping[str, str], column: str = "rater") -> pd.DataFrame | None:
    """``frame`` with ``column`` mapped through ``names``; an id ``names`` lacks is refused (it would leak)."""
    if frame is None:
        return None
    missing = set(frame[column]) - set(names)
    if missing:
        raise ValueError(f"{len(missing)} rater(s) without a pseudonym: the study's rater list is incomplete")
    out = frame.copy()
    out[column] = out[column].map(names)
    return out


def rename_study(acr, pairs, completed: Mapping[str, bool]):
    """(acr, pairs, completed) of a database study with every rater token replaced by its pseudonym;
    ``completed`` (``{token: finished}`` in creation order, :func:`db.rater_completion`) gives the order."""
    names = pseudonyms(completed)
    return rename(acr, names), rename(pairs, names), {names[t]: done for t, done in completed.items()}
