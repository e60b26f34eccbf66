"""MOS rater app for volunteers: ``MOS_DB_URL=sqlite:///mos.db streamlit run mos_app/app.py``.

For volunteers add ``--client.toolbarMode minimal`` (hides Streamlit's developer menu); the admin page
is a separate app (``streamlit run mos_app/admin.py``), so raters see no navigation at all.

Flow (the SRGAN MOS protocol, Ledig et al. 2017 Sec. 3.4, on the ITU-T P.910 ACR scale):
consent and instructions (what this study's mode asks, how many answers and minutes; a closed or full study
says so instead, before any consent) -> calibration (nearest neighbour shown as 1 "bad", HR as 5 "excellent",
on images that are not in the test) -> trials (ACR: one image scored 1..5; pair: A / B / no preference)
-> thank-you with a completion code. A study with ``qualification`` on puts a screen check and a practice
with feedback (:mod:`mos_app.qualify`) between the consent and the rater's creation.

Crowd studies (``study.crowd``, :mod:`db.crowd`): the platform's participant ID comes in the URL
(``PROLIFIC_PID``...); a second visit with it resumes the same rater; the finished rater is sent to the
study's completion URL with their code (:func:`db.completion_redirect`, shown to that rater only).

The rater's opaque token lives in the URL (``?r=TOKEN``): a refresh or a later visit resumes where the rater
stopped; the data layer stores at most one rating per trial, so double clicks never double-count. The
browser also remembers the token of an unfinished rater (session state, and a cookie per study set from the
page), so Back to the consent page or a new visit without ``?r=`` resumes it instead of starting a second
rater with a fresh list.

Per answer the page stores it (:func:`db.submit_rating`), reads the rater's state once
(:func:`db.rater_state`: progress, study status, next trial) and records the next trial's first display
(:func:`db.show_trial`); the answer that completes the rater shows the thank-you page from its
:class:`~db.views.SubmitResult` without a read.

The study is taken from ``?study=NAME``, else env ``MOS_STUDY``, else the only open study.
Nothing on the page names a method (blind): images travel as metadata-free ``data:`` PNGs.

Errors: every entry point (the page script, each callback) runs under :func:`mos_app.state.guarded`: a
rater reads a short plain message, never a traceback; unexpected errors are logged with their details. A
deleted or replaced database file (:class:`db.errors.DatabaseGone`) stops the study with a message that
claims nothing as saved.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # `streamlit run mos_app/app.py` puts mos_app/, not the repo root, on sys.path
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from db import (  # noqa: E402
    MTURK_PREVIEW,
    MosError,
    PairChoice,
    RatingRejected,
    StudyClosed,
    StudyFull,
    StudyStatus,
    TrialMode,
    UnknownRater,
    UnknownStudy,
    completion_redirect,
    crowd_participant,
    crowd_platform,
    get_rater,
    get_study,
    list_studies,
    participant_rater,
    rater_state,
    show_trial,
    start_rater,
    study_outlook,
    submit_rating,
)
from mos_app import components, consent, qualify  # noqa: E402
from mos_app.state import (  # noqa: E402
    STUDY_ENV,
    ConfigError,
    database_url,
    get_database,
    guarded,
    query_param,
    user_message,
)

# ITU-T P.910 ACR labels, as in the SRGAN MOS study.
ACR_LABELS = {1: "Bad", 2: "Poor", 3: "Fair", 4: "Good", 5: "Excellent"}
PAIR_LABELS = {PairChoice.A: "A (left)", PairChoice.B: "B (right)",
               PairChoice.NONE: "No preference"}
DISPLAY_CHOICES = ["", "Laptop screen", "Desktop monitor", "Tablet", "Phone", "Other"]

TEXT_WIDTH = 860  # CSS px: readable line length for text; images get the full page width
TOKEN_PARAM = "r"
STUDY_PARAM = "study"
TOKEN_COOKIE_DAYS = 30  # how long a browser remembers its unfinished rater
REDIRECT_DELAY_MS = 3000  # the thank-you page stays this long before the completion redirect


# --------------------------------------------------------------------------------------------------- helpers
def _flash(kind: str, text: str) -> None:
    st.session_state["flash"] = (kind, text)


def _show_flash() -> None:
    kind, text = st.session_state.pop("flash", (None, None))
    if kind == "error":
        st.error(text)
    elif kind == "warning":
        st.warning(text)


def narrow():
    return st.container(width=TEXT_WIDTH)


def _flash_error(text: str) -> None:
    _flash("error", text)


def error_page(text: str) -> None:
    """The whole page when the script itself failed (see :func:`mos_app.state.guarded`)."""
    st.session_state.pop("flash", None)  # the callback that failed first may have left the same message
    with narrow():
        st.title("Image quality study")
        st.error(text)


# ------------------------------------------------------------------------------------ the browser's rater
def _cookie_name(study_name: str) -> str:
    return "mos_rater_" + hashlib.sha256(study_name.encode()).hexdigest()[:16]


def remember_rater(rater) -> None:
    """Let this browser come back to ``rater`` (an unfinished rater whose token was just verified)."""
    st.session_state.setdefault("raters", {})[rater.study_name] = rater.token
    components.remember_cookie(_cookie_name(rater.study_name), rater.token, TOKEN_COOKIE_DAYS * 86400)


def remembered_rater(db, study_name: str) -> str | None:
    """The token of this browser's unfinished rater of ``study_name`` (this session's, else the cookie's)."""
    for token in (st.session_state.get("raters", {}).get(study_name), components.cookie(_cookie_name(study_name))):
        if not token:
            continue
        try:
            rater = get_rater(db, token)
        except UnknownRater:
            continue
        if rater.study_name == study_name and not rater.completed:
            return rater.token
    return None


def _pick_study(db):
    """The :class:`db.StudyInfo` a new rater joins; shows the reason and returns None when there is none."""
    import os

    wanted = query_param(STUDY_PARAM) or os.environ.get(STUDY_ENV, "").strip() or None
    if wanted:
        try:
            info = get_study(db, wanted)
        except UnknownStudy:
            st.error("This study link is not valid. Please check the link you were given.")
            return None
        return info  # closed: a returning crowd participant still resumes; others read why (consent_page)
    open_ = [s for s in list_studies(db) if s.status == StudyStatus.OPEN]
    if len(open_) == 1:
        return open_[0]
    if not open_:
        st.info("No study is open at the moment. Thank you for your interest!")
    else:
        st.error("Several studies are running: please open the exact link you were given.")
    return None


def _start_over() -> None:
    st.query_params.clear()
    for key in list(st.session_state.keys()):
        if key != "viewport_probe":
            del st.session_state[key]


# --------------------------------------------------------------------------------------------------- pages
def _crowd_entry(db, study) -> tuple[bool, object]:
    """(go on, participant) for a crowd study: a returning participant resumes their rater (rerun); a link
    without the participant ID, an MTurk preview or a malformed ID gets a plain message (go on = False)."""
    plat = crowd_platform(study.crowd)
    query = {k: query_param(k) for k in st.query_params}
    try:
        participant = crowd_participant(study.crowd, query)
    except RatingRejected as err:
        participant, refusal = None, str(err)
    else:
        refusal = (consent.mturk_preview_text() if query.get("assignmentId") == MTURK_PREVIEW
                   else consent.missing_participant_text(plat.label))
    if participant is None:
        with narrow():
            st.title("Image quality study")
            st.info(refusal)
        return False, None
    token = participant_rater(db, study.name, participant.participant_id)
    if token is not None:  # a second visit: the same rater continues
        st.query_params[TOKEN_PARAM] = token
        st.rerun()
    return True, participant


def consent_page(db, viewport) -> None:
    study = _pick_study(db)
    if study is None:
        return
    study_name = study.name
    plat = crowd_platform(study.crowd)
    participant = None
    if plat is not None:
        go_on, participant = _crowd_entry(db, study)
        if not go_on:
            return
    else:
        token = remembered_rater(db, study_name)
        if token is not None:  # Back from the study, or a new visit without ?r=: this browser's rater continues
            st.query_params[TOKEN_PARAM] = token
            st.rerun()
    outlook = study_outlook(db, study_name)
    label = plat.label if plat else None
    if outlook.status != "open":  # plain words before any consent: closed or full
        with narrow():
            st.title("Image quality study")
            st.info(consent.unavailable_text(outlook, label))
        return
    q = st.session_state.get("qualify")
    if study.qualification and q is not None and q.get("study") == study.name:
        qualify.qualification_page(db, study, outlook, label, viewport,
                                   lambda: _start_rater(db, study.name, q.get("display"), participant))
        return
    with narrow():
        _consent_text(db, study, outlook, label, participant)


def _consent_text(db, study, outlook, platform_label, participant) -> None:
    st.title("Image quality study")
    st.markdown(consent.consent_markdown(study.mode, study.qualification, platform_label, study.break_every > 0))
    st.markdown(consent.length_line(outlook, study.qualification))
    display = st.selectbox(
        "Optional: what kind of screen are you using?", DISPLAY_CHOICES, index=0,
        format_func=lambda s: s or "Prefer not to say", key="display",
    )
    agreed = st.checkbox("I have read the above and agree to take part.", key="consent")
    if study.qualification:
        st.button("Start", type="primary", disabled=not agreed, key="start", on_click=_begin_qualification,
                  args=(study.name, display or None))
    else:
        st.button("Start", type="primary", disabled=not agreed, key="start",
                  on_click=_start_rater, args=(db, study.name, display or None, participant))


def _begin_qualification(study_name: str, display: str | None) -> None:
    st.session_state["qualify"] = {"study": study_name, "display": display, "step": qualify.STEP_SCREEN}


@guarded(_flash_error)
def _start_rater(db, study_name: str, display: str | None, participant=None) -> None:
    if query_param(TOKEN_PARAM):  # a second click while the first one is being processed
        return
    try:
        token = start_rater(db, study_name, display=display, participant=participant)
    except (StudyFull, StudyClosed) as err:  # meanwhile
        _flash("warning", consent.STARTED_TOO_LATE[type(err)])
        st.session_state.pop("qualify", None)
        return
    except MosError as err:
        _flash("error", user_message(err))
        return
    st.query_params[TOKEN_PARAM] = token
    # The qualification showed the examples already; the volunteer flow shows them now.
    st.session_state["calibrated"] = st.session_state.pop("qualify", None) is not None


def calibration_page(db, rater, viewport) -> None:
    mode = get_study(db, rater.study_name).mode
    qualify.show_examples(db, rater.study_name, mode, viewport, "I understand — start rating",
                          lambda: st.session_state.__setitem__("calibrated", True))


def break_page(done: int, total: int) -> None:
    with narrow():
        _break_text(done, total)


def _break_text(done: int, total: int) -> None:
    st.title("Time for a short break")
    st.markdown(
        f"You have rated **{done} of {total}** images. Rest your eyes for a minute — look at something far "
        "away. Your progress is saved; continue whenever you are ready."
    )
    st.progress(done / total)
    st.button("Continue", type="primary", key=f"break_{done}",
              on_click=lambda: st.session_state.__setitem__("break_ack", done))


def thank_you_page(rater, redirect_to: str | None = None) -> None:
    with narrow():
        _thank_you_text(rater, redirect_to)


def _thank_you_text(rater, redirect_to: str | None) -> None:
    st.title("Thank you!")
    st.success("You have completed the study. Your answers are saved.")
    if rater.completion_code:
        st.markdown("Your completion code (copy it if you were asked to report it):")
        st.code(rater.completion_code, language=None)
    if redirect_to:  # the crowd platform's completion page, with this rater's code: shown to them only
        st.markdown("You will be taken back in a few seconds. If nothing happens, press the button.")
        st.link_button("Complete my submission", redirect_to, type="primary")
        components.redirect(redirect_to, delay_ms=REDIRECT_DELAY_MS)
    else:
        st.markdown("You can close this page now.")


def unknown_rater_page() -> None:
    with narrow():
        st.title("Image quality study")
        st.error("This link does not belong to any rating session (it may be mistyped or incomplete). "
                 "If you copied it, please check it is complete; otherwise you can start a new session.")
        st.button("Start a new session", type="primary", key="start_over", on_click=_start_over)


def trial_page(db, token: str, trial, viewport) -> None:
    shown = st.session_state.setdefault("shown_at", {})
    shown.setdefault(trial.trial_id, time.monotonic())  # response time = submit - first render, server side
    marker = f"trial-{trial.trial_id}"  # opaque trial id: the browser test waits on it
    clock = st.session_state.pop("submit_clock", None)  # server time from the submit to this page (ms)
    server_ms = None if clock is None else (time.perf_counter() - clock) * 1000
    pair = trial.mode == TrialMode.PAIR
    with narrow():
        st.progress(trial.position / trial.total, text=f"Image {trial.position + 1} of {trial.total}")
        st.markdown("**Which version has the better quality?**" if pair
                    else "**How would you rate the quality of this image?**")
    if pair:  # A is the left image, B the right one, as the data layer randomised and recorded them
        components.show_images([str(trial.left_path), str(trial.right_path)],
                               [PairChoice.A, PairChoice.B], viewport, marker, server_ms)
        options, fmt, question = list(PAIR_LABELS), PAIR_LABELS.get, "Your choice"
    else:
        components.show_images([str(trial.image_path)], None, viewport, marker, server_ms)
        options, question = list(ACR_LABELS), "Your score"
        fmt = lambda s: f"{s} – {ACR_LABELS[s]}"  # noqa: E731
    with narrow():
        _show_flash()
        # One form per trial: a stale click can never answer the next trial (its key and empty choice differ).
        with st.form(key=f"form_{trial.trial_id}", border=False):
            st.radio(question, options, index=None, format_func=fmt, horizontal=True, key=f"answer_{trial.trial_id}")
            components.client_clock(marker, key=f"clock_{trial.trial_id}")  # image load -> Submit, in the browser
            sent = st.form_submit_button("Submit", type="primary", on_click=_submit,
                                         args=(db, token, trial.trial_id, trial.mode, viewport))
        if sent and st.session_state.pop("submit_ran", None) != trial.trial_id:
            # The click reached a server that has not run this page for this session yet (its server died
            # or restarted and the page reconnected to another one): Streamlit calls no callback for widgets
            # it has not registered, so the answer is stored here instead of being dropped silently.
            _submit(db, token, trial.trial_id, trial.mode, viewport)
            st.rerun()
        st.caption("Your answers are saved as you go. To continue later, keep this page's address "
                   "(bookmark it): it brings you back to where you stopped.")


@guarded(_flash_error)
def _submit(db, token: str, trial_id: int, mode: str, viewport) -> None:
    st.session_state["submit_ran"] = trial_id
    answer = st.session_state.get(f"answer_{trial_id}")
    if answer is None:
        _flash("warning", "Please choose an answer before submitting.")
        return
    st.session_state["submit_clock"] = time.perf_counter()  # for the server-time figure of the benchmark
    started = st.session_state.get("shown_at", {}).get(trial_id)
    server_ms = (time.monotonic() - started) * 1000 if started is not None else None  # bounds the browser's time
    response_ms = components.response_ms(server_ms, st.session_state.get(f"clock_{trial_id}"), f"trial-{trial_id}")
    try:
        result = submit_rating(
            db, token, trial_id,
            score=int(answer) if mode == TrialMode.ACR else None,
            choice=str(answer) if mode == TrialMode.PAIR else None,
            response_ms=response_ms,
            viewport_w=viewport.width, viewport_h=viewport.height,
            device_pixel_ratio=viewport.dpr if viewport.known else None,
        )
    except RatingRejected as err:
        _flash("error", str(err))
        return
    st.session_state.get("shown_at", {}).pop(trial_id, None)
    st.session_state["submitted"] = (token, result)  # the page that follows needs no read when it completed


def _completed_by_last_answer(token: str):
    """The :class:`~db.views.SubmitResult` of this session's answer just stored, when it completed ``token``."""
    sent, result = st.session_state.pop("submitted", (None, None))
    return result if sent == token and result.completed else None


# --------------------------------------------------------------------------------------------------- main
def main() -> None:
    st.set_page_config(page_title="Image quality study", layout="wide", initial_sidebar_state="collapsed",
                       menu_items={"Get help": None, "Report a bug": None, "About": None})
    viewport = components.capture_viewport()
    page(viewport)


@guarded(error_page)
def page(viewport) -> None:
    """The page for this URL and session: consent, calibration, break, trial or thank-you."""
    try:
        db = get_database(database_url())
    except ConfigError as err:
        st.error(str(err))
        return
    token = query_param(TOKEN_PARAM)
    if token is None:
        _show_flash()
        consent_page(db, viewport)
        return
    finished = _completed_by_last_answer(token)
    if finished is not None:
        thank_you_page(finished, completion_redirect(db, token))
        return
    try:
        state = rater_state(db, token)  # the one read of this answer
    except UnknownRater:
        unknown_rater_page()
        return
    rater = state.rater
    if rater.completed or state.trial is None:
        thank_you_page(rater, completion_redirect(db, token))
        return
    remember_rater(rater)
    if state.status != StudyStatus.OPEN:
        st.title("Image quality study")
        st.info(f"This study has closed — thank you! You rated {rater.done} of {rater.total} images; "
                "nothing more is needed from you.")
        return
    if rater.done == 0 and not st.session_state.get("calibrated", False):
        calibration_page(db, rater, viewport)
        return
    every = state.break_every
    if every and 0 < rater.done < rater.total and rater.done % every == 0 \
            and st.session_state.get("break_ack") != rater.done:
        break_page(rater.done, rater.total)
        return
    trial_page(db, token, show_trial(db, state.trial), viewport)


main()
