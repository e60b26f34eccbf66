"""Training throughput per recipe on CPU, input-pipeline wait share and MirroredStrategy overhead.

    python -m benchmarks.bench_training [--recipes espcn,srcnn,...] [--batch 4] [--steps 3] [--json out.json]

Per recipe: the paper's generator (and discriminator, perceptual backbone with random weights: the
compute is that of ImageNet weights) at the recipe's HR patch size, with a small batch (``--batch``,
default 4) so the whole table runs in minutes on a laptop CPU. Reported:

* HR patches/s of full training steps fed by the real tf.data pipeline (crop, augment, MATLAB
  bicubic LR), mean over ``--steps`` steps after two warm-up steps (tracing excluded);
* input wait share = 1 - t(steps on one cached batch) / t(steps fed by the pipeline), i.e. the part
  of a step the accelerator would wait on input (0 when prefetching hides the input);
* input-only batches/s of the pipeline alone.

MirroredStrategy overhead (child process with two logical CPU devices, same global batch): the
step-time ratio mirrored / default for ESPCN and a small SRResNet; both replicas share the same
cores here, so this measures the cost of the replica machinery (splitting, all-reduce, sync BN),
not a speed-up. Training images: the scikit-image photos (offline).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ALL = ["srcnn", "espcn", "srresnet_mse", "srgan_vgg54", "srgan_vgg22", "srgan_mse", "rrdb_psnr", "esrgan", "johnson_sr"]


def resolved(name: str, batch: int, strategy: str = "default", overrides=None):
    from srkeras import recipes

    cfg = recipes.apply_overrides(recipes.load(name), overrides or {})
    data = cfg["data"]
    if "lr_patch" in data:
        data["hr_patch"] = int(data.pop("lr_patch")) * int(cfg["model"]["scale"])
    data["batch"] = batch
    cfg["loss"]["backbone_weights"] = None  # random backbone: same compute, nothing to download
    cfg["train"].update(steps=10**6, checkpoint_every=0, val_every=0, log_every=0)
    cfg["run"] = {"strategy": strategy, "init_from": "none"}
    return recipes.Recipe.from_dict(cfg)


def time_fit(trainer, ds, steps: int, warmup: int = 2) -> float:
    """Mean seconds per step over ``steps`` steps after ``warmup`` (tracing, iterator start) in one fit."""
    import keras

    stamps = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    trainer.fit(ds, epochs=1, steps_per_epoch=warmup + steps, verbose=0, shuffle=False, callbacks=[Clock()])
    return (stamps[-1] - stamps[warmup - 1]) / steps


def bench_one(name: str, batch: int, steps: int, images, devices=None, strategy="default", overrides=None) -> dict:
    from srkeras.training.runner import Run

    with tempfile.TemporaryDirectory() as tmp:
        run = Run(resolved(name, batch, strategy, overrides), tmp, images, None, progress=False, log=lambda *a: None, devices=devices)
        run.setup()
        ds = run.dataset()
        step_s = time_fit(run.trainer, ds, steps)
        out = {
            "recipe": name,
            "model": run.recipe.model.name,
            "hr_patch": run.spec.hr_patch,
            "batch": batch,
            "replicas": run.replicas,
            "step_s": step_s,
            "patches_per_s": batch / step_s,
        }
        if strategy == "default":
            const = ds.take(1).cache().repeat()
            const_s = time_fit(run.trainer, const, steps)
            it = iter(ds)
            for _ in range(3):
                next(it)
            t = time.perf_counter()
            n = max(steps, 10)
            for _ in range(n):
                next(it)
            out["input_batches_per_s"] = n / (time.perf_counter() - t)
            out["input_wait_share"] = max(0.0, 1.0 - const_s / step_s)
        return out


def photos():
    from srkeras.data.samples import HELD_OUT, SAMPLE_NAMES, sample_image

    return {n: sample_image(n) for n in SAMPLE_NAMES if n not in HELD_OUT}


MIRRORED_CASES = [
    ("espcn", {}),
    ("srresnet_mse", {"model.options.num_blocks": 4, "data.hr_patch": 48}),
]


def mirrored_child(batch: int, steps: int) -> list:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    images = photos()
    rows = []
    for name, over in MIRRORED_CASES:
        d = bench_one(name, batch, steps, images, overrides=over)
        m = bench_one(name, batch, steps, images, devices=["/cpu:0", "/cpu:1"], strategy="mirrored", overrides=over)
        rows.append({"recipe": name, "overrides": over, "default_step_s": d["step_s"], "mirrored_step_s": m["step_s"],
                     "overhead": m["step_s"] / d["step_s"] - 1.0})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", default=",".join(ALL))
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement (after two warm-up steps)")
    p.add_argument("--json", type=Path)
    p.add_argument("--no-mirrored", action="store_true")
    p.add_argument("--mirrored-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.mirrored_child:
        print(json.dumps(mirrored_child(args.batch * 2, args.steps)))
        return 0

    import tensorflow as tf

    images = photos()
    rows = []
    print(f"CPU threads: {os.cpu_count()}, TensorFlow {tf.__version__}; batch {args.batch}, {args.steps} timed steps", flush=True)
    header = f"{'recipe':<13} {'model':<9} {'HR patch':>8} {'batch':>5} {'step s':>8} {'patches/s':>10} {'input wait':>10} {'input b/s':>9}"
    print(header)
    for name in args.recipes.split(","):
        r = bench_one(name, args.batch, args.steps, images)
        rows.append(r)
        print(f"{r['recipe']:<13} {r['model']:<9} {r['hr_patch']:>8} {r['batch']:>5} {r['step_s']:>8.3f} {r['patches_per_s']:>10.1f} "
              f"{100 * r['input_wait_share']:>9.1f}% {r['input_batches_per_s']:>9.1f}", flush=True)
    result = {"per_recipe": rows}
    if not args.no_mirrored:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_training", "--mirrored-child", "--batch", str(args.batch), "--steps", str(args.steps)],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        mirrored = json.loads(proc.stdout.strip().splitlines()[-1])
        result["mirrored"] = mirrored
        print(f"\nMirroredStrategy, 2 logical CPU devices vs default, global batch {2 * args.batch}:")
        print(f"{'recipe':<13} {'default s/step':>14} {'mirrored s/step':>15} {'overhead':>9}")
        for m in mirrored:
            print(f"{m['recipe']:<13} {m['default_step_s']:>14.3f} {m['mirrored_step_s']:>15.3f} {100 * m['overhead']:>8.1f}%")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
