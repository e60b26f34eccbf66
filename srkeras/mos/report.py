"""One call from rating frames to every table of the MOS report (issue 12); no I/O here.

:func:`analyze` takes the frames of :mod:`srkeras.mos.schema` and returns a :class:`Report`;
:func:`summary` turns it into the ``summary.json`` structure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from srkeras.mos import adequacy, agreement, correlation, scores, screening, significance, subject_models
from srkeras.mos import pairs as pairs_mod
from srkeras.mos.schema import metric_columns
from srkeras.mos.vocabulary import MethodRole


@dataclass
class Report:
    stimuli: pd.DataFrame | None = None
    methods: pd.DataFrame | None = None
    raters: pd.DataFrame | None = None
    pairs: pd.DataFrame | None = None
    win_matrix: pd.DataFrame | None = None
    wilcoxon: pd.DataFrame | None = None
    significance: pd.DataFrame | None = None
    methods_by_dataset: pd.DataFrame | None = None
    images: pd.DataFrame | None = None
    correlation: dict = field(default_factory=dict)
    correlation_methods: dict = field(default_factory=dict)
    correlation_within_image: dict = field(default_factory=dict)
    alpha: float = float("nan")
    split_half: dict = field(default_factory=dict)
    disagreements: dict = field(default_factory=dict)
    metric_ranking: list = field(default_factory=list)
    metrics: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # plain sentences on what is undefined and why (summary, HTML)
    warnings: list = field(default_factory=list)  # counts below what the statistics need (srkeras.mos.adequacy)
    ranking_verdict: str = ""  # which metric tracks the listeners, only when its interval says so


#: Said when screening rejects every rater: the screened MOS has no votes to stand on.
ALL_REJECTED = ("Every rater was rejected by screening: the screened MOS (mos_screened, ci95_screened) is "
                "undefined and left empty; the MOS over all raters is shown unscreened.")
#: Said when Krippendorff's alpha cannot be computed (see srkeras.mos.agreement.krippendorff_alpha).
ALPHA_UNDEFINED = ("Krippendorff's alpha is undefined: it needs two raters on one stimulus and votes that are "
                   "not all equal.")


def _stimuli(acr, keep, mle_fit, metrics):
    st = scores.stimulus_scores(acr, interval="logit")
    scr = scores.stimulus_scores(acr[acr["rater"].isin(keep)], interval="logit")[
        ["method", "image", "mos", "ci95_low", "ci95_high"]]
    st = st.merge(scr.rename(columns={"mos": "mos_screened", "ci95_low": "ci95_low_screened",
                                      "ci95_high": "ci95_high_screened"}), on=["method", "image"], how="left")
    st = st.merge(scores.zscore_mos(acr), on=["method", "image"], how="left")
    _, corrected = subject_models.p913_bias(acr)
    st = st.merge(scores.stimulus_scores(corrected)[["method", "image", "mos"]].rename(columns={"mos": "p913_mos"}),
                  on=["method", "image"], how="left")
    st = st.merge(mle_fit["stimuli"].drop(columns="mle_std"), on=["method", "image"], how="left")
    if metrics is not None:
        st = st.merge(metrics[["method", "image", *metric_columns(metrics)]], on=["method", "image"], how="left")
    return st


def _methods(acr, keep, st, metrics, n_boot, seed, progress):
    m = scores.method_scores(acr, n_boot=n_boot, seed=seed, progress=progress)
    if set(keep) != set(acr["rater"]):
        s = scores.cluster_bootstrap(acr[acr["rater"].isin(keep)], n_boot=n_boot, seed=seed, progress=progress)
    else:
        s = m[["method", "mos", "ci95_low", "ci95_high"]]
    s = s[["method", "mos", "ci95_low", "ci95_high"]].rename(
        columns={"mos": "mos_screened", "ci95_low": "ci95_low_screened", "ci95_high": "ci95_high_screened"})
    agg = st.groupby("method").agg(mle=("mle", "mean"), p913_mos=("p913_mos", "mean")).reset_index()
    m = m.merge(s, on="method", how="left").merge(agg, on="method", how="left")
    role = m["method"].map(acr.groupby("method")["role"].first()) if "role" in acr else MethodRole.TEST.value
    m.insert(1, "role", role)
    if metrics is not None:
        m = m.merge(correlation.method_metrics(metrics), on="method", how="left")
    return m


def _raters(acr, pairs, mle_fit, completed):
    r = screening.report_table(screening.screen(acr, pairs, completed=completed, mle_fit=mle_fit))
    if acr is not None:
        bias, _ = subject_models.p913_bias(acr)
        r = r.merge(bias.rename("p913_bias").reset_index(), on="rater", how="left")
        fit = mle_fit["raters"]  # the fit's values win (screening's copy is empty when its rule could not judge)
        r = r.drop(columns=[c for c in fit if c in r and c != "rater"]).merge(fit, on="rater", how="left")
    cols = ["rater", "n", "rejected", "reasons", "p913_bias", "mle_bias", "mle_inconsistency"]
    return r[[c for c in cols if c in r] + [c for c in r if c not in cols]]


def _acr_part(rep, acr, pairs, metrics, n_boot, seed, progress, completed):
    mle_fit, mle_notes = adequacy.guard_mle(subject_models.mle(acr))
    rep.raters = _raters(acr, pairs, mle_fit, completed)
    keep = set(rep.raters.loc[~rep.raters["rejected"], "rater"])
    rep.stimuli = _stimuli(acr, keep, mle_fit, metrics)
    rep.methods = _methods(acr, keep, rep.stimuli, metrics, n_boot, seed, progress)
    rep.images = mle_fit["images"]
    rep.wilcoxon = significance.wilcoxon_holm(acr)
    rep.significance = significance.significance_matrix(rep.wilcoxon, rep.methods["method"])
    rep.alpha = agreement.krippendorff_alpha(acr)
    rep.notes += [ALL_REJECTED] * (not keep) + [ALPHA_UNDEFINED] * bool(np.isnan(rep.alpha)) + mle_notes
    rep.split_half = agreement.split_half(acr, seed=seed)
    if "dataset" in acr.columns and acr["dataset"].nunique() > 1:
        parts = [scores.cluster_bootstrap(g, n_boot=n_boot, seed=seed).assign(dataset=d)
                 for d, g in acr.groupby("dataset")]
        rep.methods_by_dataset = pd.concat(parts, ignore_index=True)
    if metrics is not None:  # anchors (NN, HR) calibrate the scale; they are not methods under test
        test = set(rep.methods.loc[rep.methods["role"] == MethodRole.TEST, "method"])
        st, me = rep.stimuli[rep.stimuli["method"].isin(test)], rep.methods[rep.methods["method"].isin(test)]
        rep.correlation = correlation.metric_correlations(st, metrics, ["method", "image"], n_boot=n_boot, seed=seed)
        rep.correlation_methods = correlation.metric_correlations(me, metrics, ["method"], n_boot=n_boot, seed=seed)
        rep.disagreements = {c: correlation.disagreements(rep.methods, rep.wilcoxon, c) for c in rep.metrics}


def analyze(acr=None, pairs=None, metrics=None, n_boot: int = 2000, seed: int = 0, progress: bool = False,
            completed: Mapping[str, bool] | None = None) -> Report:
    """Every statistic of the report from validated frames (at least one of ``acr``/``pairs``).

    ``completed`` (``{rater: finished their session}``, known for database studies) adds the
    ``incomplete`` rule of :func:`srkeras.mos.screening.screen`; raters without votes stay out.
    """
    if (acr is None or acr.empty) and (pairs is None or pairs.empty):
        raise ValueError("no ratings: give ACR votes, pair votes or both")
    acr = None if acr is None or acr.empty else acr
    pairs = None if pairs is None or pairs.empty else pairs
    if completed is not None:
        voters = set(acr["rater"] if acr is not None else []) | set(pairs["rater"] if pairs is not None else [])
        completed = {r: done for r, done in completed.items() if r in voters}
    rep = Report(metrics=metric_columns(metrics))
    rep.counts = {"acr_votes": 0 if acr is None else int((~acr["repeat"]).sum()),
                  "pair_votes": 0 if pairs is None else int((~pairs["repeat"]).sum())}
    if acr is not None:
        _acr_part(rep, acr, pairs, metrics, n_boot, seed, progress, completed)
    else:
        rep.raters = screening.report_table(screening.screen(None, pairs, completed=completed))
    if pairs is not None:
        rep.win_matrix = pairs_mod.win_matrix(pairs)
        rep.pairs = pairs_mod.bt_scores(pairs)
        rep.pairs["thurstone"] = pairs_mod.thurstone_case_v(rep.win_matrix.to_numpy())
        if metrics is not None:
            rep.correlation_within_image = correlation.within_image(pairs, metrics)
    rep.counts.update(raters=len(rep.raters), rejected=int(rep.raters["rejected"].sum()))
    rep.metric_ranking = correlation.metric_ranking(rep.correlation, rep.correlation_methods,
                                                    rep.correlation_within_image)
    if rep.metric_ranking:
        rep.ranking_verdict = correlation.ranking_verdict(rep.metric_ranking)[1]
    rep.warnings = adequacy.warnings(acr, pairs, rep.raters, rep.wilcoxon,
                                     rep.metric_ranking[0]["n"] if rep.metric_ranking else None)
    return rep


def _num(x):
    if x is None or isinstance(x, str | bool):
        return x
    if isinstance(x, int | np.integer):
        return int(x)
    try:
        x = float(x)
    except (TypeError, ValueError):
        return x
    return None if math.isnan(x) else (("inf" if x > 0 else "-inf") if math.isinf(x) else x)


def clean(obj):
    """JSON-safe copy: NaN -> null, inf -> "inf", numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [clean(v) for v in obj]
    if isinstance(obj, np.bool_):
        return bool(obj)
    return _num(obj)


def summary(rep: Report) -> dict:
    """The ``summary.json`` structure (contract of issue 12, plus extra keys)."""
    methods = {}
    if rep.methods is not None:
        for _, r in rep.methods.iterrows():
            d = {"mos": r["mos"], "ci95": [r["ci95_low"], r["ci95_high"]], "n": int(r["n"]), "mle": r["mle"],
                 "raters": int(r["raters"]), "images": int(r["images"]),
                 "mos_screened": r["mos_screened"], "ci95_screened": [r["ci95_low_screened"], r["ci95_high_screened"]],
                 "zmos": r["zmos"], "mean_rank": r["mean_rank"], "role": r["role"]}
            d.update({c: r.get(c, float("nan")) for c in ("psnr", "ssim", *rep.metrics)})
            methods[r["method"]] = d
    pairs = {}
    if rep.pairs is not None:
        for _, r in rep.pairs.iterrows():
            pairs[r["method"]] = {"bt": r["bt"], "ci95": [r["ci95_low"], r["ci95_high"]], "win_rate": r["win_rate"],
                                  "comparisons": r["comparisons"], "thurstone": r["thurstone"]}
            methods.setdefault(r["method"], {"mos": None, "ci95": [None, None], "n": 0, "mle": None,
                                             "psnr": None, "ssim": None})
    raters = {r["rater"]: {k: (list(r[k]) if k == "reasons" else r.get(k)) for k in
                           ("rejected", "reasons", "p913_bias", "mle_bias", "mle_inconsistency")}
              for _, r in rep.raters.iterrows()}
    wil = {} if rep.wilcoxon is None else {f"{r['a']}|{r['b']}": r["p_holm"] for _, r in rep.wilcoxon.iterrows()}
    return clean({
        "methods": methods, "raters": raters, "wilcoxon_holm": wil, "correlation": rep.correlation,
        "correlation_methods": rep.correlation_methods, "correlation_within_image": rep.correlation_within_image,
        "metric_disagreements": rep.disagreements, "metric_ranking": rep.metric_ranking,
        "pairs": pairs, "alpha": rep.alpha, "split_half": rep.split_half, "counts": rep.counts,
        "warnings": rep.warnings, **({"metric_ranking_verdict": rep.ranking_verdict} if rep.ranking_verdict else {}),
        **({"notes": rep.notes} if rep.notes else {}),
    })
