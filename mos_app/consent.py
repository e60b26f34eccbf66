"""What the rater app says before anyone takes part: the consent text (what a rater of THIS study will do,
how many answers and minutes), and the plain refusal when a study cannot take them (closed, full, a crowd
study opened without the platform's participant ID). Pure text builders; :mod:`mos_app.app` shows them.

No text names the internal study or a method; a refusal is shown before the consent, never after Start.
"""

from __future__ import annotations

from db import StudyClosed, StudyFull, StudyMode, StudyOutlook, TrialMode

#: What a rater reads when the study filled up or closed between the consent and Start (no internal name).
STARTED_TOO_LATE = {
    StudyFull: "Sorry — the study filled up while you were reading, so it takes no new participants now. "
               "Thank you for your interest!",
    StudyClosed: "Sorry — the study closed while you were reading. Thank you for your interest!",
}

_ACR_TASK = ("- Then, for each image, choose a score from **1 (bad)** to **5 (excellent)**.")
_PAIR_TASK = ("- Then, for each question, two versions of a picture are shown side by side: pick the one that "
              "looks **better** (A or B), or *no preference*.")
_BOTH_TASK = ("- Then, for each image, choose a score from **1 (bad)** to **5 (excellent)**; after that, two "
              "versions of a picture are shown side by side: pick the one that looks **better** (A or B), or "
              "*no preference*.")
_ANCHORS = {
    StudyMode.ACR: "one of the worst quality you will meet (a **1, \"bad\"**) and one of the best (a **5, "
                   "\"excellent\"**)",
    StudyMode.PAIR: "one of the worst quality you will meet and one of the best",
}


def _count(outlook: StudyOutlook) -> str:
    n_acr, n_pair = outlook.trials.get(TrialMode.ACR, 0), outlook.trials.get(TrialMode.PAIR, 0)
    parts = []
    if n_acr:
        parts.append(f"{n_acr} image{'s' if n_acr != 1 else ''} to score")
    if n_pair:
        parts.append(f"{n_pair} pair{'s' if n_pair != 1 else ''} to compare")
    return " and ".join(parts)


def length_line(outlook: StudyOutlook, qualification: bool) -> str:
    """"You will have N images to score (and M pairs to compare); it takes about K minutes"."""
    extra = 3 if qualification else 1  # calibration examples (and screen check + practice)
    minutes = outlook.minutes + extra
    return (f"**How long** — you will have **{_count(outlook)}**; the whole study takes about "
            f"**{minutes} minutes**, including the {'screen check, examples and practice' if qualification else 'examples'}"
            " at the start.")


def consent_markdown(mode: StudyMode, qualification: bool, platform_label: str | None, breaks: bool = True) -> str:
    """The consent and instructions of a study of ``mode``: an ACR-only study never mentions pair choices and a
    pair-only study never mentions scores; ``platform_label`` (e.g. "Prolific") adds what is kept from its link."""
    mode = StudyMode(mode)
    task = {StudyMode.ACR: _ACR_TASK, StudyMode.PAIR: _PAIR_TASK, StudyMode.BOTH: _BOTH_TASK}[mode]
    anchors = _ANCHORS[StudyMode.PAIR if mode == StudyMode.PAIR else StudyMode.ACR]
    first = ("- First we check that your screen can show the images at their true size, show you two *examples* "
             f"— {anchors} — and let you try a few *practice* questions with feedback (not part of the results)."
             if qualification else f"- First you see two *examples*: {anchors}.")
    crowd = (f" From the {platform_label} link we also keep your {platform_label} ID and the other IDs it carries "
             "(study, session or assignment), only to match your answers to your submission." if platform_label else "")
    stop = ("You may stop at any time; opening the study again from the same link brings you back to where you "
            "stopped." if platform_label else
            "You may stop at any time; the link in your address bar lets you continue later.")
    return f"""
Thank you for helping us! You will see a series of photographs and judge their **visual quality**.

**What you will do**
{first}
{task}
- Judge the image as a whole; there are no right or wrong answers. Take your time, but go with your
  first impression.{" Short breaks are offered along the way." if breaks else ""}

**Viewing conditions** — images are shown at their true size (one image pixel per screen pixel).
Please use a computer screen, keep the browser zoom at 100 % and make the window large (full screen, F11).

**Your data** — we store only your answers, response times, your window size and pixel ratio, and the
optional display type below, under a random code. No name, e-mail or IP address is recorded.{crowd} {stop}
"""


def unavailable_text(outlook: StudyOutlook, platform_label: str | None) -> str:
    """The plain words for a study that takes no new participants (closed or full), before any consent."""
    if outlook.status == "closed":
        text = "This study has finished and takes no new participants. Thank you for your interest!"
    elif outlook.retry_minutes is not None:
        text = ("This study is full at the moment: every remaining place is taken by people taking part right now. "
                f"A place may free up within {outlook.retry_minutes} minutes, so you may try again later. "
                "Thank you for your interest!")
    else:
        text = "This study is full: it already has all the answers it needs. Thank you for your interest!"
    if platform_label:
        text += f" You have not started, so please return this study on {platform_label}."
    return text


def missing_participant_text(platform_label: str) -> str:
    return (f"This study is run on {platform_label}. Please open it from the link on {platform_label}: the link "
            f"tells us your {platform_label} ID, so that your work can be matched to your submission.")


def mturk_preview_text() -> str:
    return "This is a preview. Please accept the HIT on Mechanical Turk to start the study."
