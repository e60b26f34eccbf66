"""Seconds per training step of the backbone study's runs on this machine (the cost probe, alone).

    python -m benchmarks.bench_study --train-dir ../shared/data/T91 [--backbone vgg19:deep ...] \\
        [--batch-size 16] [--patch-size 96] [--steps 3]

Backbones without local weights are timed with random weights (the cost does not depend on them).
Prints one line per run and the MAC-based GFLOP per step beside it (:mod:`srkeras.study.cost`), so the
sustained GFLOP/s of this device can be read off and a full study's hours planned from it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_study")
    p.add_argument("--train-dir", type=Path, required=True)
    p.add_argument("--backbone", action="append", default=None)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--patch-size", type=int, default=96)
    p.add_argument("--steps", type=int, default=3)
    a = p.parse_args(argv)
    import dataclasses

    from srkeras.study import cost, training
    from srkeras.study.plan import StudyConfig, entries

    backbones = tuple(a.backbone or ("vgg16_torch:deep", "vgg16_torch:shallow", "vgg19:deep", "resnet50:deep"))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = StudyConfig(train_dirs=(a.train_dir,), val_dir=None, test_dirs=(a.train_dir,), backbones=backbones,
                          steps=a.steps, out=Path(tmp), smoke=True, hr_patch=a.patch_size, batch=a.batch_size)
        cfg_full = dataclasses.replace(cfg, smoke=False)  # paper-size generator, random init where needed
        g, d = cost.srgan_parts(4, a.patch_size)
        runs = [("srresnet_mse", training.start_recipe(cfg_full), cost.StepCost(g, 0, d).mse_step_flops(a.batch_size))]
        for e in entries(cfg):
            c = cost.StepCost(g, cost.backbone_macs(e.backbone, e.depth, a.patch_size), d)
            runs.append((f"{e.id} ({e.weights_label})", training.gan_recipe(cfg_full, e, None), c.gan_step_flops(a.batch_size)))
        print(f"batch {a.batch_size}, HR patch {a.patch_size}, {a.steps} timed steps each")
        print(f"{'run':<36} {'s/step':>8} {'GFLOP/step':>11} {'GFLOP/s':>8}")
        for name, recipe, flops in runs:
            s = training.seconds_per_step(cfg_full, recipe, Path(tmp) / "probe", a.steps)
            print(f"{name:<36} {s:>8.2f} {flops / 1e9:>11.0f} {flops / 1e9 / s:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
