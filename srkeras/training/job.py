"""The training run of ``pipelines.train``: a :class:`~srkeras.recipes.Recipe` trained on folders of HR
images (or on the photos inside scikit-image), then its PSNR/SSIM next to bicubic on the validation images.

Without training folders the run trains on the scikit-image photos except the held-out ones
(:data:`srkeras.data.samples.HELD_OUT`), which it validates on unless a validation folder is given.
The final table (:func:`final_table`) scores through :mod:`srkeras.evaluation`, the model loaded as
``pipelines.evaluate`` loads it, so it reads what an evaluation of ``RUN_DIR/model.keras`` reads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from srkeras.recipes import Recipe


@dataclasses.dataclass(frozen=True)
class TrainingJob:
    """One run: the recipe (:func:`srkeras.recipes.configure_run`), its folder and its images."""

    recipe: Recipe
    out: Path  # RUN_DIR
    train_dirs: tuple[Path, ...] = ()  # empty: the scikit-image photos, the held-out ones excluded
    val_dir: Path | None = None  # None with the photos: the held-out photos
    progress: bool = True


def photo_sources() -> tuple[dict, dict]:
    """``({name: HR image}, {name: HR image})``: the scikit-image photos to train on and the held-out ones."""
    from srkeras.data.samples import HELD_OUT, SAMPLE_NAMES, sample_image

    train = {n: sample_image(n) for n in SAMPLE_NAMES if n not in HELD_OUT}
    val = {n: sample_image(n) for n in HELD_OUT}
    return train, val


def validation_source(job: TrainingJob):
    """The validation folder, the held-out photos ({name: image}) when training on the photos, or None."""
    if job.val_dir or job.train_dirs:
        return job.val_dir
    return photo_sources()[1]


def run_training(job: TrainingJob) -> dict:
    """Train (resuming when ``job.out`` holds the run's checkpoints); the run's summary. Raises the
    errors of :func:`srkeras.training.runner.train` (``TrainingError`` and its kinds)."""
    from srkeras.training.runner import train

    if job.train_dirs:
        train_source = [str(d) for d in job.train_dirs]
    else:
        train_source = photo_sources()[0]
    return train(job.recipe, job.out, train_source, validation_source(job), progress=job.progress)


def comparison_table(model_path: Path, val_source, scale: int, degradation: str, title: str) -> str:
    """PSNR/SSIM of bicubic and the trained model per validation image, under the evaluation protocol
    (:mod:`srkeras.evaluation`, the model loaded as ``pipelines.evaluate`` loads it)."""
    import numpy as np

    from srkeras import evaluation, inference
    from srkeras.data.dataset import load_validation

    model = inference.load_generator(model_path)
    images, _ = load_validation(val_source, scale)
    rows = []
    for name, hr in images:
        pair = evaluation.prepare(hr, scale, degradation, name)
        bic = evaluation.score(evaluation.classical_sr(pair.lr, scale), pair.hr, scale)
        sr = evaluation.score(evaluation.super_resolve(model, pair.lr, scale), pair.hr, scale)
        rows.append((name, bic["psnr"], bic["ssim"], sr["psnr"], sr["ssim"]))
    w = max([len("image"), len("mean")] + [len(r[0]) for r in rows])
    lines = [title, f"{'image':<{w}}  {'bicubic PSNR/SSIM':>20}  {'model PSNR/SSIM':>20}  {'gain':>7}"]
    show = rows if len(rows) <= 12 else []
    for name, bp, bs, mp, ms in show:
        lines.append(f"{name:<{w}}  {bp:>11.2f} / {bs:.4f}  {mp:>11.2f} / {ms:.4f}  {mp - bp:>+6.2f}")
    m = np.mean([r[1:] for r in rows], axis=0)
    lines.append("-" * len(lines[1]))
    lines.append(f"{'mean':<{w}}  {m[0]:>11.2f} / {m[1]:.4f}  {m[2]:>11.2f} / {m[3]:.4f}  {m[2] - m[0]:>+6.2f}")
    return "\n".join(lines)


def final_table(job: TrainingJob, summary: dict) -> str | None:
    """The :func:`comparison_table` of a finished run on its validation images; None when there is
    nothing to compare (no validation images, or a multi-worker run's non-chief worker: no files)."""
    val_source = validation_source(job)
    if val_source is None or not summary.get("val") or not summary.get("chief", True):
        return None
    scale = job.recipe.model.scale
    src = "held-out photos" if isinstance(val_source, dict) else str(val_source)
    title = f"x{scale} on {src}: PSNR (dB) / SSIM, BT.601 Y, {scale} px border shaved"
    return comparison_table(Path(summary["model"]), val_source, scale, job.recipe.data.degradation, title)


__all__ = ["TrainingJob", "comparison_table", "final_table", "photo_sources", "run_training", "validation_source"]
