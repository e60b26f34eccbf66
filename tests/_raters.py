"""Simulated raters who answer as screening expects (admin knowledge of the test study's methods)."""

from __future__ import annotations

from pathlib import Path

ANCHOR_SCORES = {"nearest": 1, "hr": 5}  # the study fixture's low and high anchors


def honest_score(method_of: dict[str, str], trial, other: int = 3) -> int:
    """The anchors as expected, ``other`` for the rest: a screened-out rater's votes count toward no
    target and are topped up (issue 20), which tests of targets and balance must not trigger.
    ``method_of``: :func:`db.stimulus_file_methods` of the study; ``trial``: a shown trial."""
    return ANCHOR_SCORES.get(method_of[Path(trial.image_path).stem], other)
