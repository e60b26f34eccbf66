"""Build and run a training job from a resolved recipe: data, strategy, models, losses, optimizers,
trainer, checkpoint/resume, callbacks, final validation and export.

The recipe travels as its typed form :class:`srkeras.recipes.Recipe` (defaults in one place, built
by :func:`srkeras.recipes.configure_run`); its :attr:`~srkeras.recipes.Recipe.config` dict is what
``config.json`` records. ``Run.setup`` = data, models, trainer, restore. Files are written
atomically (:func:`srkeras.files.write_atomically`).

RUN_DIR layout: ``config.json`` (resolved recipe and run options), ``checkpoints/`` (resume state),
``metrics.csv``, ``tensorboard/``, ``model.keras`` (the generator, NHWC, EMA weights if enabled),
``best.keras`` + ``best.json`` (best validation PSNR so far) and ``summary.json``.

Multi-worker (:mod:`srkeras.training.cluster`): every worker runs the same steps, saves and exports;
only the chief writes RUN_DIR (``out_dir``), the others a scratch folder removed at the end.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path

import numpy as np

from srkeras.models.graph import all_layers, rebuild
from srkeras.recipes import Recipe
from srkeras.training import errors, resume
from srkeras.training.builders import OPTIMIZERS, apply_learning_rate, make_loss_terms, make_optimizer, make_schedule
from srkeras.training.errors import EXIT_NAN, EXIT_WORKER_LOST, NonFiniteError, TrainingError, WorkerLostError  # noqa: F401
from srkeras.training.resume import RESUMABLE_KEYS

__all__ = [
    "EXIT_NAN", "EXIT_WORKER_LOST", "OPTIMIZERS", "RESUMABLE_KEYS", "NonFiniteError", "Run", "TrainingError", "WorkerLostError", "exportable",
    "make_loss_terms", "make_optimizer", "make_schedule", "save_model_atomic", "train", "write_json",
]  # fmt: skip


def exportable(model):
    """A float32 copy of ``model`` with plain (unsynchronised) BatchNorm, outside any strategy."""
    import keras

    def config_of(layer):
        cfg = layer.get_config()
        if isinstance(layer, keras.layers.BatchNormalization):
            cfg["synchronized"] = False
        if "dtype" in cfg:
            cfg["dtype"] = "float32"
        return cfg

    copy = rebuild(model, config_of)
    assert len(list(all_layers(copy))) == len(list(all_layers(model)))
    return copy


def save_model_atomic(model, path: Path):
    """``model.save`` to a temporary ``.keras`` file beside ``path``, then renamed onto it."""
    errors.write_run_file(path, lambda tmp: model.save(tmp))


def write_json(path: Path, data: dict):
    text = json.dumps(data, indent=2, sort_keys=False, default=str)
    errors.write_run_file(path, lambda tmp: Path(tmp).write_text(text))


def init_model_path(spec: str) -> Path:
    """The ``.keras`` file of ``--init-from`` (the file, or a RUN_DIR's ``model.keras``)."""
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
    """One training job of ``recipe`` (:class:`srkeras.recipes.Recipe`, its ``run`` holding the run
    options: strategy, mixed_precision, jit_compile, max_minutes, init_from, ...); ``recipe.config``
    is what ``config.json`` records.

    :meth:`setup` = :meth:`setup_data`, :meth:`setup_models`, :meth:`setup_trainer`, :meth:`restore`.
    """

    def __init__(self, recipe: Recipe, run_dir, train_source, val_source=None, progress: bool = True, log=print, devices=None):
        self.recipe = recipe
        self.run_dir = Path(run_dir)
        self.out_dir = self.run_dir  # where this process writes: RUN_DIR, or a non-chief worker's scratch folder
        self.train_source = train_source  # list of folders, or {name: HR array}
        self.val_source = val_source  # folder, {name: HR array} or None
        self.progress = progress
        self.log = log
        self.devices = devices
        self.val_images = []
        self.discriminator = None
        self.d_optimizer = None
        self.created = time.monotonic()  # --max-minutes counts from here (data loading and model building included)
        from srkeras.training.cluster import Cluster

        self.cluster = Cluster()  # one worker, the chief, until setup() finds a multi-worker strategy

    # ---- configuration -------------------------------------------------------------------------

    @property
    def scale(self) -> int:
        return self.recipe.model.scale

    @property
    def kind(self) -> str:
        return self.recipe.kind

    def check_config(self):
        """Refuse a run folder that holds another run; what may change on resume (the learning rate
        included) is recorded in ``config.json`` once the step it takes effect from is known (reads only:
        :meth:`open_outputs` writes)."""
        self.previous = resume.previous_config(self.run_dir)
        self.changes = {}
        if self.previous is not None:
            try:
                self.changes = resume.resume_changes(self.previous, self.recipe.config, self.recipe)
            except TrainingError as e:
                raise TrainingError(f"{self.run_dir}: {e}") from None

    def open_outputs(self):
        """The chief writes RUN_DIR (``config.json`` of a new run at once); another worker a scratch folder."""
        from srkeras.training import cluster as cl

        self.cluster = cl.cluster_of(self.strategy)
        self.out_dir = self.run_dir if self.cluster.is_chief else cl.scratch_dir(self.cluster)
        with errors.writing(self.out_dir):
            self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.previous is None:
            write_json(self.out_dir / "config.json", resume.record(self.recipe.config, None, {}, 0))

    def close(self):
        """Remove a non-chief worker's scratch folder."""
        from srkeras.training import cluster as cl

        if self.out_dir != self.run_dir:
            cl.remove_scratch(self.out_dir)

    # ---- setup ---------------------------------------------------------------------------------

    def setup(self):
        """Check the run directory, then build data, models and trainer and restore (or initialise) them."""
        import keras

        from srkeras.training import strategy as st

        self._check_init_from()
        self.check_config()
        self.policy = st.set_mixed_precision(self.recipe.run.mixed_precision, log=self.log)
        run = self.recipe.run
        self.strategy = st.make_strategy(run.strategy, devices=self.devices, collective_timeout=run.collective_timeout)
        self.replicas = self.strategy.num_replicas_in_sync
        self.open_outputs()
        keras.utils.set_random_seed(self.recipe.train.seed)
        self.setup_data()
        with self.strategy.scope():
            self.setup_models()
            self.setup_trainer()
            self.restore()
        if self.cluster.multi:
            from srkeras.training import cluster as cl

            cl.check_same_step(self.strategy, self.cluster, self.start_step, self.run_dir)

    def setup_data(self):
        """The patch pipeline spec, the cached training images and the validation images."""
        from srkeras.data import dataset as ds

        r = self.recipe
        self.spec = ds.PipelineSpec(
            hr_patch=r.data.hr_patch,
            scale=self.scale,
            global_batch=r.data.batch,
            degradation=r.data.degradation,
            channels=r.model.channels,
            augment=r.data.augment,
            seed=r.train.seed,
            blur_sigma=r.data.blur_sigma,
        )
        self.spec.check()
        if self.spec.global_batch % self.replicas:
            raise TrainingError(f"batch {self.spec.global_batch} is not divisible by the {self.replicas} replicas")
        if isinstance(self.train_source, dict):
            self.cache = ds.ImageCache.from_arrays(list(self.train_source.values()), list(self.train_source), self.spec.hr_patch)
        else:
            self.cache = ds.load_hr_folders(self.train_source, self.spec.hr_patch, progress=self.progress)
        if self.cache.skipped:
            n = len(self.cache.skipped)
            self.log(f"{n} unusable training file{'s' * (n > 1)} skipped (training on the other {len(self.cache)} images):")
            for msg in self.cache.skipped:
                self.log(f"  skipped training image: {msg}")
        if self.val_source is not None:
            self.val_images, skipped = ds.load_validation(self.val_source, self.scale, r.train.val_max_images)
            for msg in skipped:
                self.log(f"skipped validation image: {msg}")

    def setup_models(self):
        """Generator, discriminator (GAN recipes) and the EMA of the generator, in the strategy scope."""
        from srkeras import models
        from srkeras.training import strategy as st
        from srkeras.training.ema import EMA

        r = self.recipe
        g = models.build(r.model.name, scale=self.scale, **r.model.options)
        d = None
        if r.gan is not None:
            d_options = {**r.gan.d_options, "input_size": self.spec.hr_patch, "channels": r.model.channels}
            d = models.build(r.gan.discriminator, **d_options)
        if self.replicas > 1 and r.run.sync_bn:
            # After building both, so the initial weights do not depend on the strategy.
            g = st.with_synchronized_bn(g)
            d = st.with_synchronized_bn(d) if d is not None else None
        self.generator, self.discriminator = g, d
        self.ema = EMA(g, r.train.ema_decay) if r.train.ema else None

    def setup_trainer(self):
        """Losses, optimizers (slots built, so a checkpoint restores them at once) and the trainer."""
        r = self.recipe
        steps, mp = r.train.steps, self.policy == "mixed_float16"
        content = make_loss_terms(r.loss)
        multipliers = r.optimizer.lr_multipliers
        self.g_optimizer = make_optimizer(r.optimizer, r.schedule, steps, mp)
        if r.gan is not None:
            from srkeras.training.gan import GANTrainer

            self.d_optimizer = make_optimizer(r.d_optimizer, r.d_schedule, steps, mp)
            trainer = GANTrainer(self.generator, self.discriminator, content, r.gan.adversarial, r.gan.adversarial_weight, self.ema, multipliers)
            trainer.compile(g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer, jit_compile=r.run.jit_compile)
            self.d_optimizer.build(self.discriminator.trainable_variables)
        else:
            from srkeras.training.supervised import SupervisedTrainer

            trainer = SupervisedTrainer(self.generator, content, self.ema, multipliers)
            trainer.compile(optimizer=self.g_optimizer, jit_compile=r.run.jit_compile)
        self.g_optimizer.build(self.generator.trainable_variables)
        self.trainer = trainer

    def restore(self):
        """Resume from the latest checkpoint, else start from ``--init-from`` (or the random weights)."""
        from srkeras.training.checkpoint import CheckpointError, TrainingCheckpoint

        objects = {"generator": self.generator, "g_optimizer": self.g_optimizer}
        if self.discriminator is not None:
            objects.update(discriminator=self.discriminator, d_optimizer=self.d_optimizer)
        if self.ema is not None:
            objects["ema"] = self.ema.shadow
        keep = self.recipe.train.keep_checkpoints
        try:
            scratch = None if self.cluster.is_chief else self.out_dir
            self.checkpoint = TrainingCheckpoint(self.run_dir / "checkpoints", max_to_keep=keep, scratch=scratch, **objects)
            self.start_step = self.checkpoint.restore(log=self.log)
        except CheckpointError as e:
            raise TrainingError(str(e)) from None
        # The recipe's learning rate wins over the one the checkpoint holds (it may change on resume).
        apply_learning_rate(self.g_optimizer, self.recipe.optimizer, self.recipe.schedule)
        if self.d_optimizer is not None:
            apply_learning_rate(self.d_optimizer, self.recipe.d_optimizer, self.recipe.d_schedule)
        if self.start_step == 0:
            self._init_from()
        else:
            iterations = int(np.asarray(self.g_optimizer.iterations.numpy()))
            self.log(f"resuming from {self.checkpoint.latest} (step {self.start_step}, optimizer iterations {iterations})")
        if self.previous is not None:
            if self.changes:
                self.log(f"changed on resume, from step {self.start_step}: {resume.describe(self.changes)} (recorded in config.json)")
            write_json(self.out_dir / "config.json", resume.record(self.recipe.config, self.previous, self.changes, self.start_step))

    def _check_init_from(self):
        """Two-stage recipes need the first stage's generator (checked before anything is built)."""
        if (self.run_dir / "checkpoints" / "checkpoint").exists():
            return None  # resuming: the checkpoint has the weights
        spec = self.recipe.run.init_from
        first = self.recipe.recipe.init_from
        if spec in (None, "") and first:
            raise TrainingError(
                f"recipe {self.recipe.name!r} starts from a trained {first!r} generator (two-stage training): "
                f"train it first (--recipe {first} --out RUN1) and pass --init-from RUN1/model.keras, "
                "or --init-from none to start from random weights"
            )
        return None if spec in (None, "", "none") else init_model_path(spec)

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
            self.export(self.out_dir / "best.keras")
            write_json(self.out_dir / "best.json", {"step": st.step, **metrics})
        return metrics

    def lost_worker(self, error) -> WorkerLostError | None:
        """Multi-worker: the error a collective raised when a worker died or got stuck, naming it."""
        from srkeras.training import cluster as cl

        step = self.state.step if hasattr(self, "state") else getattr(self, "start_step", 0)
        return cl.lost_worker_error(error, self.cluster, step, self.run_dir, self.recipe.run.collective_timeout)

    def nonfinite(self) -> list[str]:
        """Parts of the saved state (weights, optimizer slots, EMA, discriminator) holding a NaN/Inf."""
        return self.checkpoint.nonfinite()

    def export(self, path: Path):
        with self.averaged():
            model = exportable(self.generator)
        save_model_atomic(model, path)

    # ---- training --------------------------------------------------------------------------------

    def train(self) -> dict:
        """Fit until the step count, ``--max-minutes`` or a NaN; then :meth:`finish`. Returns the summary."""
        from srkeras.training import callbacks as cb
        from srkeras.training import cluster as cl

        r = self.recipe
        total, max_minutes = r.train.steps, r.run.max_minutes
        self.state = st = cb.RunState(self.start_step, total, started=self.created, max_minutes=max_minutes)
        self.tb = cb.TensorBoardLog(st, self.out_dir / "tensorboard", r.train.log_every, self.lr_now)
        self.csv = cb.CSVLog(st, self.out_dir / "metrics.csv", r.train.log_every, self.lr_now)
        ckpt_cb = cb.PeriodicCheckpoint(st, self.checkpoint, r.train.checkpoint_every, self.nonfinite)
        bar = cb.ProgressBar(st, self.progress and self.cluster.is_chief, desc=f"{r.name} x{self.scale}")
        agree = (lambda value: cl.agree(self.strategy, value)) if self.cluster.multi else None
        # The checkpoint comes after validation and logging: a run killed at any instant resumes
        # from a step whose CSV row is already written (rows past it are dropped on resume), so
        # metrics.csv never loses a step.
        callbacks = [
            cb.StepCounter(st),
            cb.NaNGuard(st),
            cb.Validation(st, self, r.train.val_every),
            self.csv,
            self.tb,
            ckpt_cb,
            cb.TimeBudget(st, agree=agree),
            bar,
        ]
        remaining = total - self.start_step
        t0 = time.monotonic()
        if remaining > 0 and not (max_minutes is not None and max_minutes <= 0):
            self.trainer.fit(self.dataset(), epochs=1, steps_per_epoch=remaining, callbacks=callbacks, verbose=0, shuffle=False)
        else:
            st.stop_reason = st.stop_reason or "done"
        bar.close()
        train_s = time.monotonic() - t0
        if st.failed:
            latest = self.checkpoint.latest
            raise NonFiniteError(
                f"stopped: {st.failed}. Nothing was saved after it; the last good checkpoint is "
                f"{latest or '(none yet)'}. Lower the learning rate (now {self.recipe.optimizer.lr:g}; --lr or "
                "--set optimizer.lr=...) and re-run the command to resume from it (the change is recorded in config.json)."
            )
        return self.finish(train_s)

    def finish(self, train_s: float) -> dict:
        st = self.state
        st.stop_reason = st.stop_reason or ("steps" if st.step >= st.total_steps else "stopped")
        if st.last_saved != st.step and st.step > 0:
            bad = self.nonfinite()
            if bad:
                raise NonFiniteError(f"NaN/Inf in {', '.join(bad)} at step {st.step}; kept the last good checkpoint {self.checkpoint.latest}")
            self.checkpoint.save(st.step)
            st.last_saved = st.step
        if self.val_images and st.last_val_step != st.step:
            self.validate_now()
        if st.last_logs:
            self.csv.write(force=True)
        self.export(self.out_dir / "model.keras")
        steps_done = st.step - self.start_step
        summary = {
            "recipe": self.recipe.name,
            "step": st.step,
            "total_steps": st.total_steps,
            "stop_reason": st.stop_reason,
            "steps_this_run": steps_done,
            "train_seconds_this_run": round(train_s, 2),
            "patches_per_second": round(steps_done * self.spec.global_batch / train_s, 2) if train_s > 0 and steps_done else None,
            "strategy": type(self.strategy).__name__,
            "replicas": self.replicas,
            "workers": self.cluster.workers,
            "task": self.cluster.name,
            "chief": self.cluster.is_chief,
            "precision": self.policy,
            "val": st.val or None,
            "best_val_psnr": (lambda b: None if math.isinf(b) else b)(float(self.checkpoint.best_psnr.numpy())),
            "model": str(self.run_dir / "model.keras"),
            "optimizer_iterations": int(np.asarray(self.g_optimizer.iterations.numpy())),
        }
        write_json(self.out_dir / "summary.json", summary)
        self.tb.writer.flush()
        return summary


def train(recipe: Recipe, run_dir, train_source, val_source=None, progress: bool = True, log=print, devices=None) -> dict:
    """Set up and run a job of ``recipe`` (resuming when ``run_dir`` holds its checkpoints); returns the summary."""
    run = Run(recipe, run_dir, train_source, val_source, progress=progress, log=log, devices=devices)
    try:
        run.setup()
        return run.train()
    except errors.OutputError as e:  # the checkpoints written before it are intact
        latest = getattr(getattr(run, "checkpoint", None), "latest", None) or "(none yet)"
        raise errors.OutputError(f"{e}; the last good checkpoint is {latest}: free some space (or fix the folder) and re-run to resume") from None
    except Exception as e:  # noqa: BLE001 - a lost worker is reported by name; anything else as it is
        lost = run.lost_worker(e)
        if lost is None:
            raise
        raise lost from None
    finally:
        run.close()
