"""Read-only views handed to the apps: frozen dataclasses, no ORM objects.

Blindness: :class:`TrialView` and :class:`CalibrationExample` carry only opaque ids and stimulus file
paths ``<stimuli_dir>/<sha256>.png`` (:func:`stimulus_path`), never a method name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from db.models import Study, StudyMode, StudyStatus, TrialMode, stimulus_file_name


def stimulus_path(stimuli_dir: str | Path, sha256: str) -> str:
    """Absolute path of the stimulus file with content hash ``sha256``."""
    return str(Path(stimuli_dir) / stimulus_file_name(sha256))


@dataclasses.dataclass(frozen=True)
class StudyInfo:
    id: int
    name: str
    mode: StudyMode
    status: StudyStatus
    scale: int
    votes_per_stimulus: int  # target votes per stimulus (ACR) or per pair
    trials_per_rater: int | None  # cap (repeats included); None = every stimulus/pair once
    break_every: int  # suggest a break every N trials; 0 = never
    repeats: int  # test-retest repeats per rater
    crop: int | None  # HR crop size in px (None: whole images)
    stimuli_dir: str  # absolute folder of the stimulus files
    crowd: str | None = None  # "prolific" | "mturk": whose participant ID raters bring; None = volunteers
    qualification: bool = False  # a screen check and a practice with feedback before a rater starts
    #: (The completion URL template is deliberately absent: it may hold the platform's completion code.)

    @classmethod
    def of(cls, st: Study) -> StudyInfo:
        return cls(
            id=st.id,
            name=st.name,
            mode=StudyMode(st.mode),
            status=StudyStatus(st.status),
            scale=st.scale,
            votes_per_stimulus=st.votes_per_stimulus,
            trials_per_rater=st.trials_per_rater,
            break_every=st.break_every,
            repeats=st.repeats,
            crop=st.crop,
            stimuli_dir=st.stimuli_dir,
            crowd=st.crowd,
            qualification=bool(st.qualification),
        )


@dataclasses.dataclass(frozen=True)
class StudyOutlook:
    """What a new rater would face (:func:`db.raters.study_outlook`), for the consent page."""

    status: str  # "open" | "closed" | "full" (every stimulus has its votes, or the rest are held)
    retry_minutes: int | None  # full only because raters rating now hold the rest: when some may free up
    mode: StudyMode
    trials: dict  # TrialMode -> trials of a new rater's list (repeats included); empty unless open
    seconds_per_trial: dict  # TrialMode -> median answer time so far (s), or an assumed one
    max_width: int  # largest stimulus, px
    max_height: int

    @property
    def n_trials(self) -> int:
        return sum(self.trials.values())

    @property
    def minutes(self) -> int:
        """Rough minutes for the whole list."""
        return max(1, round(sum(n * self.seconds_per_trial.get(m, 10.0) for m, n in self.trials.items()) / 60))


@dataclasses.dataclass(frozen=True)
class RaterInfo:
    token: str
    study_name: str
    done: int  # answered trials
    total: int  # trials assigned
    completed: bool
    completion_code: str | None  # set once every trial is answered
    display: str | None

    @classmethod
    def of(cls, row, done: int) -> RaterInfo:
        """From a :func:`db.queries.rater_row` row and the rater's number of answered trials."""
        return cls(
            token=row.token, study_name=row.name, done=done, total=row.n_trials,
            completed=row.completed_at is not None, completion_code=row.completion_code, display=row.display,
        )


@dataclasses.dataclass(frozen=True)
class CalibrationExample:
    """An instruction image: a calibration source (never a trial) rendered by an anchor method."""

    image_path: str
    score: int  # 1 for nearest neighbour, 5 for HR
    label: str  # "bad" | "excellent" (ITU-T P.910 ACR labels)
    source_index: int  # 0, 1, ... : the two images of one calibration source share it


@dataclasses.dataclass(frozen=True)
class TrialView:
    """What the page shows for one trial. Paths are ``<stimuli_dir>/<sha256>.png``.

    ``position`` is 0-based (show ``position + 1`` of ``total``); ``done`` = trials answered so far.
    ACR: ``image_path`` set, pair: ``left_path`` (answer "A") and ``right_path`` (answer "B") set.
    """

    trial_id: int
    position: int
    total: int
    done: int
    mode: TrialMode
    image_path: str | None = None
    left_path: str | None = None
    right_path: str | None = None
    break_every: int = 0
    shown_at: dt.datetime | None = None

    @property
    def break_due(self) -> bool:
        """True when a break prompt should come before this trial (every ``break_every`` trials)."""
        return self.break_every > 0 and self.position > 0 and self.position % self.break_every == 0


@dataclasses.dataclass(frozen=True)
class SubmitResult:
    trial_id: int
    rating_id: int
    duplicate: bool  # True: the same answer was already stored (double click/refresh); nothing new
    done: int
    total: int
    completed: bool
    completion_code: str | None


@dataclasses.dataclass(frozen=True)
class RaterState:
    """What the rater page needs after each answer, read in one transaction (:func:`db.ratings.rater_state`).

    ``trial`` is the first unanswered trial (None once all are answered), whatever the study's
    ``status``; its ``shown_at`` stays None until :func:`db.ratings.show_trial` records the first display.
    """

    rater: RaterInfo
    status: StudyStatus
    break_every: int  # suggest a break every N trials; 0 = never
    trial: TrialView | None
