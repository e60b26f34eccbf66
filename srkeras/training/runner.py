"""Build and run a training job from a resolved recipe: data, strategy, models, losses, optimizers,
trainer, checkpoint/resume, callbacks, final validation and export.

RUN_DIR layout: ``config.json`` (resolved recipe and run options), ``checkpoints/`` (resume state),
``metrics.csv``, ``tensorboard/``, ``model.keras`` (the generator, NHWC, EMA weights if enabled),
``best.keras`` + ``best.json`` (best validation PSNR so far) and ``summary.json``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from srkeras.recipes import get_path

EXIT_NAN = 3

# Values that may differ between the first run and a resumed one without invalidating the checkpoint.
RESUMABLE_KEYS = ("train.steps", "train.checkpoint_every", "train.val_every", "train.log_every", "run")


class TrainingError(RuntimeError):
    """A run cannot start or continue; the message says why and what to do."""


class NonFiniteError(TrainingError):
    """The loss or the weights became NaN/Inf; the last good checkpoint was kept."""


# --------------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------------


def make_schedule(opt_cfg: dict, sched_cfg: dict, total_steps: int):
    """Learning rate or schedule on optimizer iterations: constant | multistep | cosine."""
    import keras

    lr = float(opt_cfg.get("lr", 1e-3))
    kind = (sched_cfg or {}).get("kind", "constant")
    if kind == "constant":
        return lr
    if kind == "multistep":
        milestones = [int(m) for m in sched_cfg.get("milestones", [])]
        gamma = float(sched_cfg.get("gamma", 0.5))
        if not milestones:
            return lr
        return keras.optimizers.schedules.PiecewiseConstantDecay(milestones, [lr * gamma**i for i in range(len(milestones) + 1)])
    if kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, int(total_steps)), alpha=float(sched_cfg.get("alpha", 0.0)))
    raise TrainingError(f"unknown schedule kind {kind!r}; choose constant, multistep or cosine")


OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}


def make_optimizer(opt_cfg: dict, sched_cfg: dict, total_steps: int, mixed_precision: bool):
    import keras

    cfg = dict(opt_cfg)
    name = cfg.pop("name", "adam").lower()
    cfg.pop("lr", None)
    cfg.pop("lr_multipliers", None)
    if name not in OPTIMIZERS:
        raise TrainingError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    opt = getattr(keras.optimizers, OPTIMIZERS[name])(learning_rate=make_schedule(opt_cfg, sched_cfg, total_steps), **cfg)
    if mixed_precision:
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def make_loss_terms(loss_cfg: dict):
    from srkeras import losses
    from srkeras.training.supervised import LossTerms

    terms = []
    for t in loss_cfg.get("terms", []):
        name = t["name"]
        options = dict(t.get("options", {}))
        if name in losses.PRESETS:
            options.setdefault("weights", loss_cfg.get("backbone_weights", "imagenet"))
        try:
            fn = losses.get(name, **options)
        except losses.WeightsNotFoundError as e:
            raise TrainingError(
                f"loss {name!r} needs ImageNet backbone weights: {e}\n"
                "Pass a local weights file with --set loss.backbone_weights=/path/to/file.h5"
            ) from None
        terms.append((name, fn, float(t.get("weight", 1.0))))
    return LossTerms(terms)


def exportable(model):
    """A float32 copy of ``model`` with plain (unsynchronised) BatchNorm, outside any strategy."""
    import keras

    from srkeras.training.strategy import _all_layers

    def clone(layer):
        cfg = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            cfg["synchronized"] = False
        if "dtype" in cfg:
            cfg["dtype"] = "float32"
        return layer.__class__.from_config(cfg)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights([np.asarray(w) for w in model.get_weights()])
    assert len(list(_all_layers(copy))) == len(list(_all_layers(model)))
    return copy


def save_model_atomic(model, path: Path):
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def write_json(path: Path, data: dict):
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str))
    os.replace(tmp, path)


def _strip(cfg: dict, keys) -> dict:
    import copy

    out = copy.deepcopy(cfg)
    for k in keys:
        node = out
        parts = k.split(".")
        for p in parts[:-1]:
            node = node.get(p, {})
        node.pop(parts[-1], None)
    return out


def resolve_init_path(spec: str) -> Path:
    p = Path(spec)
    if p.is_dir():
        p = p / "model.keras"
    if not p.is_file():
        raise TrainingError(f"--init-from {spec}: no such model file (expected a .keras file or a RUN_DIR containing model.keras)")
    return p


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


class Run:
    """One training job. ``cfg`` is a resolved recipe (see :mod:`pipelines.train`), with ``run``
    holding the run options (strategy, mixed_precision, jit_compile, max_minutes, init_from, ...)."""

    def __init__(self, cfg: dict, run_dir, train_source, val_source=None, progress: bool = True, log=print, devices=None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.train_source = train_source  # list of folders, or {name: HR array}
        self.val_source = val_source  # folder, {name: HR array} or None
        self.progress = progress
        self.log = log
        self.devices = devices
        self.val_images = []
        self.created = time.monotonic()  # --max-minutes counts from here (data loading and model building included)

    # ---- configuration -------------------------------------------------------------------------

    @property
    def scale(self) -> int:
        return int(self.cfg["model"]["scale"])

    @property
    def kind(self) -> str:
        return self.cfg["recipe"].get("kind", "supervised")

    def check_config(self):
        path = self.run_dir / "config.json"
        if path.exists() and (self.run_dir / "checkpoints" / "checkpoint").exists():
            old = json.loads(path.read_text())
            a, b = _strip(old, RESUMABLE_KEYS), _strip(self.cfg, RESUMABLE_KEYS)
            if a != b:
                diff = sorted(_diff_keys(a, b))
                raise TrainingError(
                    f"{self.run_dir} holds a run with a different configuration ({', '.join(diff)}); "
                    "use another --out, or the same options to resume it"
                )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(path, self.cfg)

    # ---- setup ---------------------------------------------------------------------------------

    def setup(self):
        import keras

        from srkeras import models
        from srkeras.data import dataset as ds
        from srkeras.training import strategy as st
        from srkeras.training.checkpoint import TrainingCheckpoint
        from srkeras.training.ema import EMA

        cfg, run = self.cfg, self.cfg["run"]
        self._check_init_from()
        self.check_config()
        self.policy = st.set_mixed_precision(bool(run.get("mixed_precision")))
        self.strategy = st.make_strategy(run.get("strategy", "auto"), devices=self.devices)
        self.replicas = self.strategy.num_replicas_in_sync
        keras.utils.set_random_seed(int(get_path(cfg, "train.seed", 0)))

        data = cfg["data"]
        channels = int(cfg["model"].get("options", {}).get("channels", 3))
        self.spec = ds.PipelineSpec(
            hr_patch=int(data["hr_patch"]),
            scale=self.scale,
            global_batch=int(data["batch"]),
            degradation=data.get("degradation", "bicubic"),
            channels=channels,
            augment=bool(data.get("augment", True)),
            seed=int(get_path(cfg, "train.seed", 0)),
            blur_sigma=float(data.get("blur_sigma", 1.0)),
        )
        self.spec.check()
        if self.spec.global_batch % self.replicas:
            raise TrainingError(f"batch {self.spec.global_batch} is not divisible by the {self.replicas} replicas")
        if isinstance(self.train_source, dict):
            self.cache = ds.ImageCache.from_arrays(list(self.train_source.values()), list(self.train_source), self.spec.hr_patch)
        else:
            self.cache = ds.load_hr_folders(self.train_source, self.spec.hr_patch, progress=self.progress)
        for msg in self.cache.skipped:
            self.log(f"skipped training image: {msg}")
        if self.val_source is not None:
            self.val_images, skipped = ds.load_validation(self.val_source, self.scale, get_path(cfg, "train.val_max_images"))
            for msg in skipped:
                self.log(f"skipped validation image: {msg}")

        steps = int(cfg["train"]["steps"])
        with self.strategy.scope():
            g = models.build(cfg["model"]["name"], scale=self.scale, **cfg["model"].get("options", {}))
            d = None
            if self.kind == "gan":
                gan = cfg["gan"]
                d_options = {**gan.get("d_options", {}), "input_size": self.spec.hr_patch, "channels": channels}
                d = models.build(gan["discriminator"], **d_options)
            if self.replicas > 1 and run.get("sync_bn", True):
                # After building both, so the initial weights do not depend on the strategy.
                g = st.with_synchronized_bn(g)
                d = st.with_synchronized_bn(d) if d is not None else None
            self.generator = g
            self.ema = EMA(g, float(get_path(cfg, "train.ema_decay", 0.999))) if get_path(cfg, "train.ema", False) else None
            content = make_loss_terms(cfg["loss"])
            mp = self.policy == "mixed_float16"
            self.g_optimizer = make_optimizer(cfg["optimizer"], cfg.get("schedule", {}), steps, mp)
            multipliers = cfg["optimizer"].get("lr_multipliers")
            objects = {"generator": g, "g_optimizer": self.g_optimizer}
            if self.kind == "gan":
                from srkeras.training.gan import GANTrainer

                self.discriminator = d
                self.d_optimizer = make_optimizer(cfg.get("d_optimizer", cfg["optimizer"]), cfg.get("d_schedule", cfg.get("schedule", {})), steps, mp)
                trainer = GANTrainer(g, d, content, gan.get("adversarial", "standard"), float(gan.get("adversarial_weight", 1e-3)), self.ema, multipliers)
                trainer.compile(g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer, jit_compile=bool(run.get("jit_compile")))
                self.d_optimizer.build(d.trainable_variables)
                objects.update(discriminator=d, d_optimizer=self.d_optimizer)
            else:
                from srkeras.training.supervised import SupervisedTrainer

                self.discriminator = None
                trainer = SupervisedTrainer(g, content, self.ema, multipliers)
                trainer.compile(optimizer=self.g_optimizer, jit_compile=bool(run.get("jit_compile")))
            self.g_optimizer.build(g.trainable_variables)
            if self.ema is not None:
                objects["ema"] = self.ema.shadow
            self.trainer = trainer
            self.checkpoint = TrainingCheckpoint(self.run_dir / "checkpoints", max_to_keep=int(get_path(cfg, "train.keep_checkpoints", 3)), **objects)
            self.start_step = self.checkpoint.restore()
            if self.start_step == 0:
                self._init_from()
            else:
                self.log(f"resuming from {self.checkpoint.latest} (step {self.start_step}, optimizer iterations {int(np.asarray(self.g_optimizer.iterations.numpy()))})")

    def _check_init_from(self):
        """Two-stage recipes need the first stage's generator (checked before anything is built)."""
        if (self.run_dir / "checkpoints" / "checkpoint").exists():
            return None  # resuming: the checkpoint has the weights
        spec = self.cfg["run"].get("init_from")
        first = self.cfg["recipe"].get("init_from")
        if spec in (None, "") and first:
            raise TrainingError(
                f"recipe {self.cfg['recipe']['name']!r} starts from a trained {first!r} generator (two-stage training): "
                f"train it first (--recipe {first} --out RUN1) and pass --init-from RUN1/model.keras, "
                "or --init-from none to start from random weights"
            )
        return None if spec in (None, "", "none") else resolve_init_path(spec)

    def _init_from(self):
        path = self._check_init_from()
        if path is None:
            return
        import keras

        src = keras.models.load_model(path, compile=False)
        src_w, dst = src.get_weights(), self.generator.weights
        if len(src_w) != len(dst) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(src_w, dst)):
            raise TrainingError(f"--init-from {path}: its model ({src.name}) does not match {self.generator.name} (layer shapes differ)")
        self.generator.set_weights(src_w)
        if self.ema is not None:
            self.ema.reset()
        self.log(f"initialised the generator from {path}")

    def dataset(self):
        from srkeras.data import dataset as ds

        if self.replicas == 1:
            return ds.training_dataset(self.cache, self.spec, self.start_step)
        return self.strategy.distribute_datasets_from_function(ds.replica_dataset_fn(self.cache, self.spec, self.start_step))

    # ---- validation and export -------------------------------------------------------------------

    def averaged(self):
        return self.ema.swapped() if self.ema is not None else contextlib.nullcontext()

    def lr_now(self) -> float:
        return float(np.asarray(self.g_optimizer.learning_rate))

    def validate_now(self):
        from srkeras.training.callbacks import validate

        st = self.state
        with self.averaged():
            metrics, samples = validate(self.generator, self.val_images, self.scale, self.spec.degradation, keep=3)
        st.val = metrics
        st.last_val_step = st.step
        self.tb.log_validation(metrics, samples, self.scale)
        if metrics["psnr"] > float(self.checkpoint.best_psnr.numpy()):
            self.checkpoint.best_psnr.assign(metrics["psnr"])
            self.export(self.run_dir / "best.keras")
            write_json(self.run_dir / "best.json", {"step": st.step, **metrics})
        return metrics

    def weights_finite(self) -> bool:
        return all(bool(np.all(np.isfinite(np.asarray(w)))) for w in self.generator.trainable_weights)

    def export(self, path: Path):
        with self.averaged():
            model = exportable(self.generator)
        save_model_atomic(model, path)

    # ---- training --------------------------------------------------------------------------------

    def train(self) -> dict:
        from srkeras.training import callbacks as cb

        cfg = self.cfg
        total = int(cfg["train"]["steps"])
        self.state = st = cb.RunState(self.start_step, total, started=self.created)
        every = lambda k, d: int(get_path(cfg, f"train.{k}", d) or 0)  # noqa: E731
        self.tb = cb.TensorBoardLog(st, self.run_dir / "tensorboard", every("log_every", 100), self.lr_now)
        self.csv = cb.CSVLog(st, self.run_dir / "metrics.csv", every("log_every", 100), self.lr_now)
        ckpt_cb = cb.PeriodicCheckpoint(st, self.checkpoint, every("checkpoint_every", 1000), self.weights_finite)
        bar = cb.ProgressBar(st, self.progress, desc=f"{cfg['recipe']['name']} x{self.scale}")
        # The checkpoint comes after validation and logging: a run killed at any instant resumes
        # from a step whose CSV row is already written (rows past it are dropped on resume), so
        # metrics.csv never loses a step.
        callbacks = [
            cb.StepCounter(st),
            cb.NaNGuard(st),
            cb.Validation(st, self, every("val_every", 1000)),
            self.csv,
            self.tb,
            ckpt_cb,
            cb.TimeBudget(st, cfg["run"].get("max_minutes")),
            bar,
        ]
        remaining = total - self.start_step
        t0 = time.monotonic()
        if remaining > 0 and not (cfg["run"].get("max_minutes") is not None and float(cfg["run"]["max_minutes"]) <= 0):
            self.trainer.fit(self.dataset(), epochs=1, steps_per_epoch=remaining, callbacks=callbacks, verbose=0, shuffle=False)
        else:
            st.stop_reason = st.stop_reason or "done"
        bar.close()
        train_s = time.monotonic() - t0
        if st.failed:
            latest = self.checkpoint.latest
            raise NonFiniteError(
                f"stopped: {st.failed}. Nothing was saved after it; the last good checkpoint is "
                f"{latest or '(none yet)'}. Lower the learning rate (--lr or --set optimizer.lr=...) and "
                "re-run the same command to resume from it."
            )
        return self.finish(train_s)

    def finish(self, train_s: float) -> dict:
        st = self.state
        st.stop_reason = st.stop_reason or ("steps" if st.step >= st.total_steps else "stopped")
        if st.last_saved != st.step and st.step > 0:
            if not self.weights_finite():
                raise NonFiniteError(f"weights are not finite at step {st.step}; kept the last good checkpoint {self.checkpoint.latest}")
            self.checkpoint.save(st.step)
            st.last_saved = st.step
        if self.val_images and st.last_val_step != st.step:
            self.validate_now()
        if st.last_logs:
            self.csv.write(force=True)
        self.export(self.run_dir / "model.keras")
        steps_done = st.step - self.start_step
        summary = {
            "recipe": self.cfg["recipe"]["name"],
            "step": st.step,
            "total_steps": st.total_steps,
            "stop_reason": st.stop_reason,
            "steps_this_run": steps_done,
            "train_seconds_this_run": round(train_s, 2),
            "patches_per_second": round(steps_done * self.spec.global_batch / train_s, 2) if train_s > 0 and steps_done else None,
            "strategy": type(self.strategy).__name__,
            "replicas": self.replicas,
            "precision": self.policy,
            "val": st.val or None,
            "best_val_psnr": (lambda b: None if math.isinf(b) else b)(float(self.checkpoint.best_psnr.numpy())),
            "model": str(self.run_dir / "model.keras"),
            "optimizer_iterations": int(np.asarray(self.g_optimizer.iterations.numpy())),
        }
        write_json(self.run_dir / "summary.json", summary)
        self.tb.writer.flush()
        return summary


def _diff_keys(a, b, prefix=""):
    keys = set(a) | set(b) if isinstance(a, dict) and isinstance(b, dict) else set()
    if not keys:
        return [prefix.rstrip(".")] if a != b else []
    out = []
    for k in keys:
        out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.") if isinstance(a.get(k), dict) or isinstance(b.get(k), dict) else ([f"{prefix}{k}"] if a.get(k) != b.get(k) else [])
    return out


def train(cfg: dict, run_dir, train_source, val_source=None, progress: bool = True, log=print, devices=None) -> dict:
    """Set up and run a job (resuming when ``run_dir`` holds its checkpoints); returns the summary."""
    run = Run(cfg, run_dir, train_source, val_source, progress=progress, log=log, devices=devices)
    run.setup()
    return run.train()
