"""Supervised (PSNR-oriented) training of a generator: SRCNN, ESPCN, SRResNet-MSE, RRDB-PSNR, Johnson.

A ``keras.Model`` wrapping the generator with its own ``train_step``, so ``fit`` drives it on any
``tf.distribute`` strategy. Loss = sum_k w_k L_k(HR, SR), each L_k the per-replica batch mean;
divided by the number of replicas before the gradient, because the optimizer sums replica
gradients: the update is that of the mean over the *global* batch (so two devices with batch 8
each step exactly like one device with batch 16).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


class LossTerms:
    """Weighted sum of named losses; each is a callable (y_true, y_pred) -> per-image values or scalar.

    ``keras.losses.Loss`` objects are called through ``.call`` (no built-in reduction: theirs also
    divides by the replica count, which the trainers do once, explicitly).
    """

    def __init__(self, terms):
        self.terms = [(name, fn, float(w)) for name, fn, w in terms]
        if not self.terms:
            raise ValueError("no loss terms given")

    def __call__(self, y_true, y_pred):
        total = 0.0
        parts = {}
        for name, fn, w in self.terms:
            f = fn.call if isinstance(fn, keras.losses.Loss) else fn
            value = ops.mean(ops.cast(f(y_true, y_pred), "float32"))
            parts[f"l_{name}"] = value
            total = total + w * value
        return total, parts


def match_target(hr, sr):
    """Centre-crop HR to SR's size (models with 'valid' convolutions return smaller images)."""
    if hr.shape[1] == sr.shape[1] and hr.shape[2] == sr.shape[2]:
        return hr
    dh = (hr.shape[1] - sr.shape[1]) // 2
    dw = (hr.shape[2] - sr.shape[2]) // 2
    return hr[:, dh : dh + sr.shape[1], dw : dw + sr.shape[2], :]


def num_replicas() -> int:
    return tf.distribute.get_strategy().num_replicas_in_sync


def scale_gradients(grads, variables, multipliers: dict | None):
    """Per-layer learning-rate multipliers as gradient factors (exact for SGD; SRCNN/ESPCN's slower last layer)."""
    if not multipliers:
        return grads
    out = []
    for g, v in zip(grads, variables):
        layer = v.path.split("/")[-2] if "/" in v.path else v.path
        f = multipliers.get(layer)
        out.append(g if f is None or g is None else g * f)
    return out


def multi_worker(strategy) -> bool:
    """A ``MultiWorkerMirroredStrategy`` over more than one worker process."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or strategy.cluster_resolver is None:
        return False
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(spec.get(job) or ()) for job in ("chief", "worker")) > 1


class Trainer(keras.Model):
    """Base of the trainers: ``fit`` also under ``MultiWorkerMirroredStrategy`` (several workers),
    where the logged values are the means over every replica of every worker (:meth:`global_logs`)."""

    def global_logs(self, logs: dict) -> dict:
        """Several workers: each per-replica scalar as a 1-vector, which Keras mean-reduces over all
        replicas of all workers (its reduction of scalars fails there); else ``logs`` as they are."""
        if not multi_worker(self.distribute_strategy):
            return logs
        return {k: ops.reshape(ops.cast(v, "float32"), [1]) for k, v in logs.items()}

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds the model before fit from the first batch mean-reduced over the replicas, which
        # fails with per-replica batches spread over several workers. The trainers wrap models built
        # already (and optimizers the runner builds), so there is nothing to build: skip it there.
        if multi_worker(self.distribute_strategy) and all(
            layer.built for layer in self._flatten_layers(include_self=False)
        ):
            self.built = True
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)


class SupervisedTrainer(Trainer):
    """``fit``-able wrapper: ``compile(optimizer=...)`` then ``fit`` on (LR, HR) batches."""

    def __init__(self, generator: keras.Model, loss_terms: LossTerms, ema=None, lr_multipliers=None, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.loss_terms = loss_terms
        self.ema = ema
        self.lr_multipliers = dict(lr_multipliers or {})

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def train_step(self, data):
        lr, hr = data
        with tf.GradientTape() as tape:
            sr = ops.cast(self.generator(lr, training=True), "float32")
            hr = match_target(ops.cast(hr, "float32"), sr)
            loss, parts = self.loss_terms(hr, sr)
            scaled = self.optimizer.scale_loss(loss / num_replicas())
        variables = self.generator.trainable_variables
        grads = tape.gradient(scaled, variables)
        grads = scale_gradients(grads, variables, self.lr_multipliers)
        self.optimizer.apply(grads, variables)
        if self.ema is not None:
            self.ema.update()
        return self.global_logs({"loss": loss, **parts})
