"""ORM schema of a MOS study (SQLAlchemy 2.x typed declarative models).

One study compares *methods* (conditions: the ``nearest`` and ``hr`` anchors, ``bicubic``, trained
models) on *source images*; every (method, source) output is a *stimulus* PNG file with an opaque
content-hash name. A *rater* is an opaque random token; their whole list of *trials* is assigned when
they start (ACR: one stimulus; pair: stimulus A shown left, stimulus B shown right). A *rating* answers
one trial, at most once (unique ``trial_id``).

Closed vocabularies are ``StrEnum``s whose members equal their plain string values, so stored values,
CSV and JSON are unchanged: study/trial modes and statuses here, method roles, pair choices and QC flags
in :mod:`srkeras.mos.vocabulary` (shared with the statistics; re-exported here and by :mod:`db`).

The Alembic migrations in ``db/migrations`` are the source of truth for the deployed schema;
``tests/test_db.py`` checks that ``alembic upgrade head`` produces exactly this metadata.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# The shared vocabularies, re-exported with the schema (``from db.models import QcFlag`` keeps working).
from srkeras.mos.vocabulary import MethodRole as MethodRole
from srkeras.mos.vocabulary import PairChoice as PairChoice
from srkeras.mos.vocabulary import QcFlag as QcFlag
from srkeras.stimuli import file_name

# Deterministic constraint names: Alembic can compare/drop them and they are the same on SQLite and PG.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}



class StudyMode(enum.StrEnum):
    """What a study asks: ACR scores, pair comparisons, or both (ACR block first)."""

    ACR = "acr"
    PAIR = "pair"
    BOTH = "both"

    @property
    def trial_modes(self) -> tuple[TrialMode, ...]:
        """The trial modes of this study mode, in the order a rater meets them."""
        return (TrialMode.ACR, TrialMode.PAIR) if self is StudyMode.BOTH else (TrialMode(self.value),)


class TrialMode(enum.StrEnum):
    ACR = "acr"  # one stimulus, scored 1..5
    PAIR = "pair"  # two stimuli of one source, answered with a PairChoice


_NEWER = "after_0003"  # deferred group of the columns later migrations add (see Study)


class Sampling(enum.StrEnum):
    """How a study hands out its items (:mod:`db.assignment`)."""

    BALANCED = "balanced"  # every item the same number of votes (the default)
    ACTIVE = "active"  # pair items: the next pair chosen when the rater reaches it (srkeras.mos.active)
    ADAPTIVE = "adaptive"  # ACR items: further votes to the widest MOS intervals, up to a target half-width


class StudyStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Crowd(enum.StrEnum):
    """The crowd platform a study is run on: which participant-ID URL parameters the app captures."""

    PROLIFIC = "prolific"
    MTURK = "mturk"


# The file name of a stimulus in its study's ``stimuli_dir`` (the PNG bytes' hash, so names leak
# nothing) is defined once, by the code that writes the files.
stimulus_file_name = file_name


def _one_of(column: str, values: type[enum.StrEnum]) -> str:
    """SQL ``column IN ('a', 'b', ...)`` over an enum's values (the text the migrations create)."""
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator):
    """``DateTime(timezone=True)`` that always returns aware UTC datetimes (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Study(Base):
    __tablename__ = "study"
    __table_args__ = (
        CheckConstraint(_one_of("mode", StudyMode), name="mode"),
        CheckConstraint(_one_of("status", StudyStatus), name="status"),
        CheckConstraint("scale >= 1", name="scale"),
        CheckConstraint("votes_per_stimulus >= 1", name="votes"),
        CheckConstraint("trials_per_rater IS NULL OR trials_per_rater >= 1", name="cap"),
        CheckConstraint("break_every >= 0", name="break_every"),
        CheckConstraint("repeats >= 0", name="repeats"),
        CheckConstraint(_one_of("sampling", Sampling), name="sampling"),
        CheckConstraint("target_half_width IS NULL OR target_half_width > 0", name="target_half_width"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    mode: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8), default=StudyStatus.OPEN)
    scale: Mapped[int] = mapped_column(Integer)
    votes_per_stimulus: Mapped[int] = mapped_column(Integer)
    #: Cap on trials per rater (repeats included); NULL = one vote on every stimulus/pair.
    trials_per_rater: Mapped[int | None] = mapped_column(Integer)
    #: Prompt a break every N trials (0 = never); the app shows it.
    break_every: Mapped[int] = mapped_column(Integer, default=0)
    #: Test-retest repeats added to each rater's list.
    repeats: Mapped[int] = mapped_column(Integer, default=2)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    crop: Mapped[int | None] = mapped_column(Integer)  # HR crop size in px; NULL = whole images
    # Columns added after 0003 are deferred (loaded together, in one query, when one is read):
    # `pipelines.report` reads a database of an older schema without migrating it (read-only), and the
    # columns it selects must exist there.
    #: :class:`Sampling` of the study's items.
    sampling: Mapped[str] = mapped_column(String(16), default=Sampling.BALANCED, server_default="balanced",
                                          deferred=True, deferred_group=_NEWER)
    #: ``adaptive``: an ACR item needs no further votes once its MOS 95 % interval half-width is at most this.
    target_half_width: Mapped[float | None] = mapped_column(Float, deferred=True, deferred_group=_NEWER)
    #: Absolute folder holding the stimulus files (``<sha256>.png``).
    stimuli_dir: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: Crowd platform (:class:`Crowd`) whose participant ID every rater must bring; NULL = volunteers.
    crowd: Mapped[str | None] = mapped_column(String(16), deferred=True, deferred_group=_NEWER)
    #: Where a finished rater is sent: a URL template with ``{code}`` (and captured parameters). May hold
    #: the platform's own completion code, so it is a credential: never shown outside the rater's browser.
    completion_url: Mapped[str | None] = mapped_column(Text, deferred=True, deferred_group=_NEWER)
    #: Raters pass a screen check and a practice with feedback before they start (NULL = no).
    qualification: Mapped[bool | None] = mapped_column(Boolean, deferred=True, deferred_group=_NEWER)

    methods: Mapped[list[Method]] = relationship(back_populates="study", order_by="Method.id")
    sources: Mapped[list[SourceImage]] = relationship(back_populates="study", order_by="SourceImage.id")


class Method(Base):
    """A condition: an upsampler, the HR original or a trained model. Its name is admin-only."""

    __tablename__ = "method"
    __table_args__ = (
        UniqueConstraint("study_id", "name"),
        CheckConstraint(_one_of("role", MethodRole), name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default=MethodRole.TEST)
    #: What produced it: "nearest", "bicubic", "hr" or the model path given to the study builder.
    spec: Mapped[str | None] = mapped_column(Text)

    study: Mapped[Study] = relationship(back_populates="methods")


class SourceImage(Base):
    """An HR source. Calibration sources are shown only in the instructions, never as trials."""

    __tablename__ = "source_image"
    __table_args__ = (UniqueConstraint("study_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(300))  # file name of the HR image (admin only)
    hr_sha256: Mapped[str] = mapped_column(String(64))  # of the HR file as given
    width: Mapped[int] = mapped_column(Integer)  # of the (cropped) HR the stimuli were made from
    height: Mapped[int] = mapped_column(Integer)
    is_calibration: Mapped[bool] = mapped_column(Boolean, default=False)

    study: Mapped[Study] = relationship(back_populates="sources")


class Stimulus(Base):
    """One output image file ``<sha256>.png`` (8-bit PNG, no metadata) of a method on a source."""

    __tablename__ = "stimulus"
    __table_args__ = (UniqueConstraint("method_id", "source_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    method_id: Mapped[int] = mapped_column(ForeignKey("method.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("source_image.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    #: Against the HR (Y channel, ``crop_border = scale``, srkeras.metrics); NULL PSNR = identical (HR).
    psnr: Mapped[float | None] = mapped_column(Float)
    ssim: Mapped[float | None] = mapped_column(Float)

    method: Mapped[Method] = relationship()
    source: Mapped[SourceImage] = relationship()

    @property
    def file_name(self) -> str:
        return stimulus_file_name(self.sha256)


class StimulusMetric(Base):
    """One further objective metric of a stimulus (``lpips``, ``niqe``...: :data:`srkeras.metrics.METRICS`
    names, computed by the study builder on the stored 8-bit PNG); PSNR/SSIM stay :class:`Stimulus` columns."""

    __tablename__ = "stimulus_metric"
    __table_args__ = (UniqueConstraint("stimulus_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stimulus_id: Mapped[int] = mapped_column(ForeignKey("stimulus.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)  # NULL: not a finite number

    stimulus: Mapped[Stimulus] = relationship()


class Rater(Base):
    """A volunteer, known only by an opaque random token (``secrets.token_urlsafe``); a crowd worker also
    by the platform's participant ID (one rater per participant ID and study: a second visit resumes)."""

    __tablename__ = "rater"
    # A unique index (not a constraint): SQLite adds it without rebuilding the table.
    __table_args__ = (Index("ix_rater_participant", "study_id", "participant_id", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    #: Optional self-reported display description (free text, no personal data asked).
    display: Mapped[str | None] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(Integer)  # orders this rater's trials
    n_trials: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    completion_code: Mapped[str | None] = mapped_column(String(32))
    #: Comma-separated :class:`QcFlag` values last recorded by :mod:`db.qc` ("" = none).
    qc_flags: Mapped[str | None] = mapped_column(Text)
    #: The crowd platform's participant ID (Prolific ``PROLIFIC_PID``, MTurk ``workerId``); NULL = volunteer.
    participant_id: Mapped[str | None] = mapped_column(String(64), deferred=True, deferred_group=_NEWER)
    #: The other captured URL parameters (``STUDY_ID``, ``SESSION_ID``; ``assignmentId``...) as JSON.
    crowd_params: Mapped[str | None] = mapped_column(Text, deferred=True, deferred_group=_NEWER)

    study: Mapped[Study] = relationship()


class Trial(Base):
    """One entry in a rater's list. ACR: ``stimulus_id``; pair: ``stimulus_a_id`` shown left as "A",
    ``stimulus_b_id`` shown right as "B" (the left/right assignment is randomised per trial)."""

    __tablename__ = "trial"
    __table_args__ = (
        UniqueConstraint("rater_id", "position"),
        CheckConstraint(_one_of("mode", TrialMode), name="mode"),
        CheckConstraint(
            "(mode = 'acr' AND stimulus_id IS NOT NULL AND stimulus_a_id IS NULL AND stimulus_b_id IS NULL)"
            " OR (mode = 'pair' AND stimulus_id IS NULL AND stimulus_a_id IS NOT NULL"
            " AND stimulus_b_id IS NOT NULL AND stimulus_a_id <> stimulus_b_id)",
            name="stimuli",
        ),
        CheckConstraint("position >= 0", name="position"),
        Index("ix_trial_stimulus_id", "stimulus_id"),
        Index("ix_trial_pair", "stimulus_a_id", "stimulus_b_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("rater.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 0-based order in the rater's list
    mode: Mapped[str] = mapped_column(String(4))
    stimulus_id: Mapped[int | None] = mapped_column(ForeignKey("stimulus.id"))
    stimulus_a_id: Mapped[int | None] = mapped_column(ForeignKey("stimulus.id"))
    stimulus_b_id: Mapped[int | None] = mapped_column(ForeignKey("stimulus.id"))
    #: Hidden anchor check: ACR on a NN/HR stimulus, or the NN-vs-HR pair.
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Test-retest: the earlier trial this one repeats (excluded from MOS and balance counts).
    is_repeat_of: Mapped[int | None] = mapped_column(ForeignKey("trial.id"))
    shown_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    rater: Mapped[Rater] = relationship()
    stimulus: Mapped[Stimulus | None] = relationship(foreign_keys=[stimulus_id])
    stimulus_a: Mapped[Stimulus | None] = relationship(foreign_keys=[stimulus_a_id])
    stimulus_b: Mapped[Stimulus | None] = relationship(foreign_keys=[stimulus_b_id])
    rating: Mapped[Rating | None] = relationship(back_populates="trial", uselist=False)


class Rating(Base):
    """The answer to one trial: ACR ``score`` 1..5 or pair ``choice`` A/B/none. At most one per trial."""

    __tablename__ = "rating"
    __table_args__ = (
        UniqueConstraint("trial_id"),
        CheckConstraint("score IS NULL OR (score >= 1 AND score <= 5)", name="score"),
        CheckConstraint(f"choice IS NULL OR {_one_of('choice', PairChoice)}", name="choice"),
        CheckConstraint("(score IS NULL) <> (choice IS NULL)", name="one_answer"),
        CheckConstraint("response_ms IS NULL OR response_ms >= 0", name="response_ms"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trial.id", ondelete="CASCADE"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("rater.id", ondelete="CASCADE"), index=True)
    score: Mapped[int | None] = mapped_column(Integer)
    choice: Mapped[str | None] = mapped_column(String(4))
    answered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Client-measured time from image shown to answer; server-measured when the client sent none.
    response_ms: Mapped[int | None] = mapped_column(Integer)
    viewport_w: Mapped[int | None] = mapped_column(Integer)
    viewport_h: Mapped[int | None] = mapped_column(Integer)
    device_pixel_ratio: Mapped[float | None] = mapped_column(Float)

    trial: Mapped[Trial] = relationship(back_populates="rating")


class LoginFailures(Base):
    """Consecutive failed logins of one door (``scope``: ``admin``) of this database, shared by every
    session and server process: the admin page's brute-force back-off (:mod:`db.logins`)."""

    __tablename__ = "login_failures"
    __table_args__ = (CheckConstraint("failures >= 0", name="failures"),)

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
