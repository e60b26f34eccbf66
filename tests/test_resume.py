"""Resume after ``kill -9``: the re-run of the same command continues from the last checkpoint with
the optimizer's state and step, and ends where an uninterrupted run ends."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
STEPS = 300


@pytest.fixture(scope="module")
def hr_dir(tmp_path_factory):
    from srkeras.data import save_image

    d = tmp_path_factory.mktemp("hr")
    yy, xx = np.mgrid[0:40, 0:40] / 40.0
    for i in range(3):
        img = np.stack([0.5 + 0.4 * np.sin(4 * xx + i), 0.5 + 0.4 * np.cos(3 * yy), 0.5 + 0.3 * np.sin(2 * (xx + yy) - i)], -1)
        save_image(d / f"img{i}.png", img)
    return d


def command(hr_dir, out):
    return [
        sys.executable, "-m", "pipelines.train", "--recipe", "espcn", "--train-dir", str(hr_dir), "--scale", "2",
        "--steps", str(STEPS), "--out", str(out), "--checkpoint-every", "25", "--log-every", "25", "--patch-size", "16",
        "--batch-size", "4", "--set", "model.options.n1=8", "--set", "model.options.n2=8", "--quiet",
    ]


def latest_step(out: Path) -> int:
    import re

    state = out / "checkpoints" / "checkpoint"
    if not state.exists():
        return 0
    m = re.search(r'model_checkpoint_path: "ckpt-(\d+)"', state.read_text())
    return int(m.group(1)) if m else 0


def test_kill_9_then_resume(hr_dir, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(command(hr_dir, out), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while latest_step(out) < 50 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed: " + proc.stdout.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = latest_step(out)
    assert 50 <= killed_at < STEPS
    assert not (out / "model.keras").exists()  # it really died mid-way

    done = subprocess.run(command(hr_dir, out), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    log = done.stdout + done.stderr
    assert "resuming from" in log and f"step {killed_at}, optimizer iterations {killed_at}" in log
    summary = json.loads((out / "summary.json").read_text())
    assert summary["step"] == STEPS
    assert summary["steps_this_run"] == STEPS - killed_at
    assert summary["optimizer_iterations"] == STEPS  # continued, not restarted at 0

    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(out / "checkpoints" / f"ckpt-{STEPS}"))
    names = reader.get_variable_to_shape_map()
    iterations = [k for k in names if "g_optimizer" in k and "iteration" in k]
    assert iterations and int(reader.get_tensor(iterations[0])) == STEPS
    step_key = [k for k in names if k.startswith("step/")][0]
    assert int(reader.get_tensor(step_key)) == STEPS
    # The CSV has each logged step once, in order, across the kill.
    steps = [int(r["step"]) for r in csv.DictReader(open(out / "metrics.csv"))]
    assert steps == list(range(25, STEPS + 1, 25))

    # Re-running a finished run does no step and re-exports the same model.
    again = subprocess.run(command(hr_dir, out), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert json.loads((out / "summary.json").read_text())["steps_this_run"] == 0
