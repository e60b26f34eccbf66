"""Resumable training state: ``tf.train.Checkpoint`` + ``CheckpointManager`` in ``RUN_DIR/checkpoints``.

Saved: generator (and discriminator), optimizer(s) with their ``iterations`` and slots, EMA shadow
weights, the global step and the best validation PSNR. TensorFlow writes each checkpoint to temporary
files and then atomically rewrites the ``checkpoint`` index, so a process killed at any point (even
``kill -9``) leaves the previous complete checkpoint as the latest. The data stream position needs no
state: it is a pure function of the step (:mod:`srkeras.data.dataset`).

A checkpoint whose files were damaged afterwards (truncated or corrupt ``.index`` / ``.data``, a
missing file) is moved to ``checkpoints/unreadable/`` and the newest readable one is restored instead,
with a message naming both and why; with none readable, :class:`CheckpointError` says so. A checkpoint
holding a NaN/Inf anywhere (weights, optimizer slots such as Adam's second moment, EMA, discriminator)
cannot be resumed -- the first update from it is NaN again whatever the learning rate -- so it is set
aside the same way; :meth:`TrainingCheckpoint.nonfinite` is also what the run checks before saving.

Multi-worker (:mod:`.cluster`): every worker saves (saving involves collectives), but only the chief
writes ``directory``; another worker passes ``scratch``, a private folder its copy goes to and is
deleted from right after, and reads ``directory`` (the chief's, on a shared file system) without
changing it.

Keras 3 optimizer slots exist only after ``optimizer.build(variables)``; build them (in the strategy
scope) before :meth:`TrainingCheckpoint.restore` so every value is restored immediately.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import tensorflow as tf

from srkeras.training.errors import writing

# What reading a damaged checkpoint raises: OpError (bad sstable, checksum, missing file), IndexError
# ("Read less bytes than requested" from a truncated .data file), and the like.
READ_ERRORS = (tf.errors.OpError, IndexError, ValueError, EOFError, OSError)


def _number(prefix: str) -> int:
    m = re.search(r"ckpt-(\d+)$", prefix)
    return int(m.group(1)) if m else -1


def _variables(obj) -> list:
    if isinstance(obj, (list, tuple)):  # EMA shadow weights
        return list(obj)
    return list(obj.weights if hasattr(obj, "weights") else obj.variables)  # a Keras model / optimizer


def _finite(variable) -> bool:
    value = tf.convert_to_tensor(variable)
    return not value.dtype.is_floating or bool(tf.reduce_all(tf.math.is_finite(value)))


class CheckpointError(RuntimeError):
    """No checkpoint can be restored; the message says which and why."""


class TrainingCheckpoint:
    def __init__(self, directory, max_to_keep: int = 3, scratch=None, **objects):
        self.directory = Path(directory)
        self.max_to_keep = max_to_keep
        self.scratch = None if scratch is None else Path(scratch)  # a non-chief worker's throw-away folder
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.best_psnr = tf.Variable(float("-inf"), dtype=tf.float64, trainable=False, name="best_psnr")
        self.objects = objects  # what nonfinite() checks (best_psnr is -inf until a validation)
        self.checkpoint = tf.train.Checkpoint(step=self.step, best_psnr=self.best_psnr, **objects)
        self.manager = self._manager()

    def _manager(self):
        try:
            return tf.train.CheckpointManager(self.checkpoint, str(self.directory), max_to_keep=self.max_to_keep)
        except Exception:  # noqa: BLE001 - a damaged ``checkpoint`` state file: rebuild it from the files
            if self.scratch is not None:  # not ours to repair: restore() reads the files on disk
                return tf.train.CheckpointManager(self.checkpoint, str(self.scratch / "unused"), max_to_keep=1)
            state = self.directory / "checkpoint"
            state.replace(self.directory / "checkpoint.unreadable")
            found = self.candidates()
            if found:
                tf.compat.v1.train.update_checkpoint_state(str(self.directory), found[0], all_model_checkpoint_paths=found[::-1])
            return tf.train.CheckpointManager(self.checkpoint, str(self.directory), max_to_keep=self.max_to_keep)

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def candidates(self) -> list[str]:
        """Checkpoint prefixes in the directory (listed in its state or present as files), newest first."""
        listed = list(getattr(self, "manager", None) and self.manager.checkpoints or [])
        on_disk = [str(p.with_suffix("")) for p in self.directory.glob("ckpt-*.index")]
        return sorted(set(listed) | set(on_disk), key=_number, reverse=True)

    def nonfinite(self) -> list[str]:
        """Names of the saved objects (generator, g_optimizer, discriminator, ...) holding a NaN/Inf now."""
        return [name for name, obj in self.objects.items() if not all(_finite(v) for v in _variables(obj))]

    def restore(self, log=print) -> int:
        """Restore the newest readable, finite checkpoint if there is one; returns its step (0 for a fresh
        run). Newer unreadable or non-finite ones are moved aside (``unreadable/``) with a message saying
        which and why."""
        if self.latest is None and not self.candidates():
            return 0
        bad = []
        for path in self.candidates():
            try:
                status = self.checkpoint.restore(path)
            except READ_ERRORS as e:
                detail = str(e).strip().splitlines()[0] if str(e).strip() else "unreadable"
                bad.append((path, f"is unreadable ({type(e).__name__}: {detail})"))
                continue
            try:
                status.assert_existing_objects_matched()
            except AssertionError as e:
                raise CheckpointError(
                    f"{path}: checkpoint does not match this model/optimizer (was the recipe or a model option changed?): {e}"
                ) from None
            nonfinite = self.nonfinite()
            if nonfinite:
                bad.append((path, f"holds NaN/Inf values in {', '.join(nonfinite)} (saved after the run diverged)"))
                continue
            if bad:
                self._set_aside(bad, path, log)
            return int(self.step.numpy())
        reasons = "\n  ".join(f"{Path(p).name}: {why}" for p, why in bad)
        raise CheckpointError(
            f"no checkpoint in {self.directory} can be read and resumed:\n  {reasons}\n"
            "Move the folder away to start the run again, or use another --out."
        )

    def _set_aside(self, bad, good: str, log) -> None:
        if self.scratch is not None:
            log(f"falling back to {Path(good).name}, the newest usable checkpoint (the chief sets the others aside)")
            return
        aside = self.directory / "unreadable"
        aside.mkdir(exist_ok=True)
        for path, why in bad:
            for f in self.directory.glob(Path(path).name + ".*"):
                shutil.move(str(f), aside / f.name)
            log(f"checkpoint {Path(path).name} {why}; moved it to {aside}")
        keep = [p for p in self.candidates() if p not in {b for b, _ in bad}]
        tf.compat.v1.train.update_checkpoint_state(str(self.directory), good, all_model_checkpoint_paths=keep[::-1])
        self.manager = self._manager()
        log(f"falling back to {Path(good).name}, the newest usable checkpoint")

    def save(self, step: int) -> str:
        """Write ``ckpt-<step>``; a failed write (disk full, ...) raises
        :class:`~srkeras.training.errors.OutputError` naming it, the previous checkpoints intact."""
        self.step.assign(int(step))
        if self.scratch is None:
            with writing(self.directory / f"ckpt-{int(step)}"):
                return self.manager.save(checkpoint_number=int(step))
        folder = self.scratch / "checkpoints"
        try:
            with writing(folder / f"ckpt-{int(step)}"):
                return tf.train.CheckpointManager(self.checkpoint, str(folder), max_to_keep=1).save(checkpoint_number=int(step))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
