"""Choosing the ``tf.distribute`` strategy, mixed precision and synchronised BatchNorm.

``auto``: ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` is set or a Slurm job step has several
tasks (one process per machine, the way to outgrow one machine; see :mod:`.cluster`),
``MirroredStrategy`` with more than one GPU, else the default strategy (one CPU or GPU). The global
batch is what the user sets; each of the R replicas (over all workers) gets ``batch / R`` examples
and the trainers divide their (per-replica mean) losses by R, so the summed gradients are those of
the mean over the global batch.
"""

from __future__ import annotations

from srkeras.models.graph import all_layers, rebuild

STRATEGIES = ("auto", "default", "mirrored", "multiworker")
_CACHE: dict = {}


def make_strategy(name: str = "auto", devices=None, collective_timeout: float | None = None):
    """The ``tf.distribute.Strategy`` for ``name`` (see module docstring); ``collective_timeout``
    (seconds) bounds each multi-worker collective."""
    import tensorflow as tf

    from srkeras.training import cluster

    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    if name == "auto":
        if cluster.multiworker_requested():
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    key = (name, tuple(devices or ()))
    if key in _CACHE:
        # One strategy per process and device set: a second MirroredStrategy over the same devices
        # can reuse collective keys of the first and deadlock or mix tensors.
        return _CACHE[key]
    if name == "mirrored":
        _CACHE[key] = tf.distribute.MirroredStrategy(devices=devices)
        return _CACHE[key]
    _CACHE[key] = cluster.make_strategy(collective_timeout)  # TF_CONFIG or Slurm; a clear error without either
    return _CACHE[key]


def set_mixed_precision(enabled: bool, log=print) -> str:
    """mixed_float16 on GPU (float32 variables, float16 compute, loss scaling in the trainers).

    On CPU float16 is slower than float32, so it is refused with a note (to ``log``) rather than used.
    """
    import keras
    import tensorflow as tf

    if not enabled:
        keras.mixed_precision.set_global_policy("float32")
        return "float32"
    if not tf.config.list_physical_devices("GPU"):
        log("note: --mixed-precision ignored: no GPU (float16 is slower than float32 on CPU)")
        keras.mixed_precision.set_global_policy("float32")
        return "float32"
    keras.mixed_precision.set_global_policy("mixed_float16")
    return "mixed_float16"


def with_synchronized_bn(model, synchronized: bool = True):
    """Copy of ``model`` whose BatchNormalization layers (``synchronized=...``) share batch statistics
    across replicas, with the same weights: so two GPUs train SRResNet/SRGAN like one GPU with the
    same global batch. Returns ``model`` itself when it has no BatchNormalization.
    """
    import keras

    bn = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if not bn or all(layer.synchronized == synchronized for layer in bn):
        return model

    def config_of(layer):
        if not isinstance(layer, keras.layers.BatchNormalization):
            return None  # rebuilt from its own config
        cfg = layer.get_config()
        cfg["synchronized"] = synchronized
        return cfg

    return rebuild(model, config_of)
