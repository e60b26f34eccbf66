"""Resumable training state: ``tf.train.Checkpoint`` + ``CheckpointManager`` in ``RUN_DIR/checkpoints``.

Saved: generator (and discriminator), optimizer(s) with their ``iterations`` and slots, EMA shadow
weights, the global step and the best validation PSNR. TensorFlow writes each checkpoint to temporary
files and then atomically rewrites the ``checkpoint`` index, so a process killed at any point (even
``kill -9``) leaves the previous complete checkpoint as the latest. The data stream position needs no
state: it is a pure function of the step (:mod:`srkeras.data.dataset`).

Keras 3 optimizer slots exist only after ``optimizer.build(variables)``; build them (in the strategy
scope) before :meth:`TrainingCheckpoint.restore` so every value is restored immediately.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf


class TrainingCheckpoint:
    def __init__(self, directory, max_to_keep: int = 3, **objects):
        self.directory = Path(directory)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.best_psnr = tf.Variable(float("-inf"), dtype=tf.float64, trainable=False, name="best_psnr")
        self.checkpoint = tf.train.Checkpoint(step=self.step, best_psnr=self.best_psnr, **objects)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.directory), max_to_keep=max_to_keep)

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def restore(self) -> int:
        """Restore the latest checkpoint if there is one; returns its step (0 for a fresh run)."""
        path = self.latest
        if path is None:
            return 0
        status = self.checkpoint.restore(path)
        try:
            status.assert_existing_objects_matched()
        except AssertionError as e:
            raise RuntimeError(
                f"{path}: checkpoint does not match this model/optimizer (was the recipe or a model option changed?): {e}"
            ) from None
        return int(self.step.numpy())

    def save(self, step: int) -> str:
        self.step.assign(int(step))
        return self.manager.save(checkpoint_number=int(step))
