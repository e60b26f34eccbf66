"""Training callbacks driven by the global step: progress bar, NaN guard, time budget, checkpoints,
validation PSNR/SSIM (best kept), CSV log and TensorBoard (scalars and LR | SR | HR image grids).

Validation scores through :mod:`srkeras.evaluation` (LR by the run's degradation, 8-bit LR and SR,
Y, ``scale`` px shaved, the serving colour path), so the numbers logged during training are those
``pipelines.evaluate`` gives for the exported model on the same images.

``fit`` runs one epoch of the remaining steps; every callback reads the global step from a shared
:class:`RunState` (``start_step + batch + 1``), so a resumed run logs and checkpoints at the same
steps as an uninterrupted one.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from srkeras import evaluation
from srkeras.training.errors import write_run_file, writing


@dataclass
class RunState:
    start_step: int
    total_steps: int
    step: int = 0
    started: float = field(default_factory=time.monotonic)
    failed: str | None = None  # NaN/Inf message
    stop_reason: str | None = None
    last_logs: dict = field(default_factory=dict)
    last_saved: int = -1
    last_val_step: int = -1
    val: dict = field(default_factory=dict)  # latest validation {"psnr":..,"ssim":..}
    max_minutes: float | None = None  # wall-clock budget counted from ``started`` (--max-minutes)

    def __post_init__(self):
        self.step = self.start_step

    @property
    def deadline(self) -> float | None:
        """``time.monotonic()`` at which the time budget ends the run (None: no budget)."""
        return None if not self.max_minutes else self.started + 60.0 * float(self.max_minutes)


def to_floats(logs) -> dict:
    return {k: float(np.asarray(v)) for k, v in (logs or {}).items()}


class StepCounter(keras.callbacks.Callback):
    """Keeps ``state.step`` and ``state.last_logs`` current (first in the callback list)."""

    def __init__(self, state: RunState):
        super().__init__()
        self.state = state

    def on_train_batch_end(self, batch, logs=None):
        self.state.step = self.state.start_step + batch + 1
        self.state.last_logs = to_floats(logs)


class NaNGuard(keras.callbacks.Callback):
    """Stops at the first NaN/Inf loss; no checkpoint is written after it (the last good one stays)."""

    def __init__(self, state: RunState):
        super().__init__()
        self.state = state

    def on_train_batch_end(self, batch, logs=None):
        bad = {k: v for k, v in self.state.last_logs.items() if not math.isfinite(v)}
        if bad:
            self.state.failed = f"non-finite loss at step {self.state.step}: " + ", ".join(f"{k}={v}" for k, v in bad.items())
            self.state.stop_reason = "nan"
            self.model.stop_training = True


class TimeBudget(keras.callbacks.Callback):
    """Stops at ``state.deadline`` (``max_minutes`` of wall clock from ``state.started``).

    ``agree(value) -> max over workers`` (multi-worker): every worker stops at the step the first of
    them reaches its deadline (each worker's clock started with its own process), never at different steps.
    """

    def __init__(self, state: RunState, max_minutes: float | None = None, agree=None):
        super().__init__()
        self.state = state
        if max_minutes is not None:
            state.max_minutes = max_minutes
        self.deadline = state.deadline
        self.agree = agree

    def on_train_batch_end(self, batch, logs=None):
        if self.deadline is None or self.state.failed:
            return
        due = time.monotonic() >= self.deadline
        if self.agree is not None:
            due = bool(self.agree(float(due)))
        if due:
            self.state.stop_reason = "time"
            self.model.stop_training = True


class PeriodicCheckpoint(keras.callbacks.Callback):
    """Saves every ``every`` steps; ``nonfinite()`` (optional: the names of the parts of the state
    holding a NaN/Inf -- weights, optimizer slots, EMA, discriminator) is checked first, so an update
    that made any of them NaN/Inf stops the run instead of saving a checkpoint that cannot be resumed."""

    def __init__(self, state: RunState, checkpoint, every: int, nonfinite=None):
        super().__init__()
        self.state, self.checkpoint, self.every = state, checkpoint, int(every)
        self.nonfinite = nonfinite

    def on_train_batch_end(self, batch, logs=None):
        st = self.state
        if not self.every or st.step % self.every or st.failed:
            return
        bad = self.nonfinite() if self.nonfinite is not None else []
        if bad:
            st.failed = f"NaN/Inf values in {', '.join(bad)} by step {st.step}"
            st.stop_reason = "nan"
            self.model.stop_training = True
            return
        self.checkpoint.save(st.step)
        st.last_saved = st.step


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def validate(model, images, scale: int, degradation: str = "bicubic", keep: int = 0):
    """Mean PSNR/SSIM of ``model`` over ``images`` [(name, HR)] under the evaluation protocol
    (:mod:`srkeras.evaluation`: prepare -> super_resolve -> score); also returns up to ``keep``
    (LR, SR, HR) triples (8-bit, float32) for image logs."""
    scores, samples = [], []
    for name, hr in images:
        pair = evaluation.prepare(hr, scale, degradation, name)
        sr = evaluation.super_resolve(model, pair.lr, scale)
        scores.append(evaluation.score(sr, pair.hr, scale))
        if len(samples) < keep:
            samples.append((pair.lr, evaluation.to_8bit(sr), pair.hr))
    return evaluation.mean_scores(scores), samples


def image_grid(lr, sr, hr, scale: int, size: int = 192) -> np.ndarray:
    """LR (nearest-upscaled) | SR | HR, centre crops of at most ``size`` HR pixels, side by side,
    as RGB (a grey image is shown grey)."""
    up = np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)
    h, w = hr.shape[:2]
    ch, cw = min(h, size), min(w, size)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    crops = [np.clip(a[y0 : y0 + ch, x0 : x0 + cw], 0, 1) for a in (up, sr, hr)]
    crops = [np.repeat(c, 3, axis=-1) if c.shape[-1] == 1 else c for c in crops]
    gap = np.ones((ch, 4, 3), np.float32)
    return np.concatenate([crops[0], gap, crops[1], gap, crops[2]], axis=1)


class Validation(keras.callbacks.Callback):
    """Every ``every`` steps: PSNR/SSIM of the generator (EMA weights if enabled) on the validation
    images; the best generator so far is exported to ``best.keras`` (see :func:`runner.export`)."""

    def __init__(self, state, run, every: int):
        super().__init__()
        self.state, self.run, self.every = state, run, int(every)

    def on_train_batch_end(self, batch, logs=None):
        if self.every and self.state.step % self.every == 0 and not self.state.failed and self.run.val_images:
            self.run.validate_now()


# --------------------------------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------------------------------


class CSVLog(keras.callbacks.Callback):
    """``metrics.csv``: step, elapsed_s, lr, losses, val_psnr, val_ssim, every ``every`` steps and at
    validations. On resume, rows after the restored step (written before a crash) are dropped."""

    def __init__(self, state: RunState, path: Path, every: int, learning_rate_fn):
        super().__init__()
        self.state, self.path, self.every, self.learning_rate_fn = state, Path(path), int(every), learning_rate_fn
        self.columns = None
        self.last_step = -1
        if self.path.exists():
            with open(self.path, newline="") as f:
                rows = list(csv.DictReader(f))
            if rows:
                self.columns = list(rows[0].keys())
                keep = [r for r in rows if int(r["step"]) <= state.start_step]
                self._write_all(keep)

    def _write_all(self, rows):
        def write(tmp):
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, self.columns)
                w.writeheader()
                w.writerows(rows)

        write_run_file(self.path, write)

    def write(self, force: bool = False):
        st = self.state
        if not st.last_logs or st.step == self.last_step:
            return
        if not force and not (self.every and st.step % self.every == 0) and st.last_val_step != st.step:
            return
        row = {"step": st.step, "elapsed_s": round(time.monotonic() - st.started, 2), "lr": f"{self.learning_rate_fn():.6g}"}
        row.update({k: f"{v:.6g}" for k, v in st.last_logs.items()})
        if st.last_val_step == st.step:
            row.update({"val_psnr": f"{st.val['psnr']:.4f}", "val_ssim": f"{st.val['ssim']:.5f}"})
        if self.columns is None:
            self.columns = ["step", "elapsed_s", "lr", *sorted(st.last_logs), "val_psnr", "val_ssim"]
            self._write_all([])
        with writing(self.path), open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)
        self.last_step = st.step

    def on_train_batch_end(self, batch, logs=None):
        if not self.state.failed:
            self.write()


class TensorBoardLog(keras.callbacks.Callback):
    """Scalars (losses, learning rate) every ``every`` steps; validation scalars and images are written
    by :meth:`log_validation`."""

    def __init__(self, state: RunState, logdir: Path, every: int, learning_rate_fn):
        super().__init__()
        import tensorflow as tf

        self.state, self.every, self.learning_rate_fn = state, int(every), learning_rate_fn
        self.writer = tf.summary.create_file_writer(str(logdir))

    def scalars(self, values: dict, prefix: str = "train/"):
        import tensorflow as tf

        with self.writer.as_default(step=self.state.step):
            for k, v in values.items():
                tf.summary.scalar(prefix + k, v)

    def on_train_batch_end(self, batch, logs=None):
        st = self.state
        if self.every and st.step % self.every == 0 and not st.failed:
            self.scalars({**st.last_logs, "learning_rate": self.learning_rate_fn()})

    def log_validation(self, metrics: dict, samples, scale: int):
        import tensorflow as tf

        self.scalars(metrics, prefix="val/")
        if samples:
            grids = [image_grid(lr, sr, hr, scale) for lr, sr, hr in samples]
            h = min(g.shape[0] for g in grids)
            w = min(g.shape[1] for g in grids)
            batch = np.stack([g[:h, :w] for g in grids])
            with self.writer.as_default(step=self.state.step):
                tf.summary.image("val/lr_sr_hr", batch, max_outputs=len(grids))
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.flush()


class ProgressBar(keras.callbacks.Callback):
    """tqdm bar over the global steps with ETA, loss and the latest validation PSNR.

    Its total is the step at which the run will end: the step count, or -- when a time budget
    (``state.deadline``) will end the run first -- the step the measured speed reaches by then, so
    progress and ETA are against whichever limit ends the run (``limit`` in the postfix says which).
    """

    def __init__(self, state: RunState, enabled: bool = True, desc: str = "train", clock=time.monotonic):
        super().__init__()
        from tqdm import tqdm

        self.state, self.clock = state, clock
        self.first = None  # (step, time) of the first finished batch: the speed excludes start-up
        self.limit = "steps"
        self.bar = tqdm(
            total=state.total_steps,
            initial=state.start_step,
            desc=desc,
            unit="step",
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5,
        )

    def end_step(self, now: float) -> int:
        """The step the run ends at: the step count, or the one reached at the deadline if sooner."""
        st = self.state
        if st.deadline is None or self.first is None or st.step <= self.first[0] or now <= self.first[1]:
            return st.total_steps
        rate = (st.step - self.first[0]) / (now - self.first[1])
        at_deadline = st.step + int(rate * max(0.0, st.deadline - now))
        return min(st.total_steps, max(st.step, at_deadline))

    def on_train_batch_end(self, batch, logs=None):
        st = self.state
        now = self.clock()
        if self.first is None:
            self.first = (st.step, now)
        end = self.end_step(now)
        self.limit = "time" if end < st.total_steps else "steps"
        if end != self.bar.total:
            self.bar.total = end
        self.bar.update(st.step - self.bar.n)
        post = {"loss": f"{st.last_logs.get('loss', float('nan')):.4g}"}
        if st.val:
            post["val_psnr"] = f"{st.val['psnr']:.2f}"
        if st.deadline is not None:
            post["limit"] = f"time ({st.max_minutes:g} min)" if self.limit == "time" else f"{st.total_steps} steps"
        self.bar.set_postfix(post, refresh=False)

    def close(self):
        self.bar.close()
