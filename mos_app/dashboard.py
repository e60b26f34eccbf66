"""Admin dashboard of a MOS study (issue 12): the statistics of :mod:`srkeras.mos` as Altair charts.

Shown by the admin app (``mos_app/admin.py``, behind its password) as the "Dashboard" page: MOS per
method with its raters x images bootstrap CI, MOS against PSNR / SSIM (and any other metric) with
Pearson / Spearman / Kendall correlations, rating histograms, the Wilcoxon-Holm significance matrix,
the pair-comparison heatmap and Bradley-Terry scores, the rater screening table with its reasons,
filters by dataset and method, and downloads of the report files (the same files as
``python -m pipelines.report``). The screening is :func:`srkeras.mos.screening.screen` on the votes
shown, with each rater's completion: with every dataset and method selected (the default) it is the
Study page's rater QC (:func:`db.rater_qc`), rater for rater. Chart builders are plain functions of a :class:`srkeras.mos.Report` so
they are testable without Streamlit; :func:`dashboard_view` draws the page.
"""

from __future__ import annotations

import math

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from db import rater_completion, rating_frames
from srkeras.mos import Report, analyze, scores
from srkeras.mos.files import report_files
from srkeras.mos.pseudonyms import rename_study
from srkeras.mos.schema import validate_frames

N_BOOT = scores.N_BOOT  # the method MOS interval of the report CLI and the admin Study page (same numbers)
NO_DATASET = "(one set)"
P_BINS = ["p < 0.01", "p < 0.05", "n.s."]


# ---------------------------------------------------------------------------------------------- data
def load_frames(db, name: str):
    """(acr, pairs, metrics, completed) of study ``name``: the frames validated against
    :mod:`srkeras.mos.schema` (None when empty) and ``{rater: finished}`` for the ``incomplete`` rule."""
    acr, pairs, metrics = validate_frames(*rating_frames(db, name), f"study {name!r}")
    acr, pairs, completed = rename_study(acr, pairs, rater_completion(db, name))  # pseudonyms, never tokens
    return acr, pairs, metrics, completed


def dataset_of(image: str) -> str:
    """The dataset of an image key: its first folder (``Set5/baby.png`` -> ``Set5``), else one set."""
    return image.split("/", 1)[0] if "/" in image else NO_DATASET


def options(acr, pairs) -> tuple[list[str], list[str]]:
    """(datasets, methods) present in the votes, sorted."""
    images, methods = set(), set()
    if acr is not None:
        images |= set(acr["image"])
        methods |= set(acr["method"])
    if pairs is not None:
        images |= set(pairs["image"])
        methods |= set(pairs["method_a"]) | set(pairs["method_b"])
    return sorted({dataset_of(i) for i in images}), sorted(methods)


def filter_frames(acr, pairs, metrics, datasets, methods):
    """The frames restricted to images of ``datasets`` and to ``methods`` (pairs: both sides); None if empty."""
    ds, ms = set(datasets), set(methods)

    def keep(df, cols):
        if df is None:
            return None
        out = df[df["image"].map(dataset_of).isin(ds) & np.logical_and.reduce([df[c].isin(ms) for c in cols])]
        return out if len(out) else None

    return keep(acr, ["method"]), keep(pairs, ["method_a", "method_b"]), keep(metrics, ["method"])


@st.cache_data(show_spinner="Computing the statistics (bootstrap, subject model) ...", max_entries=16)
def compute(acr, pairs, metrics, completed, title: str, n_boot: int = N_BOOT) -> tuple[Report, dict[str, bytes]]:
    """The report and its files (cached per data and filters)."""
    rep = analyze(acr, pairs, metrics, n_boot=n_boot, seed=0, completed=completed)
    return rep, report_files(rep, title)


# ---------------------------------------------------------------------------------------------- charts
#: Streamlit's default autosize "fit" squeezes the plot into ``height`` with title and axes; fit the width only.
FIT_X = alt.AutoSizeParams(type="fit-x", contains="padding")


#: Colours of the methods (Tableau 20): a method has the same one in every chart of the page.
PALETTE = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
           "#bab0ac", "#1f77b4", "#aec7e8", "#ffbb78", "#98df8a", "#d62728", "#9467bd", "#c5b0d5", "#8c564b",
           "#e377c2", "#17becf"]


def method_color(methods) -> alt.Color:
    """One colour scale for every chart: the domain is all the study's methods (sorted), so a chart that
    leaves a method out (HR's infinite PSNR) or orders them differently does not shift the colours."""
    domain = sorted(dict.fromkeys(str(m) for m in methods))
    return alt.Color("method:N", title="method",
                     scale=alt.Scale(domain=domain, range=[PALETTE[i % len(PALETTE)] for i in range(len(domain))]))


def _all_methods(rep: Report) -> list[str]:
    found = [] if rep.methods is None else list(rep.methods["method"])
    return found + ([] if rep.pairs is None else list(rep.pairs["method"]))


def _finite(df: pd.DataFrame, cols) -> pd.DataFrame:
    return df.replace([np.inf, -np.inf], np.nan).dropna(subset=list(cols))


def mos_ci_chart(methods: pd.DataFrame, color: alt.Color | None = None) -> alt.Chart:
    """MOS per method (its colour: :func:`method_color`; shape: its role) with the 95 % bootstrap CI (and
    the screened MOS as a hollow mark)."""
    color = color or method_color(methods["method"])
    df = methods[["method", "role", "mos", "ci95_low", "ci95_high", "mos_screened", "n"]].copy()
    y = alt.Y("method:N", sort=df.sort_values("mos", ascending=False)["method"].tolist(), title=None)
    x = alt.X("mos:Q", scale=alt.Scale(domain=[1, 5]), title="MOS (1 bad ... 5 excellent)")
    base = alt.Chart(df)
    bars = base.mark_rule(strokeWidth=2).encode(y=y, x=alt.X("ci95_low:Q", scale=alt.Scale(domain=[1, 5])),
                                                  x2="ci95_high:Q")
    dots = base.mark_point(filled=True, size=90).encode(
        y=y, x=x, color=color, shape=alt.Shape("role:N", title="role"),
        tooltip=["method", "role", "n", alt.Tooltip("mos:Q", format=".3f"), alt.Tooltip("ci95_low:Q", format=".3f"),
                 alt.Tooltip("ci95_high:Q", format=".3f"), alt.Tooltip("mos_screened:Q", format=".3f")])
    screened = base.mark_point(shape="diamond", size=60).encode(y=y, x=alt.X("mos_screened:Q"))
    return (bars + dots + screened).properties(autosize=FIT_X, title="MOS with 95% CI (raters x images bootstrap); "
                                               "diamond: screened", height=max(140, 34 * len(df)))


def _corr_text(c: dict) -> str:
    def f(v):
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"

    return f"Pearson {f(c.get('pearson'))}, Spearman {f(c.get('spearman'))}, Kendall {f(c.get('kendall'))}"


def metric_scatter(rep: Report, metric: str, color: alt.Color | None = None) -> alt.Chart | None:
    """MOS against ``metric``: stimuli (small) and method means with CI (large); correlations in the title."""
    st_df = _finite(rep.stimuli[["method", "image", "mos", metric]], ["mos", metric])
    me = _finite(rep.methods[["method", "role", "mos", "ci95_low", "ci95_high", metric]], ["mos", metric])
    if me.empty and st_df.empty:
        return None
    x = alt.X(f"{metric}:Q", scale=alt.Scale(zero=False, padding=12), title=metric.upper())
    y = alt.Y("mos:Q", scale=alt.Scale(domain=[1, 5]), title="MOS")
    color = color or method_color(_all_methods(rep))
    pts = alt.Chart(st_df).mark_circle(size=28, opacity=0.45).encode(x=x, y=y, color=color,
                                                                      tooltip=["method", "image", "mos", metric])
    err = alt.Chart(me).mark_rule().encode(x=x, y=alt.Y("ci95_low:Q", scale=alt.Scale(domain=[1, 5])), y2="ci95_high:Q",
                                           color=color)
    big = alt.Chart(me).mark_point(filled=True, size=140, shape="square").encode(
        x=x, y=y, color=color, tooltip=["method", "role", "mos", metric])
    title = [f"MOS vs {metric.upper()} (anchors left out of the correlations)",
             f"methods: {_corr_text(rep.correlation_methods.get(metric, {}))}",
             f"stimuli: {_corr_text(rep.correlation.get(metric, {}))}"]
    return (pts + err + big).properties(autosize=FIT_X, title=title, height=300)


def histogram_chart(methods: pd.DataFrame) -> alt.Chart:
    """Share of each score 1..5 per method (stacked, SRGAN Fig. 5)."""
    cols = [f"hist_{k}" for k in range(1, 6)]
    long = methods[["method", *cols]].melt("method", var_name="score", value_name="votes")
    long["score"] = long["score"].str[-1].astype(int)
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("method:N", title=None, sort=methods.sort_values("mos", ascending=False)["method"].tolist()),
        x=alt.X("votes:Q", stack="normalize", title="share of votes"),
        color=alt.Color("score:O", scale=alt.Scale(scheme="redyellowgreen"), title="score"),
        order=alt.Order("score:O"), tooltip=["method", "score", "votes"],
    ).properties(autosize=FIT_X, title="Rating histogram", height=max(140, 30 * len(methods)))


def matrix_chart(mat: pd.DataFrame, title: str, value: str, fmt: str, color: alt.Color) -> alt.Chart:
    """Heatmap of a square methods x methods frame with the values written in the cells."""
    long = mat.rename_axis(index="row").reset_index().melt("row", var_name="col", value_name=value)
    long = long[long["row"] != long["col"]]
    order = list(mat.index)
    base = alt.Chart(long).encode(x=alt.X("col:N", sort=order, title=None), y=alt.Y("row:N", sort=order, title=None))
    cells = base.mark_rect().encode(color=color, tooltip=["row", "col", alt.Tooltip(f"{value}:Q", format=fmt)])
    text = base.mark_text(fontSize=11).encode(text=alt.Text(f"{value}:Q", format=fmt))
    return (cells + text).properties(autosize=FIT_X, title=title, height=max(160, 36 * len(order)))


def significance_chart(rep: Report) -> alt.Chart:
    """Holm-adjusted p of the paired Wilcoxon test between every two methods."""
    order = rep.methods.sort_values("mos", ascending=False)["method"].tolist()
    mat = rep.significance.loc[order, order]
    color = alt.Color("p_holm:Q", scale=alt.Scale(domain=[0, 0.05, 1], range=["#31a354", "#c7e9c0", "#fee0d2"]),
                      title="Holm p")
    return matrix_chart(mat, "Significant differences (paired Wilcoxon on per-image MOS, Holm)", "p_holm", ".3f",
                        color)


def pair_heatmap(rep: Report) -> alt.Chart:
    """Share of wins of the row method over the column method (ties count half)."""
    order = rep.pairs.sort_values("bt", ascending=False)["method"].tolist()
    W = rep.win_matrix.loc[order, order].to_numpy()
    N = W + W.T
    share = pd.DataFrame(np.where(N > 0, W / np.where(N > 0, N, 1), np.nan), index=order, columns=order)
    color = alt.Color("share:Q", scale=alt.Scale(domain=[0, 1], scheme="blueorange"), title="win share")
    return matrix_chart(share, "Pair comparisons: share of wins of row over column", "share", ".0%", color)


def bt_chart(pairs: pd.DataFrame, color: alt.Color | None = None) -> alt.Chart:
    """Bradley-Terry log-strengths with 95 % CIs."""
    color = color or method_color(pairs["method"])
    y = alt.Y("method:N", sort=pairs.sort_values("bt", ascending=False)["method"].tolist(), title=None)
    base = alt.Chart(pairs[["method", "bt", "ci95_low", "ci95_high", "win_rate", "comparisons"]])
    return (base.mark_rule(strokeWidth=2).encode(y=y, x=alt.X("ci95_low:Q", title="BT score (log-odds)"),
                                                  x2="ci95_high:Q")
            + base.mark_point(filled=True, size=90).encode(y=y, x="bt:Q", color=color,
                                                           tooltip=["method", "bt", "win_rate", "comparisons"])
            ).properties(autosize=FIT_X, title="Bradley-Terry scores with 95% CI", height=max(140, 34 * len(pairs)))


def charts(rep: Report) -> dict[str, alt.Chart]:
    """Every chart of the dashboard for ``rep``, by name (in display order)."""
    out: dict[str, alt.Chart] = {}
    color = method_color(_all_methods(rep))
    if rep.methods is not None:
        out["mos"] = mos_ci_chart(rep.methods, color)
        for m in rep.metrics:
            c = metric_scatter(rep, m, color)
            if c is not None:
                out[f"scatter_{m}"] = c
        out["histogram"] = histogram_chart(rep.methods)
        out["significance"] = significance_chart(rep)
    if rep.pairs is not None:
        out["pairs"] = pair_heatmap(rep)
        out["bt"] = bt_chart(rep.pairs, color)
    return out


# ---------------------------------------------------------------------------------------------- page
def _raters_table(rep: Report) -> pd.DataFrame:
    r = rep.raters.copy()
    r["reasons"] = r["reasons"].map(lambda v: "; ".join(v) if isinstance(v, list | tuple) else v)
    return r


def _filters(acr, pairs) -> tuple[list[str], list[str]]:
    datasets, methods = options(acr, pairs)
    c1, c2 = st.columns(2)
    ds = c1.multiselect("Datasets", datasets, default=datasets, key="dash_datasets")
    ms = c2.multiselect("Methods", methods, default=methods, key="dash_methods",
                        help="Anchors (NN, HR) calibrate the scale; they never enter the correlations.")
    return ds, ms


def _downloads(name: str, files: dict[str, bytes]) -> None:
    st.markdown("**Report files** (the same as `python -m pipelines.report`):")
    mime = {"json": "application/json", "csv": "text/csv", "html": "text/html"}
    cols = st.columns(len(files))
    for col, (fname, data) in zip(cols, files.items()):
        col.download_button(fname, data=data, file_name=f"{name}_{fname}", mime=mime[fname.rsplit(".", 1)[1]],
                            key=f"dl_{fname}")


def dashboard_view(db, name: str) -> None:
    """The dashboard page of study ``name``."""
    st.subheader(f"Dashboard — “{name}”")
    acr, pairs, metrics, completed = load_frames(db, name)
    if acr is None and pairs is None:
        st.info("No answers yet: the dashboard appears with the first ratings.")
        return
    ds, ms = _filters(acr, pairs)
    acr, pairs, metrics = filter_frames(acr, pairs, metrics, ds, ms)
    if acr is None and pairs is None:
        st.warning("No answers for this choice of datasets and methods.")
        return
    rep, files = compute(acr, pairs, metrics, completed, f"MOS report: {name}")
    c = rep.counts
    st.caption(f"{c.get('acr_votes', 0)} ACR votes, {c.get('pair_votes', 0)} pair votes, {c.get('raters', 0)} "
               f"raters ({c.get('rejected', 0)} rejected by screening, reported with and without them); "
               f"Krippendorff's alpha {rep.alpha:.3f}." if np.isfinite(rep.alpha) else
               f"{c.get('pair_votes', 0)} pair votes, {c.get('raters', 0)} raters.")
    if rep.warnings:  # the report's sample-size warning block (srkeras.mos.adequacy)
        st.warning("**Sample size warning:** this study is too small for some of the statistics below.\n\n"
                   + "\n".join(f"- {w}" for w in rep.warnings))
    for note in rep.notes:  # what is undefined and why (every rater screened out, alpha undefined)
        st.warning(note)
    for key, chart in charts(rep).items():
        st.altair_chart(chart, key=f"chart_{key}", width="stretch")
    if rep.ranking_verdict:
        st.markdown(f"**Metrics against the listeners:** {rep.ranking_verdict}")
    if rep.methods is not None:
        st.markdown("**Methods**")
        st.dataframe(rep.methods, hide_index=True, key="dash_methods_table")
    if rep.wilcoxon is not None and len(rep.wilcoxon):
        st.dataframe(rep.wilcoxon, hide_index=True, key="dash_wilcoxon")
    if rep.pairs is not None:
        st.dataframe(rep.pairs, hide_index=True, key="dash_pairs")
    st.markdown("**Raters** (pseudonyms): screening (ITU-R BT.500, hidden anchors, repeats, speed, straight-lining, "
                "unfinished sessions, correlation with the others' MOS (ITU-T P.913 sec. 11.4), subject-model "
                "inconsistency, agreement with the others' Bradley-Terry fit) with the reasons, and the subject "
                "model's bias and inconsistency per rater.")
    st.dataframe(_raters_table(rep), hide_index=True, key="dash_raters")
    _downloads(name, files)
