"""Admin page of the MOS studies: ``MOS_DB_URL=... MOS_ADMIN_PASSWORD=... streamlit run mos_app/admin.py``.

A separate entry point (not a page of the rater app), so raters never see a navigation menu or a link to
it. Password from Streamlit secrets (``admin_password``) or env ``MOS_ADMIN_PASSWORD``; without one the page
stays locked. Wrong passwords count in the database's shared back-off (:mod:`db.logins`), one log line
each (never the password). Every page runs under :func:`mos_app.state.guarded`: a server error shows one
short line, its details go to the server log. Two pages (sidebar): "Study" shows status, per-rater quality control (the screening of
:mod:`srkeras.mos.screening`, the Dashboard's too; recording the flags is an explicit button), a quick MOS
table next to PSNR / SSIM per method (the SRGAN paper's Table/Fig. of MOS vs PSNR, Ledig et al. 2017
Sec. 3.4), pair preferences, and exports the ratings as CSV; "Dashboard" is the full analysis of
:mod:`srkeras.mos` (:mod:`mos_app.dashboard`). Every statistic comes from :mod:`srkeras.mos`; this page
only lays it out.
"""

from __future__ import annotations

import hmac
import io
import logging
import math
import sys
import time
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # `streamlit run mos_app/admin.py` puts mos_app/, not the repo root, on sys.path
    sys.path.insert(0, _ROOT)

import altair as alt  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from db import (  # noqa: E402
    QcFlag,
    StudyStatus,
    close_study,
    export_long_csv,
    export_ratings_csv,
    get_study,
    list_studies,
    login_attempt,
    mos_table,
    preference_table,
    rater_qc,
    reopen_study,
    study_status,
)
from mos_app.dashboard import dashboard_view  # noqa: E402
from mos_app.state import (  # noqa: E402
    ADMIN_PASSWORD_ENV,
    ConfigError,
    admin_message,
    admin_password,
    database_url,
    get_database,
    guarded,
)

# Flag names recorded by db.qc (Rater.qc_flags), as plain strings for the widget.
QC_FLAGS = [f.value for f in QcFlag]
log = logging.getLogger("mos_app.admin")
#: Every admin page runs under this: a server error shows one short line, its details go to the server log.
page_guard = guarded(st.error, admin_message)


def _login(db, expected: str) -> bool:
    """The password form; every attempt counts in the database's shared back-off (:func:`db.login_attempt`)."""
    if st.session_state.get("admin_ok"):
        return True
    st.title("MOS studies — admin")
    with st.form("login"):
        entered = st.text_input("Admin password", type="password", key="admin_pw")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        attempt = login_attempt(db, hmac.compare_digest(entered.encode(), expected.encode()))
        if attempt.ok:
            st.session_state["admin_ok"] = True
            st.session_state.pop("admin_pw", None)
            st.rerun()
        # One line per failure, never the password: the server log shows a guessing attack as it happens.
        log.warning("admin login refused: %s", "door locked, password not checked" if attempt.refused_locked
                    else f"wrong password ({attempt.failures} in a row)")
        time.sleep(0.5)  # slows down guessing
        if attempt.locked_for:
            st.error(f"Too many wrong passwords: the admin login is locked for {math.ceil(attempt.locked_for)} s.")
        else:
            st.error("Wrong password.")
    return False


def _column(df: pd.DataFrame, *names: str) -> str | None:
    lower = {c.lower(): c for c in df.columns}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def mos_chart(table: pd.DataFrame) -> alt.Chart | None:
    """MOS ± 95 % CI per method (left) and MOS against PSNR (right)."""
    df = table.reset_index() if _column(table, "method") is None else table.copy()
    method = _column(df, "method", "index")
    mos, ci = _column(df, "mos"), _column(df, "ci95")
    if method is None or mos is None or df.empty:
        return None
    df = df.rename(columns={method: "method", mos: "MOS"}).replace([float("inf"), float("-inf")], float("nan"))
    df = df.dropna(subset=["MOS"])
    lo, hi = _column(df, "boot_ci95_low"), _column(df, "boot_ci95_high")  # srkeras.mos.scores.method_interval:
    df["lo"] = df[lo] if lo else df["MOS"] - (df[ci] if ci else 0)  # the report's and the dashboard's interval
    df["hi"] = df[hi] if hi else df["MOS"] + (df[ci] if ci else 0)
    order = df.sort_values("MOS")["method"].tolist()
    mos_scale = alt.Scale(domain=[1, 5])
    y = alt.Y("method:N", sort=order, title=None)
    title = "MOS (1 bad … 5 excellent)"
    x = alt.X("MOS:Q", scale=mos_scale, title=title)
    dots = alt.Chart(df).mark_point(filled=True, size=80).encode(
        x=x, y=y, tooltip=["method", "MOS", "lo", "hi"])
    whiskers = alt.Chart(df).mark_rule().encode(x=alt.X("lo:Q", scale=mos_scale, title=title), x2="hi:Q", y=y)
    left = (whiskers + dots).properties(title="MOS with 95 % CI (raters x images bootstrap, as in the report)",
                                        width=320, height=max(120, 36 * len(df)))
    psnr = _column(df, "psnr")
    if psnr is None or df[psnr].isna().all():
        return left
    sub = df.dropna(subset=[psnr]).rename(columns={psnr: "PSNR"})
    px = alt.X("PSNR:Q", scale=alt.Scale(zero=False, padding=20), title="PSNR (dB, Y channel)")
    pts = alt.Chart(sub).mark_point(filled=True, size=80).encode(
        x=px, y=alt.Y("MOS:Q", scale=mos_scale, title="MOS"), tooltip=["method", "PSNR", "MOS"])
    err = alt.Chart(sub).mark_rule().encode(x=px, y=alt.Y("lo:Q", scale=mos_scale, title="MOS"), y2="hi:Q")
    labels = pts.mark_text(align="left", dx=7).encode(text="method:N")
    right = (err + pts + labels).properties(title="MOS vs PSNR (HR: PSNR ∞, not drawn)", width=320, height=240)
    return alt.hconcat(left, right)


def _valid_votes(status: dict) -> list[tuple[str, str]]:
    """Valid/target (issue 20 top-up: screened-out raters' votes do not count; they are handed out again)."""
    v = status.get("valid_votes")
    if not v:
        return []
    return [(f"valid / target ({status.get('sampling', 'balanced')})",
             f"{v['min']}/{v['target']} min · {v['at_target']}/{v['items']} items done · {v['screened_out']} screened out")]


def study_view(db, name: str) -> None:
    info = get_study(db, name)
    status = study_status(db, name)
    st.subheader(f"Study “{info.name}” — {info.status}")
    st.caption(f"mode {info.mode} · ×{info.scale} · {info.votes_per_stimulus} votes per stimulus · "
               f"{info.trials_per_rater or 'all'} trials per rater · break every {info.break_every or '—'} · "
               f"{status.get('votes_per_stimulus', {}).get('items', '?')} test items")
    votes = status.get("votes_per_stimulus", {})
    shown = [("raters", status.get("raters")), ("completed", status.get("completed")),
             ("ratings", status.get("ratings")),
             ("votes per item (min / mean)", f"{votes.get('min', 0)} / {votes.get('mean', 0):.1f}"),
             ("target votes per item", votes.get("target", info.votes_per_stimulus)),
             *_valid_votes(status)]
    for col, (k, v) in zip(st.columns(len(shown)), shown):
        col.metric(k, v)
    with st.expander("Full status", expanded=False):
        st.json(status)

    csv = export_ratings_csv(db, name)  # read-only: flags computed for the file, not recorded
    ratings = pd.read_csv(io.StringIO(csv))
    st.caption(answers_explained(status.get("ratings"), ratings))
    tab_mos, tab_qc, tab_export = st.tabs(["Results", "Raters (QC)", "Export / close"])
    with tab_mos:
        _results(db, name)
    with tab_qc:
        _qc(db, name)
    with tab_export:
        _export(db, name, info, csv, ratings)


def _results(db, name: str) -> None:
    exclude = st.multiselect("Exclude raters flagged", QC_FLAGS, default=[], key="exclude",
                             help="Exclusions are your decision: report them with the results.")
    table = mos_table(db, name, exclude_flags=tuple(exclude))
    if table is None or len(table) == 0 or table["n"].sum() == 0:
        st.info("No rating-scale (ACR) answers yet.")
    else:
        st.markdown("Quick view: MOS per method with the 95 % t interval over the votes (`ci95`) and the raters x "
                    "images bootstrap interval (`boot_ci95_*`, the one to report), next to the mean PSNR / SSIM of "
                    "the same stimuli (Y channel, border cropped by the scale; HR: PSNR ∞). The **Dashboard** page "
                    "has the full analysis.")
        st.dataframe(table, width="stretch", hide_index=True)
        chart = mos_chart(table)
        if chart is not None:
            st.altair_chart(chart)
    prefs = preference_table(db, name, exclude_flags=tuple(exclude))
    if len(prefs):
        st.markdown("Pair comparisons: share of votes for `method_a` (ties split) with its 95 % interval.")
        st.dataframe(prefs, width="stretch", hide_index=True)


def answers_explained(n_ratings, ratings: pd.DataFrame) -> str:
    """Why "N ratings" here is more than the Dashboard's "M votes": the test-retest repeats (an item asked
    again to measure a rater's consistency) are answers, not votes."""
    n = int(n_ratings if n_ratings is not None else len(ratings))
    repeats = int(ratings["is_repeat_of"].notna().sum()) if "is_repeat_of" in ratings.columns else 0
    return (f"{n} ratings = {n - repeats} votes + {repeats} repeats: a repeat asks a rater an item again to "
            "measure their consistency (rater QC); it is not a vote, so the Dashboard and the report count "
            f"{n - repeats} votes.")


#: Rater QC columns shown first, so the verdict, the flags and the speed are on screen at normal widths.
QC_FIRST = ["rater", "display", "rejected", "flags", "reasons", "fast_n", "fast_fraction", "median_response_ms",
            "completed", "n_ratings"]


def qc_table(qc: list[dict]) -> tuple[pd.DataFrame, dict]:
    """The rater-QC table (flags as text, :data:`QC_FIRST` first) and its column widths."""
    table = pd.DataFrame(qc)
    table["reasons"] = table["reasons"].map("; ".join)
    table["flags"] = table["flags"].map(lambda f: ", ".join(str(x) for x in f))
    first = [c for c in QC_FIRST if c in table.columns]
    table = table[first + [c for c in table.columns if c not in first]]
    config = {"rater": st.column_config.TextColumn(width="small"),
              "display": st.column_config.TextColumn(width="small"),
              "flags": st.column_config.TextColumn(width="medium"),
              "reasons": st.column_config.TextColumn(width="medium"),
              "fast_fraction": st.column_config.NumberColumn("fast share", format="%.2f", width="small"),
              "median_response_ms": st.column_config.NumberColumn("median ms", format="%d", width="small")}
    return table, config


def _qc(db, name: str) -> None:
    qc = rater_qc(db, name, store=False)
    if not qc:
        st.info("No raters yet.")
        return
    st.caption("Flags are recorded, never used to drop raters silently: decide and report exclusions. "
               "`rejected` and `reasons` are the screening of the Dashboard and the report (ITU-R BT.500 "
               "included, which compares raters and is never recorded).")
    table, config = qc_table(qc)
    st.dataframe(table, width="stretch", hide_index=True, column_config=config, key="qc_table")
    if st.button("Record these flags in the database", key="store_qc",
                 help="Flags are recorded when a rater completes; this refreshes every rater's stored flags."):
        rater_qc(db, name)
        st.success("QC flags recorded.")


def _export(db, name: str, info, csv: str, ratings: pd.DataFrame) -> None:
    st.download_button("Download ratings CSV", data=csv, file_name=f"{name}_ratings.csv",
                       mime="text/csv", key="csv")
    for fname, text in export_long_csv(db, name).items():
        st.download_button(f"Download {fname} (long format, for pipelines.report)", data=text,
                           file_name=f"{name}_{fname}", mime="text/csv", key=f"long_{fname}")
    st.caption(f"{len(ratings)} rows (one per answer; repeats and QC flags included)")
    st.dataframe(ratings, width="stretch", hide_index=True)
    if info.status == StudyStatus.OPEN:
        sure = st.checkbox("I want to close this study (raters can no longer submit).", key="close_sure")
        if st.button("Close study", disabled=not sure, key="close"):
            close_study(db, name)
            st.rerun()
    elif st.button("Reopen study", key="reopen"):
        reopen_study(db, name)
        st.rerun()


@page_guard
def main() -> None:
    st.set_page_config(page_title="MOS admin", layout="wide")
    expected = admin_password()
    if expected is None:
        st.error(f"The admin page is locked: set `admin_password` in .streamlit/secrets.toml or env "
                 f"{ADMIN_PASSWORD_ENV}.")
        return
    try:
        db = get_database(database_url())
    except ConfigError as err:
        st.error(str(err))
        return
    if not _login(db, expected):
        return
    names = [s.name for s in list_studies(db)]
    st.sidebar.title("MOS admin")
    if st.sidebar.button("Log out"):
        st.session_state.clear()
        st.rerun()
    if not names:
        st.info("No studies yet: create one with `python -m pipelines.prepare_study`.")
        return
    name = st.sidebar.selectbox("Study", names, key="study")
    page = st.sidebar.radio("Page", ["Study", "Dashboard"], key="page")
    page_guard(dashboard_view if page == "Dashboard" else study_view)(db, name)


main()
