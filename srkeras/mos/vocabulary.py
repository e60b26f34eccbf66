"""The closed vocabularies of a MOS study: method roles, pair answers and rater QC flags.

Each is a ``StrEnum`` defined once, here: :mod:`db.models` stores their values (unchanged strings, so no
migration) and :mod:`srkeras.mos` reads them in the rating frames. Members equal their plain string
values, so CSV, JSON and SQL see ordinary text.

A pair answer has two spellings, both fixed by existing data: the database (and the rater app) stores
``A`` / ``B`` / ``none``, the rating frames of :mod:`srkeras.mos.schema` and their CSV files use ``a`` /
``b`` / ``tie``. :class:`PairChoice` carries both (``value`` and :attr:`PairChoice.frame`), so that is
the one place where they are translated.
"""

from __future__ import annotations

import enum


class MethodRole(enum.StrEnum):
    """The hidden anchors of the SRGAN MOS protocol (NN rated 1 "bad", HR rated 5 "excellent") and the rest."""

    LOW_ANCHOR = "low_anchor"
    HIGH_ANCHOR = "high_anchor"
    TEST = "test"


class PairChoice(enum.StrEnum):
    """A pair-trial answer: the left image (A), the right image (B), or no preference.

    ``value`` is the stored spelling (``A`` / ``B`` / ``none``), :attr:`frame` the rating-frame spelling
    (``a`` / ``b`` / ``tie``), :attr:`a_share` the share of a win it gives the left method (a tie counts
    half to each side, as in the Bradley-Terry and Thurstone fits of :mod:`srkeras.mos.pairs`).
    """

    A = "A", "a", 1.0
    B = "B", "b", 0.0
    NONE = "none", "tie", 0.5

    frame: str
    a_share: float

    def __new__(cls, stored: str, frame: str, a_share: float):
        member = str.__new__(cls, stored)
        member._value_ = stored
        member.frame = frame
        member.a_share = a_share
        return member

    @classmethod
    def of_frame(cls, text: str) -> PairChoice:
        """The member spelled ``text`` in the rating frames (``a``, ``b`` or ``tie``)."""
        return _BY_FRAME[text]


_BY_FRAME = {c.frame: c for c in PairChoice}
#: Pair answers as the rating frames spell them (``a``, ``b``, ``tie``).
FRAME_CHOICES = tuple(_BY_FRAME)
#: Frame spelling -> share of a win for ``method_a`` (see :attr:`PairChoice.a_share`).
A_SHARE = {c.frame: c.a_share for c in PairChoice}


class QcFlag(enum.StrEnum):
    """Rater quality-control flags, stored comma-separated in ``Rater.qc_flags``; each is one rule of
    :mod:`srkeras.mos.screening` (which also gives the numbers behind it)."""

    GOLD_FAIL = "gold_fail"
    RETEST_INCONSISTENT = "retest_inconsistent"
    TOO_FAST = "too_fast"
    STRAIGHT_LINING = "straight_lining"
    INCOMPLETE = "incomplete"
    #: The rules that compare a rater with the others (whole-study screening only):
    LOW_CORRELATION = "low_correlation"  # P.913 sec. 11.4 / VQEG: r with the others' MOS too low
    MLE_INCONSISTENT = "mle_inconsistent"  # subject-model inconsistency an outlier among the raters
    PAIR_INCONSISTENT = "pair_inconsistent"  # pair answers disagree with the others' Bradley-Terry fit
