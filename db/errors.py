"""Errors of the MOS data layer: catch :class:`MosError` for all of them.

Each also derives from the builtin it has always been (``ValueError``, ``LookupError``,
``RuntimeError``), so older ``except ValueError`` callers keep working.
"""

from __future__ import annotations


class MosError(Exception):
    """Base of every error the data layer raises on purpose; the message is fit to show a person."""


class InvalidStudy(MosError, ValueError):
    """A study definition given to ``register_study`` is inconsistent; nothing stored."""


class StudyExists(InvalidStudy):
    """A study with that name is already registered."""


class UnknownStudy(MosError, LookupError):
    """No study with that name."""


class StudyFull(MosError, RuntimeError):
    """Every stimulus (or pair) already has its target number of votes; no new raters are needed."""


class RatingRejected(MosError, ValueError):
    """An answer (or a request on behalf of a rater) was refused; the message says why. Nothing stored."""


class UnknownRater(RatingRejected):
    """The rater token is not in the database (mistyped, forged, or from a deleted study)."""


class StudyClosed(RatingRejected):
    """The study no longer accepts raters or answers."""


class DatabaseGone(MosError, RuntimeError):
    """The SQLite database file was deleted or replaced while the server ran: nothing more is stored."""


class DatabaseUnavailable(MosError, RuntimeError):
    """A database that must exist cannot be read: no such SQLite file, not a database, no MOS schema, or
    a server that cannot be reached. Nothing was created."""


__all__ = [
    "DatabaseGone",
    "DatabaseUnavailable",
    "InvalidStudy",
    "MosError",
    "RatingRejected",
    "StudyClosed",
    "StudyExists",
    "StudyFull",
    "UnknownRater",
    "UnknownStudy",
]
