"""Train a super-resolution model from a paper recipe.

    python -m pipelines.train --recipe NAME --train-dir DIR [--val-dir DIR] --scale 4 --steps N \\
        [--max-minutes M] --out RUN_DIR [--checkpoint-every K] [--set key.path=value ...]

Stops at N steps or M minutes of wall clock, whichever comes first, and finishes the same way in
both cases (checkpoint, validation, RUN_DIR/model.keras). Re-running the same command resumes from
the last checkpoint (optimizer state and step included), even after ``kill -9``.

Multi-worker: with ``TF_CONFIG`` set (or in a Slurm job step with several tasks) every machine runs
the same command and they train as one (``--batch-size`` is the global batch; only the chief, worker
0, writes --out, which must be one shared folder). ``--workers N`` starts N such workers on this
machine with a generated TF_CONFIG: the way to try it, and the template for a cluster.

With no arguments it runs the embedded demo: ESPCN x3 trained on the scikit-image photos (never on
the held-out ones) on CPU for a few minutes, then a table of its PSNR/SSIM next to bicubic on the
held-out photos. Validation during training and that table score through :mod:`srkeras.evaluation`,
so they read what ``pipelines.evaluate`` reads for RUN_DIR/model.keras on the same images.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the progress bar

from srkeras import recipes  # noqa: E402

DEMO = {
    "recipe": "espcn",
    "scale": 3,
    "steps": 4000,
    "max_minutes": 3.5,
    "out": Path("runs/demo-espcn-x3"),
    "overrides": ["schedule.milestones=[3200]"],  # the recipe's late 10x drop, scaled to the short run
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m pipelines.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--recipe", default=None, help=f"recipe name ({', '.join(recipes.names())}) or a .toml file")
    p.add_argument("--profile", default="default", choices=["default", "paper"], help="'paper' applies the recipe's [paper] values")
    p.add_argument("--train-dir", action="append", type=Path, help="folder of HR training images (repeat for several); default: scikit-image photos")
    p.add_argument("--val-dir", type=Path, help="folder of HR validation images (default: held-out photos when training on the photos)")
    p.add_argument("--scale", type=int, help="upscaling factor (default: the recipe's)")
    p.add_argument("--steps", type=int, help="total training steps (default: the recipe's)")
    p.add_argument("--max-minutes", type=float, help="stop after this many minutes of wall clock, finishing as at the end")
    p.add_argument("--out", type=Path, help="run directory (default runs/<recipe>-x<scale>)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--val-every", type=int, help="steps between validations")
    p.add_argument("--log-every", type=int, help="steps between CSV/TensorBoard rows")
    p.add_argument("--batch-size", type=int, help="global batch size (split over replicas)")
    p.add_argument("--patch-size", type=int, help="HR crop size in pixels")
    p.add_argument("--lr", type=float, help="generator learning rate")
    p.add_argument("--degradation", choices=["bicubic", "blur_bicubic", "nearest"], help="how LR patches are made")
    p.add_argument("--seed", type=int, help="seed of initialisation and data stream")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=None, help="EMA of generator weights (decay 0.999)")
    p.add_argument("--strategy", default="auto", choices=["auto", "default", "mirrored", "multiworker"],
                   help="auto: multiworker when TF_CONFIG (or a multi-task Slurm step) is set, mirrored with several GPUs")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="start N local worker processes of one multi-worker run (generated TF_CONFIG on free localhost ports)")
    p.add_argument("--collective-timeout", type=float, metavar="SECONDS",
                   help="multi-worker: stop with an error when a collective waits longer than this for the other workers (default 600)")
    p.add_argument("--mixed-precision", action="store_true", help="mixed_float16 on GPU with loss scaling")
    p.add_argument("--jit-compile", action="store_true", help="XLA-compile the train step")
    p.add_argument("--init-from", help="RUN_DIR or .keras generator to start from (two-stage recipes), or 'none'")
    p.add_argument("--val-max-images", type=int, help="validate on at most this many images")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any recipe value, e.g. --set optimizer.beta_1=0.5 (repeatable)")
    p.add_argument("--list-recipes", action="store_true", help="list the recipes and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


# Recipe key -> the flag that sets it (and the name of the flag's value in ``args``).
FLAG_KEYS = {
    "model.scale": ("--scale", "scale"),
    "train.steps": ("--steps", "steps"),
    "train.checkpoint_every": ("--checkpoint-every", "checkpoint_every"),
    "train.val_every": ("--val-every", "val_every"),
    "train.log_every": ("--log-every", "log_every"),
    "train.seed": ("--seed", "seed"),
    "train.ema": ("--ema", "ema"),
    "train.val_max_images": ("--val-max-images", "val_max_images"),
    "data.batch": ("--batch-size", "batch_size"),
    "data.hr_patch": ("--patch-size", "patch_size"),
    "data.degradation": ("--degradation", "degradation"),
    "optimizer.lr": ("--lr", "lr"),
    "run.max_minutes": ("--max-minutes", "max_minutes"),
}


def resolve(args) -> dict:
    """The recipe with the command line applied, plus the run options under ``run``; validated
    (:class:`srkeras.recipes.Recipe`), so a bad value is refused before any work, naming its flag."""
    cfg = recipes.load(args.recipe, args.profile)
    sets = recipes.parse_overrides(args.overrides)
    flags = {key: getattr(args, name) for key, (_, name) in FLAG_KEYS.items() if getattr(args, name) is not None}
    for key, value in flags.items():
        flag = FLAG_KEYS[key][0]
        if key in sets and sets[key] != value:
            raise recipes.RecipeError(f"{flag} {value} conflicts with --set {key}={sets[key]}; give one of them", key=key)
        if key == "data.hr_patch" and "data.lr_patch" in sets:
            raise recipes.RecipeError(f"{flag} conflicts with --set data.lr_patch (both set the crop size); give one of them", key=key)
    flags.pop("run.max_minutes", None)
    if "data.hr_patch" in flags or "data.hr_patch" in sets:
        cfg["data"].pop("lr_patch", None)
    elif "data.lr_patch" in sets:
        cfg["data"].pop("hr_patch", None)
    try:
        cfg = recipes.apply_overrides(recipes.apply_overrides(cfg, flags), sets)
    except recipes.RecipeError as e:
        raise recipes.RecipeError(f"{_source(e.key, sets, args)}{e}", key=e.key) from None
    cfg["run"] = {
        "strategy": args.strategy,
        "mixed_precision": bool(args.mixed_precision),
        "jit_compile": bool(args.jit_compile),
        "max_minutes": args.max_minutes,
        "init_from": args.init_from,
        **({"collective_timeout": args.collective_timeout} if args.collective_timeout is not None else {}),
        "train_dirs": [str(d) for d in args.train_dir] if args.train_dir else "skimage photos (not held out)",
        "val_dir": str(args.val_dir) if args.val_dir else None,
    }
    try:
        typed = recipes.Recipe.from_dict(cfg)
    except recipes.RecipeError as e:
        raise recipes.RecipeError(f"{_source(e.key, sets, args)}{e}", key=e.key) from None
    data = cfg["data"]
    if "lr_patch" in data:  # papers that state LR sub-image sizes (ESPCN): HR = LR * scale
        data.pop("lr_patch")
        data["hr_patch"] = typed.data.hr_patch
    return cfg


def _source(key, sets: dict, args) -> str:
    """Which argument set ``key``: '--scale 0: ' or '--set model.scale=0: ' (empty for the recipe's own)."""
    if key in sets:
        return f"--set {key}={sets[key]}: "
    if key in FLAG_KEYS and getattr(args, FLAG_KEYS[key][1]) is not None:
        return f"{FLAG_KEYS[key][0]} {getattr(args, FLAG_KEYS[key][1])}: "
    return ""


def photo_sources():
    from srkeras.data.samples import HELD_OUT, SAMPLE_NAMES, sample_image

    train = {n: sample_image(n) for n in SAMPLE_NAMES if n not in HELD_OUT}
    val = {n: sample_image(n) for n in HELD_OUT}
    return train, val


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


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    demo = not argv
    args = parse_args(argv)
    if args.list_recipes:
        for n in recipes.names():
            print(f"{n:<14} {recipes.load(n)['recipe'].get('paper', '')}")
        return 0
    if demo:
        args.recipe, args.scale, args.steps = DEMO["recipe"], DEMO["scale"], DEMO["steps"]
        args.max_minutes, args.out, args.overrides = DEMO["max_minutes"], DEMO["out"], list(DEMO["overrides"])
        print(
            f"srkeras demo: training ESPCN x{args.scale} on the scikit-image photos for at most {args.max_minutes} minutes "
            f"(CPU), then scoring it against bicubic on held-out photos.\nRun directory: {args.out} "
            "(delete it to train again; `python -m pipelines.train --help` for real runs)\n",
            flush=True,
        )
    if args.recipe is None:
        print("error: --recipe is required (or run with no arguments for the demo); --list-recipes lists them", file=sys.stderr)
        return 2
    try:
        cfg = resolve(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers != 1:
        if args.strategy not in ("auto", "multiworker"):
            print(f"error: --workers needs --strategy auto or multiworker (not {args.strategy})", file=sys.stderr)
            return 2
        return launch_workers(argv, args.workers)
    scale = int(cfg["model"]["scale"])
    out = args.out or Path("runs") / f"{cfg['recipe']['name']}-x{scale}"
    if args.train_dir:
        train_source, val_source = [str(d) for d in args.train_dir], args.val_dir
    else:
        train_source, val_source = photo_sources()
        if args.val_dir:
            val_source = args.val_dir
    from srkeras.training.runner import (
        EXIT_NAN,
        EXIT_WORKER_LOST,
        NonFiniteError,
        TrainingError,
        WorkerLostError,
        train,
    )

    try:
        summary = train(cfg, out, train_source, val_source, progress=not args.quiet)
    except NonFiniteError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_NAN
    except WorkerLostError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(EXIT_WORKER_LOST)  # not through TensorFlow's exit path: it may wait for the lost worker
    except (TrainingError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    why = {"steps": "reached the step count", "time": f"reached --max-minutes {args.max_minutes}", "done": "already complete"}
    print(f"\nstopped at step {summary['step']}/{summary['total_steps']} ({why.get(summary['stop_reason'], summary['stop_reason'])}); "
          f"{summary['patches_per_second'] or 0:.0f} HR patches/s this run")
    chief = summary.get("chief", True)  # multi-worker: only the chief has the files
    print(f"generator: {summary['model']}" if chief else f"{summary['task']} done (the chief writes {out})")
    if val_source is not None and summary.get("val") and chief:
        src = "held-out photos" if isinstance(val_source, dict) else str(val_source)
        print()
        print(comparison_table(Path(summary["model"]), val_source, scale, cfg["data"].get("degradation", "bicubic"),
                               f"x{scale} on {src}: PSNR (dB) / SSIM, BT.601 Y, {scale} px border shaved"))
    return 0


def launch_workers(argv, n: int) -> int:
    """``--workers N``: N local worker processes with a generated TF_CONFIG (:mod:`srkeras.training.launcher`)."""
    from srkeras.training import launcher

    if n < 1:
        print(f"error: --workers {n}: give a number of workers >= 1", file=sys.stderr)
        return 2
    if os.environ.get("TF_CONFIG"):
        print("error: --workers starts its own cluster; unset TF_CONFIG (or run without --workers on each machine)", file=sys.stderr)
        return 2
    return launcher.launch(launcher.without_workers_flag(argv), n, log=lambda msg: print(msg, flush=True))


if __name__ == "__main__":
    sys.exit(main())
