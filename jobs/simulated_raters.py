"""Simulated raters answering a registered MOS study through the rater service: a check of the rating
and report chain (``start_rater`` / ``next_trial`` / ``submit_rating``), never a substitute for real ratings.

Each rater answers every trial it is given: ACR score = the method's planted quality + Gaussian noise
(rounded, 1..5), pair choice = the side with the higher noisy quality; :attr:`SimulationSpec.prefer`
gets the best quality, so the report should rank it first.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

#: Simulated MOS (1-5) per method kind; the preferred method gets ``PREFERRED``, others ``SIM_DEFAULT``.
SIM_QUALITY = {"nearest": 1.2, "bicubic": 2.0, "hr": 4.8, "srresnet_mse": 2.6}
SIM_DEFAULT, PREFERRED = 3.0, 4.2


class UnknownMethod(ValueError):
    """The preferred method is not a method of the study."""


@dataclasses.dataclass(frozen=True)
class SimulationSpec:
    db_url: str
    study: str
    prefer: str  # the method given the best simulated MOS
    raters: int = 12
    seed: int = 0
    noise: float = 0.6  # standard deviation of the Gaussian noise on the planted quality


def quality(method: str, prefer: str) -> float:
    return PREFERRED if method == prefer else SIM_QUALITY.get(method, SIM_DEFAULT)


def simulate_raters(spec: SimulationSpec) -> int:
    """Answer every trial of ``spec.raters`` new raters (fewer once the study is full); the number of
    trials answered. Raises :class:`UnknownMethod`."""
    import numpy as np

    from db import (
        PairChoice,
        StudyFull,
        TrialMode,
        next_trial,
        open_database,
        start_rater,
        stimulus_file_methods,
        submit_rating,
    )

    rng = np.random.default_rng(spec.seed)
    db = open_database(spec.db_url)
    try:
        method_of = stimulus_file_methods(db, spec.study)
        if spec.prefer not in set(method_of.values()):
            raise UnknownMethod(f"--prefer {spec.prefer!r} is not a method of study {spec.study!r}: {sorted(set(method_of.values()))}")

        def noisy(path) -> float:
            return quality(method_of[Path(path).stem], spec.prefer) + rng.normal(0, spec.noise)

        n = 0
        for _ in range(spec.raters):
            try:
                token = start_rater(db, spec.study)
            except StudyFull:
                break  # every stimulus has its target number of votes
            while (t := next_trial(db, token)) is not None:
                if t.mode == TrialMode.ACR:
                    submit_rating(db, token, t.trial_id, score=int(np.clip(np.round(noisy(t.image_path)), 1, 5)), response_ms=2500)
                else:
                    qa, qb = (noisy(p) for p in (t.left_path, t.right_path))
                    submit_rating(db, token, t.trial_id, choice=PairChoice.A if qa >= qb else PairChoice.B, response_ms=2500)
                n += 1
        return n
    finally:
        db.close()


__all__ = ["PREFERRED", "SIM_DEFAULT", "SIM_QUALITY", "SimulationSpec", "UnknownMethod", "quality", "simulate_raters"]
