"""Multi-worker bookkeeping overhead: training steps/s of one process vs N local workers (``--workers N``).

    python -m benchmarks.bench_multiworker [--workers 2] [--steps 60] [--batch 8] [--models espcn,srresnet] [--json out.json]

Each case is the real command line (``python -m pipelines.train``) on the scikit-image photos, once
with ``--strategy default`` (one process) and once with ``--workers N`` (N local processes with a
generated TF_CONFIG, one CPU device or GPU each), at the same global batch. Steps/s are read from the
run's ``metrics.csv`` between the first and the last logged step, so start-up, tracing and the
final export are left out. On one machine the workers share its cores and memory bandwidth: the
ratio measures what the multi-worker machinery (gradient all-reduce over gRPC, synchronised
BatchNorm, logging collectives) costs per step, the overhead to budget for when planning a
cluster, not the speed-up of N real machines.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = {
    "espcn": ["--recipe", "espcn", "--scale", "3", "--patch-size", "48"],
    "srresnet": ["--recipe", "srresnet_mse", "--scale", "4", "--patch-size", "48", "--set", "model.options.num_blocks=4",
                 "--set", "model.options.num_features=32"],
}  # fmt: skip


def steps_per_second(run_dir: Path) -> float:
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    (s0, t0), (s1, t1) = [(int(r["step"]), float(r["elapsed_s"])) for r in (rows[0], rows[-1])]
    return (s1 - s0) / (t1 - t0)


def one(model: str, workers: int, steps: int, batch: int, tmp: Path, timeout: int) -> dict:
    out = tmp / f"{model}-{workers}"
    log_every = max(1, steps // 6)
    cmd = [sys.executable, "-m", "pipelines.train", *MODELS[model], "--steps", str(steps), "--batch-size", str(batch),
           "--out", str(out), "--checkpoint-every", "0", "--val-every", "0", "--log-every", str(log_every), "--quiet",
           "--val-max-images", "1", "--init-from", "none"]  # fmt: skip
    cmd += ["--workers", str(workers)] if workers > 1 else ["--strategy", "default"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    rate = steps_per_second(out)
    return {"model": model, "workers": workers, "global_batch": batch, "steps_per_s": round(rate, 3),
            "patches_per_s": round(rate * batch, 1), "wall_s": round(time.monotonic() - t0, 1)}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=8, help="global batch (divisible by --workers)")
    p.add_argument("--models", default="espcn,srresnet")
    p.add_argument("--timeout", type=int, default=900, help="seconds per run")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for n in (1, args.workers):
                rows.append(one(model, n, args.steps, args.batch, Path(tmp), args.timeout))
                r = rows[-1]
                print(f"{r['model']:<10} workers={r['workers']}  {r['steps_per_s']:8.2f} steps/s  "
                      f"{r['patches_per_s']:8.1f} patches/s  (wall {r['wall_s']} s)", flush=True)
            base, multi = rows[-2]["steps_per_s"], rows[-1]["steps_per_s"]
            print(f"{model:<10} {args.workers} workers / 1 process step rate: {multi / base:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
