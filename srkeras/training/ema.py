"""Exponential moving average of the generator weights (decay 0.999), used for validation and export.

shadow <- decay * shadow + (1 - decay) * w after every generator update, as in the ESRGAN authors'
BasicSR ("ema_decay: 0.999"). The shadow variables are created in the strategy scope with
``only_first_replica`` aggregation (every replica computes the same value from mirrored weights),
and are saved in the training checkpoint so a resumed run keeps its average.
"""

from __future__ import annotations

import contextlib

import keras


class EMA:
    def __init__(self, model: keras.Model, decay: float = 0.999):
        self.model = model
        self.decay = float(decay)
        # Trainable weights only, as BasicSR's model_ema; BatchNorm moving statistics stay the model's own.
        self.source = list(model.trainable_weights)
        self.shadow = [
            keras.Variable(
                keras.ops.convert_to_numpy(v),  # a copy: initialising from the variable itself would alias it
                trainable=False,
                dtype=v.dtype,
                name=f"ema_{i}",
                aggregation="only_first_replica",
            )
            for i, v in enumerate(self.source)
        ]

    def update(self):
        """One EMA step (call inside the train step, after the optimizer update)."""
        d = self.decay
        for s, v in zip(self.shadow, self.source):
            s.assign(d * s + (1.0 - d) * keras.ops.cast(v, s.dtype))

    def reset(self):
        """Start the average at the current weights (after --init-from)."""
        for s, v in zip(self.shadow, self.source):
            s.assign(v)

    @contextlib.contextmanager
    def swapped(self):
        """Temporarily put the averaged weights into the model (validation, export)."""
        saved = [v.numpy() for v in self.source]
        try:
            for s, v in zip(self.shadow, self.source):
                v.assign(s.numpy())
            yield self.model
        finally:
            for v, w in zip(self.source, saved):
                v.assign(w)
