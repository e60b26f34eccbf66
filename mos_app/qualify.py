"""The qualification step of a study with ``qualification`` on, between the consent and the first rating:

1. **Screen check** — the page measures the window, the screen's available area and the device pixel ratio
   (browser zoom included) with :func:`mos_app.components.capture_screen`, and compares them with what the
   study's largest trial needs at one image pixel per device pixel (:func:`mos_app.components.needed_css`,
   the margins of the trial page's own fit warning). Window large enough: go on. Screen large enough but
   not the window: the rater is asked to enlarge it (the page checks again by itself on resize). Screen too
   small: a polite refusal; nothing is stored, no rater is created.
2. **Examples** — the calibration anchors (the worst and the best quality of the study).
3. **Practice** — a few trials with known answers (the anchors of a calibration source, never a test
   image): each answer gets feedback; practice answers live in this browser session only, never as votes.

Only then does "Start the study" create the rater (:func:`db.start_rater`), so a refused or abandoned
qualification holds no place in the study.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import streamlit as st

from db import PairChoice, StudyMode, StudyOutlook, calibration_examples
from mos_app import components

ACR_LABELS = {1: "Bad", 2: "Poor", 3: "Fair", 4: "Good", 5: "Excellent"}
PAIR_LABELS = {PairChoice.A: "A (left)", PairChoice.B: "B (right)", PairChoice.NONE: "No preference"}
STEP_SCREEN, STEP_EXAMPLES = 0, 1  # then the practice items, then the ready page


# ------------------------------------------------------------------------------------------ screen check
def screen_verdict(screen: components.Screen, outlook: StudyOutlook) -> str:
    """``ok`` (the window shows the study's largest trial at 1:1), ``enlarge`` (the screen could, not the
    window) or ``refuse`` (not even the whole screen can)."""
    widths = [outlook.max_width] * (1 if outlook.mode == StudyMode.ACR else 2)
    need_w, need_h = components.needed_css(widths, outlook.max_height, screen.dpr)
    if screen.width >= need_w and screen.height >= need_h:
        return "ok"
    if screen.screen_w >= need_w and screen.screen_h >= need_h:
        return "enlarge"
    return "refuse"


def _screen_step(outlook: StudyOutlook, platform_label: str | None, advance: Callable[[], None]) -> None:
    st.title("Checking your screen")
    screen = components.capture_screen()
    if screen is None:
        st.info("Measuring your browser window… (this takes a moment; if nothing happens, reload the page)")
        return
    verdict = screen_verdict(screen, outlook)
    if verdict == "ok":
        st.success("Your screen can show the images at their true size.")
        st.button("Continue", type="primary", key="screen_ok", on_click=advance)
    elif verdict == "enlarge":
        st.warning("Your browser window is too small to show the images at their true size. Please maximise "
                   "the window or use full screen (F11), and set the browser zoom to 100 % (Ctrl+0); this page "
                   "checks again by itself.")
        st.button("Check again", key="screen_again")
    else:
        device_w, device_h = round(screen.screen_w * screen.dpr), round(screen.screen_h * screen.dpr)
        text = ("Sorry — this study needs a larger screen: its images must be shown at their true size, and "
                f"yours ({device_w} × {device_h} pixels available) cannot show them whole. So we cannot include "
                "you in this study; nothing has been recorded. Thank you for your interest!")
        if platform_label:
            text += f" Please return this study on {platform_label}."
        st.info(text)


# -------------------------------------------------------------------------------------- examples, practice
def show_examples(db, study_name: str, mode: StudyMode, viewport, start_label: str, on_click, args=()) -> None:
    """The calibration anchors of the study, then a button. Pair-only studies speak of quality, not scores."""
    with st.container(width=860):
        st.title("Examples" if start_label.startswith("Continue") else "Calibration")
        if StudyMode(mode) == StudyMode.PAIR:
            st.markdown("These two examples show the **range** of quality you will see. They are not part of the "
                        "test: the first is of the **worst**, the second of the **best** quality you will meet.")
        else:
            st.markdown("These two examples show the **range** of quality you will see. They are not part of the "
                        "test. Use them as anchors: the first is a **1 (bad)**, the second a **5 (excellent)**.")
    examples = sorted(calibration_examples(db, study_name), key=lambda e: (e.source_index, e.score))
    for i, ex in enumerate(examples):
        if StudyMode(mode) == StudyMode.PAIR:
            st.subheader(f"Example {i + 1}: {'the worst' if ex.score == 1 else 'the best'} quality")
        else:
            st.subheader(f"Example {i + 1}: this is a {ex.score} — “{ex.label}”")
        components.show_images([str(ex.image_path)], None, viewport, marker=f"calibration-{i}")
    if not examples:
        st.info("No calibration examples are configured for this study.")
    st.button(start_label, type="primary", key="calibrated_btn", on_click=on_click, args=args)


def practice_items(db, study_name: str, mode: StudyMode) -> list[dict]:
    """Practice trials with known answers from the last calibration source's anchors (never a test image):
    ACR: its worst (expect 1-2) and best (expect 4-5) image in random order; pairs: the two side by side."""
    examples = calibration_examples(db, study_name)
    if not examples:
        return []
    last = max(e.source_index for e in examples)
    low = next((e.image_path for e in examples if e.source_index == last and e.score == 1), None)
    high = next((e.image_path for e in examples if e.source_index == last and e.score == 5), None)
    if low is None or high is None:
        return []
    rng, items = secrets.SystemRandom(), []
    if StudyMode(mode) != StudyMode.PAIR:
        acr = [{"kind": "acr", "path": low, "expect": "low"}, {"kind": "acr", "path": high, "expect": "high"}]
        rng.shuffle(acr)
        items += acr
    if StudyMode(mode) != StudyMode.ACR:
        swap = rng.random() < 0.5
        items.append({"kind": "pair", "paths": [high, low] if swap else [low, high],
                      "better": PairChoice.A if swap else PairChoice.B})
    return items


def feedback(item: dict, answer) -> tuple[bool, str]:
    """(right, the explanation) for a practice answer."""
    if item["kind"] == "acr":
        if item["expect"] == "low":
            return answer <= 2, ("This is one of the lowest-quality images of the study: most people score it "
                                 "**1 (Bad)** or **2 (Poor)**.")
        return answer >= 4, ("This is one of the best-quality images of the study: most people score it "
                             "**4 (Good)** or **5 (Excellent)**.")
    better = item["better"]
    return answer == better, (f"Version **{PAIR_LABELS[better]}** has clearly better quality: most people pick it.")


def _practice_step(item: dict, i: int, n: int, viewport, advance: Callable[[], None]) -> None:
    with st.container(width=860):
        st.title(f"Practice {i + 1} of {n}")
        st.caption("Practice only: these answers are not part of the results.")
        st.markdown("**Which version has the better quality?**" if item["kind"] == "pair"
                    else "**How would you rate the quality of this image?**")
    if item["kind"] == "pair":
        components.show_images(item["paths"], [PairChoice.A, PairChoice.B], viewport, marker=f"practice-{i}")
        options, fmt = list(PAIR_LABELS), PAIR_LABELS.get
    else:
        components.show_images([item["path"]], None, viewport, marker=f"practice-{i}")
        options, fmt = list(ACR_LABELS), lambda s: f"{s} – {ACR_LABELS[s]}"
    with st.container(width=860):
        answer = st.radio("Your answer", options, index=None, format_func=fmt, horizontal=True, key=f"practice_{i}")
        checked = st.session_state["qualify"].setdefault("checked", {})
        if st.button("Check my answer", key=f"practice_check_{i}", disabled=answer is None):
            checked[i] = answer
        if i in checked and checked[i] is not None:
            right, why = feedback(item, checked[i])
            (st.success if right else st.warning)(("Well judged. " if right else "Not quite. ") + why)
            st.button("Next", type="primary", key=f"practice_next_{i}", on_click=advance)


def qualification_page(db, study, outlook: StudyOutlook, platform_label: str | None, viewport,
                       start: Callable[[], None]) -> None:
    """The current qualification step of this session (``st.session_state["qualify"]``)."""
    q = st.session_state["qualify"]

    def advance():
        q["step"] = q.get("step", 0) + 1

    step = q.get("step", STEP_SCREEN)
    if step == STEP_SCREEN:
        with st.container(width=860):
            _screen_step(outlook, platform_label, advance)
        return
    if step == STEP_EXAMPLES:
        show_examples(db, study.name, study.mode, viewport, "Continue to the practice", advance)
        return
    items = q.setdefault("items", practice_items(db, study.name, study.mode))
    i = step - STEP_EXAMPLES - 1
    if i < len(items):
        _practice_step(items[i], i, len(items), viewport, advance)
        return
    with st.container(width=860):
        st.title("Ready")
        st.markdown("That was the practice. The study itself starts now; your answers are saved as you go.")
        st.button("Start the study", type="primary", key="start_study", on_click=start)
