"""Self-contained HTML report: inline CSS and SVG only, opens offline with every chart drawn."""

from __future__ import annotations

import math
from html import escape

import numpy as np
import pandas as pd

from srkeras.mos import correlation, svg
from srkeras.mos.report import Report

CSS = """body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f0f0f0}td.l,th.l{text-align:left}.rej{background:#fde0dd}.note{color:#555;font-size:13px}
h2{border-bottom:2px solid #ddd;margin-top:1.6em}details{margin:.5em 0}
.warn{background:#fff3cd;border:2px solid #e0a800;padding:.5em 1em;margin:1em 0}"""

HOW_TO_READ = """<p>Raters scored each image 1 (bad) to 5 (excellent) (absolute category rating, ITU-T P.910) and/or
picked the better of two images of the same source (pair comparison). <b>MOS</b> is the mean score. The bars' whiskers
are 95% confidence intervals: per method from a bootstrap that resamples both raters and images (so it says how
much the MOS would move with other raters <i>and</i> other images, and stays inside 1-5); per image-method (stimulus)
from Student's t on the logit of the MOS rescaled to 0-1, so it stays inside 1-5 too (empty where all votes agree).
Non-overlapping intervals suggest a real difference, but the <b>significance matrix</b> is the test: a paired
two-sided Wilcoxon signed-rank test on per-image MOS (the SRGAN paper's test) for every pair of methods, with
Holm's correction for the number of pairs; green cells (p &lt; 0.05) are differences unlikely to be chance.
<b>Screened</b> values drop raters rejected by the checks in the rater table (ITU-R BT.500 outlier test, hidden
anchors answered wrongly, inconsistent repeats, answers too fast, a correlation with the other raters' MOS below
ITU-T P.913's thresholds, an outlying subject-model inconsistency, pair answers that disagree with the others'
Bradley-Terry fit). <b>MLE</b> is the ITU-T P.913 sec. 12.6 model
that removes each rater's bias and down-weights inconsistent raters. <b>Bradley-Terry</b> scores (pairs) are
log-odds: a difference of 1 means the better method wins about 73% of the time. Krippendorff's <b>alpha</b>
near 1 means raters agree; below 0.67 is weak agreement. Objective metrics (PSNR, SSIM, ...) are correlated
with MOS, with 95% bootstrap intervals over the stimuli; a negative or low correlation means the metric does not
predict what people prefer, and metrics whose intervals overlap cannot be told apart.</p>"""


def _f(v, nd=3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return "∞" if math.isinf(v) else f"{v:.{nd}f}"
    if isinstance(v, list | tuple):
        return "; ".join(map(str, v))
    return str(v)


def _ci(pair) -> str:
    return f"[{_f(pair[0])}, {_f(pair[1])}]" if pair else "–"


def table(df: pd.DataFrame, cols=None, row_class=None, nd: int = 3) -> str:
    """HTML table of ``df[cols]``; text columns left-aligned; ``row_class(row)`` adds a CSS class."""
    cols = [c for c in (cols or df.columns) if c in df.columns]
    head = "".join(f'<th class="{"l" if df[c].dtype == object else ""}">{escape(str(c))}</th>' for c in cols)
    body = []
    for _, r in df.iterrows():
        cls = row_class(r) if row_class else ""
        tds = "".join(f'<td class="{"l" if df[c].dtype == object else ""}">{escape(_f(r[c], nd))}</td>' for c in cols)
        body.append(f'<tr class="{cls}">{tds}</tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _pcolor(p) -> str:
    if p is None or not np.isfinite(p):
        return "#f7f7f7"
    return "#a1d99b" if p < 0.01 else "#c7e9c0" if p < 0.05 else "#fee0d2"


def _acr_sections(rep: Report) -> list[str]:
    m = rep.methods.sort_values("mos", ascending=False)
    out = ["<h2>Mean opinion score per method</h2>",
           svg.bar_ci(m["method"], m["mos"], m["ci95_low"], m["ci95_high"], "MOS with 95% CI (raters x images bootstrap)"),
           table(m, ["method", "role", "n", "raters", "images", "mos", "ci95_low", "ci95_high", "mos_screened",
                     "ci95_low_screened", "ci95_high_screened", "mle", "p913_mos", "zmos", "mean_rank", *rep.metrics]),
           "<h2>Rating distribution</h2>",
           svg.stacked_hist(m["method"], m[[f"hist_{k}" for k in range(1, 6)]].to_numpy(), "Share of each score")]
    order = list(m["method"])
    mat = rep.significance.loc[order, order].to_numpy()
    out += ["<h2>Significant differences (Wilcoxon signed-rank, Holm)</h2>",
            svg.heatmap(mat, order, order, "Holm-adjusted p, per-image MOS pairs",
                        lambda v: "" if not np.isfinite(v) else f"{v:.3f}" if v >= 0.001 else "<.001", _pcolor),
            table(rep.wilcoxon)]
    if rep.metrics:
        out.append("<h2>Objective metrics vs MOS</h2><p class='note'>Anchors (hidden NN/HR) are left out of the "
                   "correlations; non-finite values (PSNR of HR) are not plotted.</p>")
        for c in rep.metrics:
            cr, cs = rep.correlation_methods.get(c, {}), rep.correlation.get(c, {})
            cap = (f"methods: Pearson {_f(cr.get('pearson'))}, Spearman {_f(cr.get('spearman'))}, Kendall "
                   f"{_f(cr.get('kendall'))}; stimuli: Pearson {_f(cs.get('pearson'))}, Spearman "
                   f"{_f(cs.get('spearman'))} (95% bootstrap interval {_ci(cs.get('spearman_ci95'))}), Kendall "
                   f"{_f(cs.get('kendall'))} (n={cs.get('n', 0)})")
            out.append(svg.scatter(m[c], m["mos"], m["method"], f"MOS vs {c}", c, "MOS") + f"<p>{escape(cap)}</p>")
            dis = rep.disagreements.get(c) or []
            if dis:
                items = "".join(f"<li>{escape(d['better_by_mos'])} beats {escape(d['worse_by_mos'])} by MOS "
                                f"(p={d['p_holm']:.3g}) but has the worse {escape(c)}</li>" for d in dis)
                out.append(f"<p><b>{escape(c)} disagrees with the listeners on:</b></p><ul>{items}</ul>")
    return out


def _pairs_sections(rep: Report) -> list[str]:
    p = rep.pairs.sort_values("bt", ascending=False)
    lo, hi = float(np.nanmin(p["ci95_low"])) - 0.2, float(np.nanmax(p["ci95_high"])) + 0.2
    W = rep.win_matrix.loc[p["method"], p["method"]]
    N = W.to_numpy() + W.to_numpy().T
    share = np.where(N > 0, W.to_numpy() / np.where(N > 0, N, 1), np.nan)
    color = lambda v: "#f7f7f7" if not np.isfinite(v) else f"rgb({int(255 - 120 * v)},{int(160 + 95 * v)},200)"  # noqa: E731
    out = ["<h2>Pair comparisons</h2>",
           svg.bar_ci(p["method"], p["bt"], p["ci95_low"], p["ci95_high"], "Bradley-Terry log-strength, 95% CI",
                      lo=lo, hi=hi, xlabel="BT score (log-odds, zero mean)"),
           svg.heatmap(share, list(p["method"]), list(p["method"]), "Share of wins of row over column (ties = 1/2)",
                       lambda v: "" if not np.isfinite(v) else f"{v:.0%}", color),
           table(p)]
    if rep.correlation_within_image:
        cw = pd.DataFrame(rep.correlation_within_image).T.reset_index().rename(columns={"index": "metric"})
        out += ["<p>Within-image correlation of win rate and metric (mean over images):</p>", table(cw)]
    return out


def _ranking_section(rep: Report) -> list[str]:
    """Which metric would have replaced this survey best: the metrics ranked by oriented Spearman."""
    r = pd.DataFrame(rep.metric_ranking)
    basis = ("per-stimulus MOS of the methods under test" if r["basis"].iloc[0] == "stimuli"
             else "win rates within each image (mean over images)")
    best, why = correlation.ranking_verdict(rep.metric_ranking)
    verdict = f"<p>{escape(why)}</p>"
    if best is not None:  # named only when its interval is above every other metric's (and above 0)
        verdict = f"<p><b>{escape(best)}</b>{escape(why[len(best):])}</p>"
    return ["<h2>Which metric would have replaced this survey best</h2>",
            f"<p class='note'>Correlation of each metric with the {basis}. Lower-is-better metrics (LPIPS, DISTS, "
            "NIQE, BRISQUE...) have their sign flipped, so for every metric a higher value means closer "
            "agreement with the listeners and 1 would be a perfect stand-in; ranked by Spearman's rank "
            "correlation. <i>methods_spearman</i> correlates the per-method means.</p>",
            verdict, table(r, ["rank", "metric", "better", "spearman", "spearman_ci95_low", "spearman_ci95_high",
                               "kendall", "pearson", "methods_spearman", "n"])]


def _warning_block(rep: Report) -> str:
    """The sample-size warnings (:func:`srkeras.mos.adequacy.warnings`), on top where they are seen."""
    if not rep.warnings:
        return ""
    items = "".join(f"<li>{escape(w)}</li>" for w in rep.warnings)
    return (f"<div class='warn' id='sample-size-warnings'><b>Sample size warning:</b> this study is too small "
            f"for some of the statistics below.<ul>{items}</ul></div>")


def render(rep: Report, title: str = "MOS study report") -> str:
    """The whole report as one HTML string."""
    c = rep.counts
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>",
             f"<p>{c.get('acr_votes', 0)} ACR votes, {c.get('pair_votes', 0)} pair votes, {c.get('raters', 0)} "
             f"raters ({c.get('rejected', 0)} rejected by screening).</p>",
             _warning_block(rep),
             *(f"<p><b>Note:</b> {escape(n)}</p>" for n in rep.notes),
             f"<h2>How to read this</h2>{HOW_TO_READ}"]
    if rep.methods is not None:
        parts += _acr_sections(rep)
    if rep.pairs is not None:
        parts += _pairs_sections(rep)
    if rep.metric_ranking:
        parts += _ranking_section(rep)
    parts.append("<h2>Raters: screening and subject model</h2>")
    cols = ["rater", "n", "n_pairs", "rejected", "reasons", "p913_bias", "mle_bias", "mle_inconsistency",
            "bt500_ratio", "bt500_symmetry", "corr_r1", "corr_r2", "pair_agreement", "pair_expected", "gold_accuracy",
            "retest_agreement", "fast_fraction"]
    parts.append(table(rep.raters, cols, row_class=lambda r: "rej" if r["rejected"] else ""))
    sh = rep.split_half or {}
    parts.append(f"<h2>Agreement</h2><p>Krippendorff's alpha (interval): <b>{_f(rep.alpha)}</b>. Split-half "
                 f"correlation of stimulus MOS: r = {_f(sh.get('r'))}, Spearman-Brown {_f(sh.get('spearman_brown'))}.</p>")
    if rep.stimuli is not None:
        parts.append(f"<details><summary>All stimuli ({len(rep.stimuli)})</summary>{table(rep.stimuli)}</details>")
    parts.append("</body></html>")
    return "".join(parts)
