"""Crowd hand-off: which URL parameters identify a participant of each platform, and the completion redirect.

Prolific opens a study's URL with ``PROLIFIC_PID``, ``STUDY_ID`` and ``SESSION_ID`` appended (when the study
is set to record Prolific IDs via URL parameters); MTurk's external questions append ``workerId``,
``assignmentId`` and ``hitId`` (``assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE`` while the worker only previews the
HIT). The participant parameter identifies the rater (one rater per participant and study); the others are
kept with the rater. The completion URL template (e.g. ``https://app.prolific.com/submissions/complete?cc={code}``)
may use ``{code}`` (the rater's completion code) and the captured parameters; it may also hold the platform's
fixed completion code, so it is handled as a credential: it only ever reaches the finished rater's browser.
"""

from __future__ import annotations

import dataclasses
import json
import re
import string
from urllib.parse import quote, urlsplit

from db.errors import InvalidStudy, RatingRejected
from db.models import Crowd


@dataclasses.dataclass(frozen=True)
class Platform:
    label: str  # how participants know the platform
    participant: str  # the URL parameter that identifies a participant
    extra: tuple[str, ...]  # further URL parameters kept with the rater


PLATFORMS = {
    Crowd.PROLIFIC: Platform("Prolific", "PROLIFIC_PID", ("STUDY_ID", "SESSION_ID")),
    Crowd.MTURK: Platform("Mechanical Turk", "workerId", ("assignmentId", "hitId")),
}
#: MTurk's assignmentId while a worker previews a HIT (they have not accepted it yet).
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
_VALUE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


@dataclasses.dataclass(frozen=True)
class Participant:
    """A crowd participant as the platform's URL named them: ``participant_id`` and the other ``params``."""

    participant_id: str
    params: dict = dataclasses.field(default_factory=dict)

    def params_json(self) -> str:
        return json.dumps(self.params, sort_keys=True)


def platform(crowd: str | None) -> Platform | None:
    return PLATFORMS.get(Crowd(crowd)) if crowd else None


def check_crowd(crowd: str | None, completion_url: str | None) -> None:
    """Raise :class:`InvalidStudy` unless ``crowd`` is a known platform (or None) and ``completion_url`` an
    http(s) URL template whose placeholders are ``{code}`` or the platform's parameters."""
    if crowd is not None and crowd not in tuple(Crowd):
        raise InvalidStudy(f"crowd must be one of {tuple(c.value for c in Crowd)}, got {crowd!r}")
    if completion_url is None:
        return
    parts = urlsplit(completion_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(completion_url) > 2000:
        raise InvalidStudy("the completion URL must be an http(s) address (e.g. "
                           "https://app.prolific.com/submissions/complete?cc={code}), at most 2000 characters")
    p = platform(crowd)
    allowed = {"code", *((p.participant, *p.extra) if p else ())}
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(completion_url) if f is not None}
    except ValueError as err:
        raise InvalidStudy(f"the completion URL template is malformed ({err}); write a literal brace as {{{{ or }}}}") from None
    if names - allowed:
        raise InvalidStudy(f"the completion URL uses unknown placeholder(s) {sorted(names - allowed)}; "
                           f"allowed: {sorted(allowed)}")


def capture(crowd: str | None, query: dict) -> Participant | None:
    """The participant named by URL parameters ``query`` (name -> value) for a study on ``crowd``: None when the
    participant parameter is absent. Raises :class:`RatingRejected` for a malformed value."""
    p = platform(crowd)
    if p is None:
        return None
    pid = query.get(p.participant)
    if not pid:
        return None
    values = {name: query.get(name) for name in (p.participant, *p.extra) if query.get(name)}
    bad = [name for name, v in values.items() if not _VALUE.fullmatch(v)]
    if bad:
        raise RatingRejected(f"the link's {', '.join(bad)} parameter is malformed; please open the study again "
                             f"from {p.label}")
    return Participant(pid, {k: v for k, v in values.items() if k != p.participant})


def completion_url(template: str, code: str | None, participant_id: str | None, params_json: str | None,
                   crowd: str | None) -> str:
    """The filled completion URL (values URL-quoted; a missing value becomes empty)."""
    p = platform(crowd)
    values = {"code": code or ""}
    if p is not None:
        values.update({name: "" for name in (p.participant, *p.extra)})
        values.update(json.loads(params_json or "{}"))
        values[p.participant] = participant_id or ""
    return template.format(**{k: quote(str(v), safe="") for k, v in values.items()})
