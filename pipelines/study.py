"""Studies that chain training, scoring and rating. One so far: which backbone for SRGAN's content loss.

    python -m pipelines.study backbones --train-dir DIR --val-dir DIR --test-dir DIR [--test-dir ...] \\
        --backbone vgg19 --backbone resnet152v2[:shallow] ... [--weights-dir DIR] --steps N \\
        [--pretrain-steps M] --out STUDY_DIR [--db URL] [--smoke] [--verbose]
    python -m pipelines.study simulate --db URL --study NAME --prefer METHOD [--raters 12]
    python -m pipelines.study layers            # the depth table (Markdown)
    python -m pipelines.study cost --backbone vgg19 --backbone resnet152v2 [--tflops 30] [--verbose]

``backbones`` trains one SRResNet-MSE start and, from it, one SRGAN per backbone with the content
loss at the depth-table layer (``:deep`` = VGG54's role, the default, ``:shallow`` = VGG22's), scores
bicubic, HR, the start and every SRGAN on each test set (``STUDY_DIR/results.csv`` and
``results.md``), and with ``--db`` registers one MOS study per test set (``<study-name>-<dataset>``:
ACR and pairs between all methods, the hidden anchors nearest/HR included) for raters; then
``python -m pipelines.report --db URL --study NAME --out DIR`` ranks the backbones by MOS.
Re-running the same command resumes it (finished trainings, scores and registrations are kept).
Backbone weights are read from ``--weights-dir`` / the Keras cache, never downloaded; a backbone
without them is skipped, or under ``--smoke`` (tiny budget on CPU: the chain's test) trained from a
random initialisation and labelled ``weights=random`` in every output.

``simulate`` answers a registered study with simulated raters through the rater service
(``start_rater`` / ``next_trial`` / ``submit_rating``), ``--prefer`` given the best MOS: a check of
the rating and report chain, never a substitute for real ratings. Exit codes: 0 ok, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.arguments import at_least
from srkeras.study import StudyConfig, StudyError, markdown_table  # no TensorFlow import (main silences it first)


def _add_backbones(sub) -> None:
    p = sub.add_parser("backbones", help="the perceptual-loss backbone study", description=__doc__.split("\n\n")[1])
    p.add_argument("--train-dir", action="append", type=Path, required=True, help="HR training images (repeat)")
    p.add_argument("--val-dir", type=Path, help="HR validation images (validation during training)")
    p.add_argument("--test-dir", action="append", type=Path, required=True, help="HR test set (repeat; named by its folder)")
    p.add_argument("--backbone", action="append", required=True, metavar="NAME[:deep|:shallow]",
                   help="backbone (repeat): vgg19, vgg16, vgg16_torch, resnet152v2, densenet201, ...")
    p.add_argument("--depth", choices=("deep", "shallow"), default="deep", help="depth of backbones given without one")
    p.add_argument("--weights-dir", type=Path, help="folder of keras.applications *_notop.h5 weight files")
    p.add_argument("--steps", type=int, required=True, help="SRGAN steps per backbone")
    p.add_argument("--pretrain-steps", type=int, help="SRResNet-MSE steps (default: --steps)")
    p.add_argument("--start", type=Path, help="reuse this trained SRResNet-MSE (RUN_DIR or .keras) as the common start")
    p.add_argument("--out", type=Path, required=True, help="study folder (re-run the command to resume)")
    p.add_argument("--db", help="register a MOS study per test set in this database (SQLAlchemy URL)")
    p.add_argument("--study-name", help="MOS study name prefix (default: backbones-<out folder name>)")
    p.add_argument("--votes-per-stimulus", type=int, default=5)
    p.add_argument("--crop", type=int, help="centre-crop MOS stimuli to N x N HR px")
    p.add_argument("--smoke", action="store_true", help="tiny budgets on CPU; random init for backbones without weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--patch-size", type=int, help="HR crop (default: the recipe's 96; smoke 32)")
    p.add_argument("--batch-size", type=int, help="batch (default: the recipe's 16; smoke 2)")
    p.add_argument("--metric", action="append", help="metrics to score (default psnr ssim lpips niqe dists brisque)")
    p.add_argument("--probe-steps", type=int, help="timed steps of the cost probe (default 5; smoke 2)")
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--feature-norm", choices=("rms", "srgan"), default="rms",
                   help="content-loss feature scale: 1/RMS of each backbone's features (default) or SRGAN's 1/12.75")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe override for every training run (e.g. optimizer.lr=2e-4)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m pipelines.study", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    _add_backbones(sub)
    s = sub.add_parser("simulate", help="simulated raters for a registered study (chain check)")
    s.add_argument("--db", required=True)
    s.add_argument("--study", required=True)
    s.add_argument("--prefer", required=True, help="method given the best simulated MOS")
    s.add_argument("--raters", type=int, default=12)
    s.add_argument("--seed", type=int, default=0)
    sub.add_parser("layers", help="print the depth table")
    c = sub.add_parser("cost", help="estimated GPU hours of a paper-size study, from the models' MACs")
    c.add_argument("--backbone", action="append", required=True, metavar="NAME[:deep|:shallow]")
    c.add_argument("--steps", type=at_least(0), default=200_000)
    c.add_argument("--pretrain-steps", type=at_least(0), default=1_000_000)
    c.add_argument("--batch-size", type=at_least(1), default=16)
    c.add_argument("--tflops", type=at_least(0, float, above=True), default=30.0, help="sustained TFLOP/s of the device (default 30)")
    c.add_argument("--verbose", action="store_true", help="show TensorFlow's log lines")
    return p.parse_args(argv)


def print_cost(a) -> int:
    from srkeras.study.cost import full_run

    runs = full_run(a.backbone, steps=a.steps, pretrain_steps=a.pretrain_steps, batch=a.batch_size, tflops=a.tflops)
    print(f"{'run':<26} {'GFLOP/step':>10} {'steps':>9} {'hours':>7}   (at {a.tflops:g} TFLOP/s sustained)")
    for name, r in runs.items():
        print(f"{name:<26} {r['gflops_per_step']:>10.0f} {r['steps']:>9} {r['hours']:>7.2f}")
    print(f"{'total':<26} {'':>10} {'':>9} {sum(r['hours'] for r in runs.values()):>7.2f}")
    return 0


def config_of(a) -> StudyConfig:
    return StudyConfig(
        train_dirs=tuple(a.train_dir), val_dir=a.val_dir, test_dirs=tuple(a.test_dir), backbones=tuple(a.backbone),
        steps=a.steps, out=a.out, pretrain_steps=a.pretrain_steps, weights_dir=a.weights_dir, depth=a.depth,
        smoke=a.smoke, seed=a.seed, scale=a.scale, hr_patch=a.patch_size, batch=a.batch_size,
        metrics=tuple(a.metric) if a.metric else None, probe_steps=a.probe_steps, checkpoint_every=a.checkpoint_every,
        overrides=tuple(a.overrides), progress=not a.quiet, feature_norm=a.feature_norm, start=a.start,
    )


def study_name(a) -> str:
    return a.study_name or f"backbones-{Path(a.out).resolve().name}"


def run_backbones(a) -> int:
    from jobs.backbone_study import MosRegistration, register_mos_studies
    from srkeras.study import run_study

    cfg = config_of(a)
    result = run_study(cfg, log=lambda m: print(m, flush=True))
    if a.db:
        registration = MosRegistration(a.db, study_name(a), votes_per_stimulus=a.votes_per_stimulus, crop=a.crop)
        names = register_mos_studies(registration, cfg, result.models, log=lambda m: print(m, flush=True))
        for n in names:
            print(f"MOS study {n!r} ready for raters; then: python -m pipelines.report --db {a.db} --study {n} "
                  f"--out {Path(a.out) / 'report' / n}")
    return 0


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.command in ("backbones", "cost"):  # the commands that import TensorFlow
        from srkeras.inference.quiet import quiet_tensorflow

        quiet_tensorflow(a.verbose)
    if a.command == "layers":
        print(markdown_table())
        return 0
    try:
        if a.command == "cost":
            return print_cost(a)
        if a.command == "simulate":
            from jobs.simulated_raters import SimulationSpec, simulate_raters

            n = simulate_raters(SimulationSpec(a.db, a.study, a.prefer, raters=a.raters, seed=a.seed))
            print(f"{a.raters} simulated raters answered {n} trials of {a.study!r} ({a.prefer} preferred)")
            return 0
        return run_backbones(a)
    except (StudyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
