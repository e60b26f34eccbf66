"""Multi-worker training: which cluster this process is part of, and the rules that keep workers in step.

* **Selecting multi-worker.** ``TF_CONFIG`` (one JSON per process: the cluster's ``worker`` (and
  optional ``chief``) addresses and this process's task) or a Slurm job step with more than one task
  (``srun``; :class:`tf.distribute.cluster_resolver.SlurmClusterResolver`) makes ``--strategy auto``
  a ``MultiWorkerMirroredStrategy`` (:func:`resolver_from_env`).
* **Data.** Every worker builds the same global-batch stream from the same seed and takes its own
  slice of each batch (:func:`srkeras.data.dataset.replica_dataset_fn`): the workers draw different
  crops, and the union of their per-replica batches is the global batch one process would train on,
  so N workers train like one process with the same ``--batch-size`` (the global batch).
* **Outputs.** Only the chief (task ``chief``, else ``worker`` 0) writes the run directory. The other
  workers run every step the chief runs -- saving involves collectives, so all must save, validate and
  export -- but write into a private temporary folder (:func:`scratch_dir`), checkpoints deleted right
  after each save and the folder removed at the end. They *read* the run directory (resume), so it
  must be the same shared folder on every machine.
* **Failures.** A worker that dies stops sending heartbeats to the coordination service (or resets
  its connections); collectives are aborted on the others within seconds, and a collective that waits
  longer than ``run.collective_timeout`` (a stuck worker) is aborted too. :func:`lost_worker_message`
  turns the error into a message naming the lost worker(s).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from srkeras.training.errors import TrainingError, WorkerLostError

# Errors a collective raises when a peer is gone or a collective timed out.
LOST_ERRORS = ("UnavailableError", "DeadlineExceededError", "AbortedError", "CancelledError", "InternalError")


def slurm_tasks() -> int:
    """Number of tasks of the Slurm job step this process runs in (0 outside ``srun``)."""
    if "SLURM_PROCID" not in os.environ:
        return 0
    for key in ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def visible_gpus(env=None) -> list[str]:
    """GPU ids this launcher may hand out: ``CUDA_VISIBLE_DEVICES`` if set, else those ``nvidia-smi -L`` lists."""
    env = os.environ if env is None else env
    if "CUDA_VISIBLE_DEVICES" in env:
        return [g.strip() for g in env["CUDA_VISIBLE_DEVICES"].split(",") if g.strip() and g.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU "))]


def multiworker_requested() -> bool:
    return bool(os.environ.get("TF_CONFIG")) or slurm_tasks() > 1


def resolver_from_env():
    """The cluster resolver for this process: ``TF_CONFIG`` first, else a multi-task Slurm step."""
    import tensorflow as tf

    raw = os.environ.get("TF_CONFIG")
    if raw:
        try:
            conf = json.loads(raw)
            cluster, task = conf["cluster"], conf["task"]
            task["type"], int(task["index"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"TF_CONFIG is not a valid cluster configuration ({type(e).__name__}: {e}); "
                             'expected {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}') from None
        if not (cluster.get("worker") or cluster.get("chief")):
            raise ValueError("TF_CONFIG names no 'worker' (or 'chief') addresses in its cluster")
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if slurm_tasks() > 1:
        port = int(os.environ.get("SRKERAS_SLURM_PORT", "8888"))
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver
        if visible_gpus():
            return resolver(port_base=port)  # GPUs of a node split between its tasks (CUDA_VISIBLE_DEVICES)
        # CPU nodes (no nvidia-smi): TensorFlow pairs each task of a node with a GPU slot; give it enough.
        return resolver(port_base=port, gpus_per_node=1024, gpus_per_task=1, auto_set_gpu=False)
    raise ValueError("--strategy multiworker needs the TF_CONFIG environment variable (cluster and task) "
                     "or a Slurm job step with several tasks (srun)")


def make_strategy(timeout_s: float | None):
    """``MultiWorkerMirroredStrategy`` for this process's cluster, collectives bounded by ``timeout_s``."""
    import tensorflow as tf

    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_s or None)
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver_from_env(), communication_options=options)


@dataclasses.dataclass(frozen=True)
class Cluster:
    """Where this process stands in its cluster (one worker, chief, for a plain strategy)."""

    task_type: str | None = None
    task_id: int = 0
    addresses: tuple = ()  # ("job:index", "host:port") of every task, chief first
    is_chief: bool = True

    @property
    def workers(self) -> int:
        return max(1, len(self.addresses))

    @property
    def multi(self) -> bool:
        return len(self.addresses) > 1

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.task_id}" if self.task_type else "worker 0"


def cluster_of(strategy) -> Cluster:
    """The :class:`Cluster` of ``strategy`` (a single chief worker unless it is multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not spec or resolver.task_type is None:
        return Cluster()
    addresses = []
    for job in ("chief", "worker"):
        tasks = spec.get(job) or []
        items = tasks.items() if isinstance(tasks, dict) else enumerate(tasks)
        addresses += [(f"{job} {i}", addr) for i, addr in sorted(items)]
    task_type, task_id = resolver.task_type, int(resolver.task_id)
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in spec)
    return Cluster(task_type, task_id, tuple(addresses), chief)


def scratch_dir(cluster: Cluster) -> Path:
    """A non-chief worker's private folder for the files it must write and nobody reads (removed at the end)."""
    return Path(tempfile.mkdtemp(prefix=f"srkeras-{cluster.task_type}{cluster.task_id}-"))


def remove_scratch(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


_GATHER: dict = {}  # (id(strategy), value) -> its traced all-gather (TimeBudget asks 0 or 1 every step)


def agree(strategy, value: float, op: str = "MAX") -> float:
    """``value`` reduced (MAX or MIN) over every replica of every worker: a collective all workers
    must call together, at the same point."""
    import tensorflow as tf

    key = (id(strategy), float(value))
    if key not in _GATHER:

        @tf.function
        def gather():
            return tf.distribute.get_replica_context().all_gather(tf.constant([float(value)], tf.float64), axis=0)

        _GATHER[key] = gather
    values = strategy.experimental_local_results(strategy.run(_GATHER[key]))[0].numpy()
    return float(values.min() if op == "MIN" else values.max())


def reachable(address: str, timeout_s: float = 3.0) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def lost_workers(error: BaseException, cluster: Cluster) -> list[str]:
    """The workers the error names as down (``/job:worker/replica:0/task:1``), else those that do not
    accept connections any more; never this process itself."""
    text = str(error)
    named = {(m.group(1), int(m.group(2))) for m in re.finditer(r"/job:(\w+)/replica:\d+/task:(\d+)", text)}
    me = (cluster.task_type, cluster.task_id)
    out = []
    for label, addr in cluster.addresses:
        job, idx = label.split()
        key = (job, int(idx))
        if key == me:
            continue
        if key in named and ("unhealthy" in text or "down" in text):
            out.append(f"{label} ({addr})")
    if not out:
        out = [f"{label} ({addr})" for label, addr in cluster.addresses if tuple(label.split()) != (me[0], str(me[1])) and not reachable(addr)]
    return out


def check_same_step(strategy, cluster: Cluster, start_step: int, run_dir) -> None:
    """Every worker must resume from the same step (they read one shared RUN_DIR)."""
    low, high = agree(strategy, start_step, "MIN"), agree(strategy, start_step, "MAX")
    if low != high:
        raise TrainingError(
            f"{cluster.name} would resume from step {start_step}, but the workers found steps {low:.0f} to "
            f"{high:.0f} in their --out {run_dir}: every worker must see the same run directory (a shared folder)"
        )


def lost_worker_error(error: BaseException, cluster: Cluster, step: int, run_dir, timeout_s) -> WorkerLostError | None:
    """The :class:`WorkerLostError` for an error a collective raised (None for any other error)."""
    import tensorflow as tf

    if not (cluster.multi and isinstance(error, tf.errors.OpError) and type(error).__name__ in LOST_ERRORS):
        return None
    latest = tf.train.latest_checkpoint(str(Path(run_dir) / "checkpoints"))
    return WorkerLostError(lost_worker_message(error, cluster, step, latest, timeout_s))


def lost_worker_message(error: BaseException, cluster: Cluster, step: int, latest: str | None, timeout_s) -> str:
    lost = lost_workers(error, cluster)
    first = next((ln.strip() for ln in str(error).splitlines() if "aborted" in ln.lower() or "timed out" in ln.lower()), "")
    if lost:
        what = f"lost {', '.join(lost)}"
    elif "timed out" in str(error).lower():
        what = f"a collective operation waited more than {timeout_s or 0:g} s (--collective-timeout) for the other workers"
    else:
        what = "lost contact with another worker"
    return (
        f"{cluster.name}: {what}; stopped at step {step}. {first}\n"
        f"The last checkpoint is {latest or '(none yet)'}: start all {cluster.workers} workers again with the "
        "same command to resume from it."
    )
