"""Train a super-resolution model from a paper recipe.

    python -m pipelines.train --recipe NAME --train-dir DIR [--val-dir DIR] --scale 4 --steps N \\
        [--max-minutes M] --out RUN_DIR [--checkpoint-every K] [--set key.path=value ...] [--verbose]

Stops at N steps or M minutes of wall clock, whichever comes first, and finishes the same way in
both cases (checkpoint, validation, RUN_DIR/model.keras). Re-running the same command resumes from
the last checkpoint (optimizer state and step included), even after ``kill -9``. A NaN/Inf loss, or a
NaN/Inf anywhere in the state a checkpoint would hold (weights, optimizer slots, EMA, discriminator),
stops the run before that checkpoint (exit 3); checkpoints holding one are set aside on resume. An
unwritable --out is refused before any work, and a write that fails during the run (disk full) names
its path and keeps the last good checkpoint (exit 2).

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

from srkeras import recipes  # no TensorFlow import: main() silences it first (--verbose keeps its log lines)
from srkeras.training.job import TrainingJob, final_table, run_training

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
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")
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


def flag_overrides(args, sets: dict) -> dict:
    """{recipe key: value} of the flags given; a flag that contradicts a ``--set`` is an error naming both."""
    flags = {key: getattr(args, name) for key, (_, name) in FLAG_KEYS.items() if getattr(args, name) is not None}
    for key, value in flags.items():
        flag = FLAG_KEYS[key][0]
        if key in sets and sets[key] != value:
            raise recipes.RecipeError(f"{flag} {value} conflicts with --set {key}={sets[key]}; give one of them", key=key)
        if key == "data.hr_patch" and "data.lr_patch" in sets:
            raise recipes.RecipeError(f"{flag} conflicts with --set data.lr_patch (both set the crop size); give one of them", key=key)
    flags.pop("run.max_minutes", None)  # a run option: recorded in the run table
    return flags


def recipe_from_args(args) -> recipes.Recipe:
    """The recipe with the command line applied, plus the run options under ``run``; validated, so a
    bad value is refused before any work, naming its flag."""
    cfg = recipes.load(args.recipe, args.profile)
    sets = recipes.parse_overrides(args.overrides)
    flags = flag_overrides(args, sets)
    run = recipes.run_table(
        args.train_dir, args.val_dir, strategy=args.strategy, mixed_precision=args.mixed_precision,
        jit_compile=args.jit_compile, max_minutes=args.max_minutes, init_from=args.init_from,
        collective_timeout=args.collective_timeout,
    )
    try:
        return recipes.configure_run(cfg, flags, sets, run=run)
    except recipes.RecipeError as e:
        raise recipes.RecipeError(f"{_source(e.key, sets, args)}{e}", key=e.key) from None


def _source(key, sets: dict, args) -> str:
    """Which argument set ``key``: '--scale 0: ' or '--set model.scale=0: ' (empty for the recipe's own)."""
    if key in sets:
        return f"--set {key}={sets[key]}: "
    if key in FLAG_KEYS and getattr(args, FLAG_KEYS[key][1]) is not None:
        return f"{FLAG_KEYS[key][0]} {getattr(args, FLAG_KEYS[key][1])}: "
    return ""


def _start_demo(args) -> None:
    args.recipe, args.scale, args.steps = DEMO["recipe"], DEMO["scale"], DEMO["steps"]
    args.max_minutes, args.out, args.overrides = DEMO["max_minutes"], DEMO["out"], list(DEMO["overrides"])
    print(
        f"srkeras demo: training ESPCN x{args.scale} on the scikit-image photos for at most {args.max_minutes} minutes "
        f"(CPU), then scoring it against bicubic on held-out photos.\nRun directory: {args.out} "
        "(delete it to train again; `python -m pipelines.train --help` for real runs)\n",
        flush=True,
    )


def _train(job: TrainingJob) -> dict | int:
    """The run's summary, or the exit code of the error it stopped with (said on standard error)."""
    from srkeras.training.errors import EXIT_NAN, EXIT_WORKER_LOST, NonFiniteError, TrainingError, WorkerLostError

    try:
        return run_training(job)
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


def _report(job: TrainingJob, summary: dict, max_minutes) -> None:
    why = {"steps": "reached the step count", "time": f"reached --max-minutes {max_minutes}", "done": "already complete"}
    print(f"\nstopped at step {summary['step']}/{summary['total_steps']} ({why.get(summary['stop_reason'], summary['stop_reason'])}); "
          f"{summary['patches_per_second'] or 0:.0f} HR patches/s this run")
    chief = summary.get("chief", True)  # multi-worker: only the chief has the files
    print(f"generator: {summary['model']}" if chief else f"{summary['task']} done (the chief writes {job.out})")
    table = final_table(job, summary)
    if table is not None:
        print()
        print(table)


def _preflight(recipe, out: Path, args) -> str | None:
    """Why the run cannot start (:mod:`srkeras.preflight`: every missing item in one message), or None."""
    from srkeras.preflight import Preflight

    pf = Preflight("pipelines.train")
    pf.training(recipe, out, tuple(args.train_dir or ()), args.val_dir)
    return pf.message() if pf.problems else None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    demo = not argv
    args = parse_args(argv)
    from srkeras.inference.quiet import quiet_tensorflow

    quiet_tensorflow(args.verbose)  # keeps TensorFlow's start-up chatter off the progress bar
    if args.verbose:  # and in --workers' processes, whose launcher would default it to 2
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    if args.list_recipes:
        for n in recipes.names():
            print(f"{n:<14} {recipes.load(n)['recipe'].get('paper', '')}")
        return 0
    if demo:
        _start_demo(args)
    if args.recipe is None:
        print("error: --recipe is required (or run with no arguments for the demo); --list-recipes lists them", file=sys.stderr)
        return 2
    try:
        recipe = recipe_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or Path("runs") / f"{recipe.name}-x{recipe.model.scale}"
    problem = _preflight(recipe, out, args)  # everything the run needs, before any work
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers != 1:
        if args.strategy not in ("auto", "multiworker"):
            print(f"error: --workers needs --strategy auto or multiworker (not {args.strategy})", file=sys.stderr)
            return 2
        return launch_workers(argv, args.workers)
    job = TrainingJob(recipe, out, tuple(args.train_dir or ()), args.val_dir, progress=not args.quiet)
    summary = _train(job)
    if isinstance(summary, int):
        return summary
    _report(job, summary, args.max_minutes)
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
