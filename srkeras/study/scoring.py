"""Scoring the study's generators on the test sets under :mod:`srkeras.evaluation`'s protocol.

Per (method, dataset) the per-image scores go to ``STUDY_DIR/scores/<method>/<dataset>.csv`` (done
marker ``score:<method>:<dataset>`` with the generator's SHA-256, so a retrained model is scored
again and a finished one never is). Then ``results.csv`` (one row per method x dataset: ``backbone,
layer,...,dataset,images,psnr,ssim,lpips,niqe,...``), ``results.md`` (readable tables) and
``metrics_<dataset>.csv`` (``method,image,<metric>...``, for ``pipelines.report --metrics-csv``).
A no-reference metric that cannot score an image (NIQE needs two 96 px blocks) is NaN there.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from srkeras import evaluation
from srkeras.files import write_atomically
from srkeras.study.plan import Entry, StudyConfig
from srkeras.study.state import StudyState, sha256_of

PROTOCOL_METRICS = ("psnr", "ssim")


def test_images(folder: Path, scale: int) -> list[tuple[str, evaluation.Pair]]:
    """[(name, Pair)] of a test folder: 8-bit HR (modcrop) and its MATLAB-bicubic 8-bit LR."""
    from srkeras.data.dataset import load_validation

    images, _skipped = load_validation(str(folder), scale)
    return [(name, evaluation.prepare(hr, scale, "bicubic", name)) for name, hr in images]


def score_image(sr, hr8, scale: int, metrics, name: str) -> dict:
    """All ``metrics`` of one SR image; a metric that cannot score it is NaN (not an error)."""
    out = evaluation.score(sr, hr8, scale, [m for m in metrics if m in PROTOCOL_METRICS], name=name)
    for m in metrics:
        if m in PROTOCOL_METRICS:
            continue
        try:
            out.update(evaluation.score(sr, hr8, scale, [m], name=name))
        except ValueError:
            out[m] = math.nan
    return out


def hr_scores(hr8, metrics, name: str) -> dict:
    """The HR image as a method: PSNR inf, SSIM 1, distances 0, no-reference metrics measured."""
    out = {m: (math.inf if m == "psnr" else 1.0 if m == "ssim" else 0.0) for m in metrics}
    for m in ("niqe", "brisque"):
        if m in metrics:
            try:
                out.update(evaluation.reference_scores(hr8, [m], name=name))
            except ValueError:
                out[m] = math.nan
    return out


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda tmp: Path(tmp).write_text(buf.getvalue()))


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _num(v: str):
    try:
        return float(v)
    except ValueError:
        return v


def score_method(cfg: StudyConfig, state: StudyState, method: str, model_path, dataset: str, pairs, log=print) -> Path:
    """Per-image scores of ``method`` (``bicubic``, ``hr`` or a generator file) on ``dataset``."""
    path = Path(cfg.out) / "scores" / method / f"{dataset}.csv"
    key = f"score:{method}:{dataset}"
    model_sha = sha256_of(model_path) if model_path else None
    done, metrics = state.done(key), list(cfg.metric_names)
    if (done and path.is_file() and done.get("model") == model_sha and set(metrics) <= set(done.get("metrics", []))
            and sha256_of(path) == done.get("csv")):
        return path
    log(f"[{key}] scoring {len(pairs)} images ({', '.join(metrics)})")
    model = None
    if model_path:
        from srkeras import inference

        model = inference.load_generator(model_path)
    rows = []
    for name, pair in pairs:
        if method == "hr":
            rows.append({"image": name, **hr_scores(pair.hr, metrics, name)})
            continue
        sr = (evaluation.classical_sr(pair.lr, cfg.scale, method) if model is None
              else evaluation.super_resolve(model, pair.lr, cfg.scale))
        rows.append({"image": name, **score_image(sr, pair.hr, cfg.scale, metrics, name)})
    _write_csv(path, rows, ["image", *metrics])
    state.mark(key, model=model_sha, csv=sha256_of(path), metrics=metrics, images=len(rows))
    return path


def _mean(values) -> float:
    v = np.asarray([float(x) for x in values], dtype=float)
    v = v[~np.isnan(v)]
    return float(np.mean(v)) if v.size else math.nan


#: results.csv: ``backbone,layer,dataset``, the metrics, then these.
RESULT_KEYS = ["backbone", "layer", "dataset"]
RESULT_COLUMNS = ["depth", "role", "after", "stride", "rf", "weights", "method", "images", "steps", "feature_scale"]


def describe(method: str, entry: Entry | None, cfg: StudyConfig) -> dict:
    """The fixed columns of a method's results rows."""
    from srkeras.study.layers import ROLE

    if entry is None:
        steps = cfg.n_pretrain if method == "srresnet_mse" and cfg.start is None else ""
        return dict(backbone=method, layer="", depth="", role="baseline", after="", stride="", rf="",
                    weights="", method=method, steps=steps, feature_scale="")
    t = entry.tap
    run_cfg = Path(cfg.out) / "runs" / entry.id / "config.json"
    terms = json.loads(run_cfg.read_text())["loss"]["terms"] if run_cfg.is_file() else [{}]
    return dict(backbone=entry.backbone, layer=t.layer, depth=entry.depth, role=ROLE[entry.depth], after=t.activation,
                stride=f"1/{t.stride}", rf=t.rf, weights=entry.weights_label, method=entry.method, steps=cfg.steps,
                feature_scale=terms[0].get("options", {}).get("feature_scale", ""))


def aggregate(cfg: StudyConfig, methods: list[tuple[str, Entry | None]], log=print) -> list[dict]:
    """``results.csv``, ``results.md`` and ``metrics_<dataset>.csv`` from the per-image score files."""
    metrics = list(cfg.metric_names)
    rows = []
    for dataset in cfg.datasets():
        per_image = []
        for method, entry in methods:
            scores = read_csv(Path(cfg.out) / "scores" / method / f"{dataset}.csv")
            per_image += [{"method": method if entry is None else entry.method, **s} for s in scores]
            means = {m: _mean(s[m] for s in scores) for m in metrics}
            rows.append({**describe(method, entry, cfg), "dataset": dataset, "images": len(scores), **means})
        _write_csv(Path(cfg.out) / f"metrics_{dataset}.csv", per_image, ["method", "image", *metrics])
    _write_csv(Path(cfg.out) / "results.csv", rows, RESULT_KEYS + metrics + RESULT_COLUMNS)
    text = format_results(rows, metrics, cfg)
    write_atomically(Path(cfg.out) / "results.md", lambda tmp: Path(tmp).write_text(text))
    log(text)
    return rows


def format_results(rows: list[dict], metrics: list[str], cfg: StudyConfig) -> str:
    """Markdown tables, one per dataset (arrows: which way is better)."""
    from srkeras.metrics.registry import HIGHER_IS_BETTER

    arrows = [f"{m.upper()} {'↑' if m in HIGHER_IS_BETTER else '↓'}" for m in metrics]
    title = f"# Perceptual-loss backbone study x{cfg.scale}" + (" (SMOKE: tiny budget, random-init backbones say so)" if cfg.smoke else "")
    out = [title, "", f"SRGAN {cfg.steps} steps from SRResNet-MSE {cfg.n_pretrain} steps; "
           f"PSNR/SSIM on Y, {cfg.scale} px shaved; perceptual metrics on the 8-bit RGB image.", ""]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        out += [f"## {dataset}", "", "| method | backbone | layer | weights | " + " | ".join(arrows) + " |",
                "|---|---|---|---|" + "---|" * len(metrics)]
        for r in (r for r in rows if r["dataset"] == dataset):
            vals = " | ".join(_fmt(m, r[m]) for m in metrics)
            out.append(f"| {r['method']} | {r['backbone']} | {r['layer'] or '-'} | {r['weights'] or '-'} | {vals} |")
        out.append("")
    return "\n".join(out)


def _fmt(metric: str, v) -> str:
    if isinstance(v, str) or v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if math.isinf(v):
        return "inf"
    return f"{v:.2f}" if metric in ("psnr", "niqe", "brisque") else f"{v:.4f}"


__all__ = ["RESULT_COLUMNS", "RESULT_KEYS", "aggregate", "format_results", "hr_scores", "read_csv", "score_image", "score_method", "test_images"]
