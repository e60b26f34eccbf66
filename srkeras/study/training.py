"""The study's training runs through :mod:`srkeras.training.runner`: the SRResNet-MSE start, one SRGAN
per backbone from it (same recipe, budget, seed and data order; only the content loss's backbone and
layer differ), a short timed run of each for the cost plan (:func:`seconds_per_step`), and done
markers so that finished runs are never trained again (an unfinished one resumes from its checkpoints).
Each run's :class:`~srkeras.recipes.Recipe` is built by :func:`srkeras.recipes.configure_run`.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

from srkeras import recipes
from srkeras.study.plan import SMOKE, Entry, StudyConfig
from srkeras.study.state import StudyState, sha256_of

START = "srresnet_mse"  # the common start (and its method name)


def run_dir(cfg: StudyConfig, name: str) -> Path:
    return Path(cfg.out) / "runs" / name


def _common(cfg: StudyConfig, steps: int) -> dict:
    ce = cfg.checkpoint_every or max(1, min(1000, steps // 4))
    sets = {"model.scale": cfg.scale, "train.steps": steps, "train.seed": cfg.seed, "train.checkpoint_every": ce,
            "train.val_every": max(1, min(1000, steps // 2)), "train.log_every": max(1, min(100, steps // 10 or 1))}
    if cfg.patch:
        sets["data.hr_patch"] = cfg.patch
    if cfg.batch_size:
        sets["data.batch"] = cfg.batch_size
    if cfg.smoke:
        sets["model.options"] = dict(SMOKE["generator"])
    return sets


def _finish(cfg: StudyConfig, base: dict, sets: dict, init_from) -> recipes.Recipe:
    """The run's Recipe: ``sets``, then the study's ``--set`` overrides; validated now, so a bad
    ``--set`` fails before any training."""
    run = recipes.run_table(cfg.train_dirs, cfg.val_dir, init_from=None if init_from is None else str(init_from))
    return recipes.configure_run(base, sets, cfg.overrides, run=run)


def start_recipe(cfg: StudyConfig, steps: int | None = None) -> recipes.Recipe:
    """The ``srresnet_mse`` recipe at the study's budget."""
    base = recipes.load(START)
    return _finish(cfg, base, _common(cfg, cfg.n_pretrain if steps is None else steps), None)


def feature_scale(cfg: StudyConfig, entry: Entry, images: int = 8) -> float:
    """The content loss's feature rescale for ``entry``: SRGAN's 1/12.75 (``feature_norm="srgan"``), or
    (``"rms"``, the default) 1 / RMS of the tapped features on centre crops of the first ``images``
    training images, so the loss is a relative feature error of the same order for every network
    (raw feature magnitudes differ by orders: caffe VGG sees 0..255 inputs, torch VGG ~[-2, 2])."""
    import numpy as np

    from srkeras.data.io import list_images, read_image
    from srkeras.losses.features import FeatureExtractor
    from srkeras.losses.perceptual import SRGAN_RESCALE

    if cfg.feature_norm == "srgan":
        return SRGAN_RESCALE
    side = cfg.patch or 96
    crops = []
    for f in [f for d in cfg.train_dirs for f in list_images(d)][: images * 2]:
        img = np.asarray(read_image(f).pixels, dtype=np.float32)
        if img.ndim == 3 and img.shape[-1] == 3 and min(img.shape[:2]) >= side:
            y, x = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
            crops.append(img[y:y + side, x:x + side])
    if not crops:
        return SRGAN_RESCALE
    fx = FeatureExtractor(entry.backbone, entry.tap.layer, entry.weights)
    feats = np.asarray(fx(np.stack(crops[:images]))[0], dtype=np.float64)
    rms = float(np.sqrt(np.mean(feats**2)))
    return 1.0 / rms if rms > 0 else SRGAN_RESCALE


def gan_recipe(cfg: StudyConfig, entry: Entry, init_from, steps: int | None = None, scale: float | None = None) -> recipes.Recipe:
    """``srgan_vgg54`` (content loss + 1e-3 adversarial, 10x lower rate for the second half) with the
    content loss on ``entry``'s backbone and depth-table layer, features multiplied by ``scale``
    (:func:`feature_scale`; None: SRGAN's 1/12.75)."""
    n = cfg.steps if steps is None else steps
    base = recipes.load("srgan_vgg54")
    base["recipe"]["name"] = f"srgan_{entry.id}"
    sets = _common(cfg, n)
    sets["schedule.milestones"] = [max(1, n // 2)]  # the recipe's 1e5 of 2e5, scaled to the budget
    options = {"backbone": entry.backbone, "layers": entry.tap.layer}
    if scale is not None:
        options["feature_scale"] = float(scale)
    sets["loss.terms"] = [{"name": "srgan_content", "weight": 1.0, "options": options}]
    sets["loss.backbone_weights"] = entry.weights
    if cfg.smoke:
        sets["gan.d_options.num_features"] = SMOKE["d_features"]
    return _finish(cfg, base, sets, init_from)


def _sources(cfg: StudyConfig):
    return [str(d) for d in cfg.train_dirs], (str(cfg.val_dir) if cfg.val_dir else None)


def train_once(cfg: StudyConfig, state: StudyState, key: str, recipe: recipes.Recipe, rdir: Path, log=print) -> Path:
    """Train ``recipe`` into ``rdir`` unless ``key`` is marked done with this very ``model.keras``;
    returns the model path. Interrupted, the next call resumes from the run's checkpoints."""
    from srkeras.training.runner import train

    model = rdir / "model.keras"
    done = state.done(key)
    if done and model.is_file() and sha256_of(model) == done.get("sha256"):
        log(f"[{key}] done earlier ({done.get('step')} steps): {model}")
        return model
    train_source, val_source = _sources(cfg)
    log(f"[{key}] training into {rdir}")
    summary = train(recipe, rdir, train_source, val_source, progress=cfg.progress, log=lambda m: log(f"[{key}] {m}"))
    state.mark(key, sha256=sha256_of(model), step=summary["step"], seconds=summary.get("train_seconds_this_run"),
               best_val_psnr=summary.get("best_val_psnr"))
    return model


def seconds_per_step(cfg: StudyConfig, recipe: recipes.Recipe, where: Path, steps: int) -> float:
    """Seconds per training step of ``recipe`` on this machine: a throw-away run in ``where``, timed
    over ``steps`` steps after one untimed step (which traces the step function)."""
    from srkeras.training.runner import Run

    shutil.rmtree(where, ignore_errors=True)
    # The timing does not depend on the weights: no --init-from.
    recipe = recipes.configure_run(recipe, {"train.steps": steps + 1, "run.init_from": "none"})
    train_source, val_source = _sources(cfg)
    run = Run(recipe, where, train_source, None, progress=False, log=lambda m: None)
    try:
        run.setup()
        data = run.dataset()
        run.trainer.fit(data, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
        t0 = time.perf_counter()
        run.trainer.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
        return (time.perf_counter() - t0) / steps
    finally:
        run.close()
        shutil.rmtree(where, ignore_errors=True)


def cost_plan(cfg: StudyConfig, state: StudyState, entries: list[Entry], log=print) -> dict:
    """Measured seconds per step of the start and of each backbone's SRGAN (cached in the state) and
    the estimated remaining time of every run; printed as a table before any training."""
    plan = {}
    runs = [] if cfg.start is not None else [(START, start_recipe(cfg), cfg.n_pretrain)]
    runs += [(e.id, gan_recipe(cfg, e, None), cfg.steps) for e in entries if e.skipped is None]
    for name, recipe, steps in runs:
        key = f"train:{name}"
        timing = state.info(f"probe:{name}")
        if timing is None and not state.done(key) and steps > 0:
            log(f"measuring {name}: {cfg.n_probe} timed steps ...")
            timing = seconds_per_step(cfg, recipe, Path(cfg.out) / "probe", cfg.n_probe)
            state.note(f"probe:{name}", timing)
        left = 0 if state.done(key) else steps
        plan[name] = {"s_per_step": timing, "steps": steps, "left_steps": left,
                      "estimate_s": (timing or 0.0) * left}
    total = sum(p["estimate_s"] for p in plan.values())
    log(format_plan(plan, total))
    return {"runs": plan, "total_s": total}


def _hms(s: float) -> str:
    if s is None or not math.isfinite(s):
        return "?"
    if s < 60:
        return f"{s:.1f}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m{int(s % 60):02d}s"


def format_plan(plan: dict, total: float) -> str:
    lines = ["cost plan (measured on this machine; training only, scoring not included):",
             f"  {'run':<28} {'s/step':>8} {'steps left':>10} {'estimate':>10}"]
    for name, p in plan.items():
        sps = "done" if p["s_per_step"] is None else f"{p['s_per_step']:.3f}"
        lines.append(f"  {name:<28} {sps:>8} {p['left_steps']:>10} {_hms(p['estimate_s']):>10}")
    lines.append(f"  {'total':<28} {'':>8} {'':>10} {_hms(total):>10}")
    return "\n".join(lines)


__all__ = ["START", "cost_plan", "feature_scale", "format_plan", "gan_recipe", "run_dir", "seconds_per_step", "start_recipe", "train_once"]
