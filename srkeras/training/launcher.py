"""``--workers N``: N local worker processes of one multi-worker run, the way to test on one machine
and the template for a real cluster (where each machine runs the same command with its own TF_CONFIG).

Each worker is ``python -m pipelines.train`` with the same arguments (``--workers`` left out) and a
generated ``TF_CONFIG``: the cluster ``{"worker": ["localhost:P0", ..., "localhost:PN-1"]}`` on free
ports and its own ``{"task": {"type": "worker", "index": i}}``. Worker 0 is the chief: its output
(the progress bar, the messages) is streamed; the others' go to log files, whose tail is shown if
one fails. On a GPU machine each worker gets its own GPU (``CUDA_VISIBLE_DEVICES``); on CPU each
worker sees the one CPU device and gets ``cores / N`` TensorFlow threads.

Every worker started is stopped when the launcher ends: normally, when a worker fails (the others
cannot go on without it), on Ctrl-C / SIGTERM, and -- on Linux -- if the launcher itself is killed.
A worker that was killed (a signal) ends the launcher with the exit status of a lost worker
(:data:`~srkeras.training.errors.EXIT_WORKER_LOST`, 4), one that failed with its own status. Each
worker's ``TMPDIR`` is a folder inside the launcher's, so what a killed worker could not remove
(its scratch folder) goes with the launcher's folder. Imports no TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from srkeras.training.cluster import visible_gpus
from srkeras.training.errors import EXIT_WORKER_LOST

GRACE_S = 10.0  # how long a worker may take to exit after SIGTERM before SIGKILL
FINISH_WAIT_S = 120.0  # how long the others may take to finish after the chief finished


def free_ports(n: int, host: str = "localhost") -> list[int]:
    """``n`` distinct ports free on ``host`` now (bound together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tf_configs(ports, host: str = "localhost") -> list[str]:
    """One ``TF_CONFIG`` value per worker: the same cluster, each its own task index (0 = chief)."""
    cluster = {"worker": [f"{host}:{p}" for p in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(len(ports))]


def worker_env(index: int, n: int, tf_config: str, gpus, cores: int, base=None, tmp=None) -> dict:
    """The environment of worker ``index`` of ``n`` (``tmp``: its ``TMPDIR``)."""
    env = dict(os.environ if base is None else base)
    env["TF_CONFIG"] = tf_config
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
        if n > len(gpus):
            env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # several workers share a GPU
    threads = str(max(1, cores // n))
    for key in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        env.setdefault(key, threads)
    return env


def without_workers_flag(argv) -> list[str]:
    """``argv`` with ``--workers N`` / ``--workers=N`` removed."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--workers":
            skip = True
        elif not a.startswith("--workers="):
            out.append(a)
    return out


def _die_with_parent():
    """In the child: be killed when the launcher dies (Linux), so no worker outlives it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalCluster:
    """N worker processes started together; :meth:`stop` ends every one still running."""

    def __init__(self, argv, n: int, module: str = "pipelines.train", log=print, cwd=None):
        self.n, self.log = n, log
        self.logdir = Path(tempfile.mkdtemp(prefix="srkeras-workers-"))
        ports = free_ports(n)
        gpus = visible_gpus()
        if gpus and n > len(gpus):
            log(f"note: {n} workers share {len(gpus)} GPU(s)")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.addresses = [f"localhost:{p}" for p in ports]
        self.procs, self.logs = [], []
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        for i, conf in enumerate(tf_configs(ports)):
            tmp = self.logdir / f"tmp-{i}"
            tmp.mkdir()
            env = worker_env(i, n, conf, gpus, cores, tmp=tmp)
            out = None if i == 0 else open(self.logdir / f"worker-{i}.log", "wb")  # noqa: SIM115 - closed in stop()
            self.logs.append(out)
            cmd = [sys.executable, "-m", module, *argv]
            # Own session: a Ctrl-C in the terminal reaches the launcher, which stops the workers in order.
            self.procs.append(subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT if out else None,
                                               start_new_session=True, preexec_fn=preexec))

    def tail(self, i: int, lines: int = 25) -> str:
        path = self.logdir / f"worker-{i}.log"
        if not path.exists():
            return ""
        text = [ln if len(ln) <= 300 else ln[:300] + " ..." for ln in path.read_text(errors="replace").splitlines()]
        errors = [ln for ln in text if ln.startswith("error:")]  # the worker's own message, if it gave one
        return "\n".join(f"  [worker {i}] {ln}" for ln in (errors or text[-lines:]))

    def wait(self, poll_s: float = 0.2) -> int:
        """Until the chief and every other worker ended; a failed worker stops the rest. The exit status."""
        finished_at = None
        while True:
            codes = [p.poll() for p in self.procs]
            failed = [i for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i = failed[0]
                how = f"was killed by signal {-codes[i]}" if codes[i] < 0 else f"exited with status {codes[i]}"
                self.log(f"worker {i} ({self.addresses[i]}) {how}; stopping the other workers "
                         "(re-run the same command to resume from the last checkpoint)")  # fmt: skip
                if i:
                    self.log(self.tail(i))
                self.stop()
                return codes[i] if codes[i] > 0 else EXIT_WORKER_LOST
            if all(c == 0 for c in codes):
                return 0
            if codes[0] == 0:
                finished_at = finished_at or time.monotonic()
                if time.monotonic() - finished_at > FINISH_WAIT_S:
                    late = [i for i, c in enumerate(codes) if c is None]
                    self.log(f"worker(s) {late} still running {FINISH_WAIT_S:.0f} s after the chief finished; stopping them")
                    self.stop()
                    return 1
            time.sleep(poll_s)

    def stop(self) -> None:
        """SIGTERM every worker still running, SIGKILL those alive ``GRACE_S`` later; remove the logs."""
        alive = [p for p in self.procs if p.poll() is None]
        for p in alive:
            _signal(p, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        for p in alive:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(p, signal.SIGKILL)
                p.wait()
        for f in self.logs:
            if f is not None:
                f.close()
        shutil.rmtree(self.logdir, ignore_errors=True)


def _signal(proc, sig) -> None:
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass


def launch(argv, n: int, module: str = "pipelines.train", log=print) -> int:
    """Run ``module`` as ``n`` local workers of one cluster (``argv`` without ``--workers``); the exit status."""

    held = []

    def hold(signum, frame):
        held.append(signum)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    # While the workers start, SIGTERM / Ctrl-C are held, not raised: raised inside Popen, they would
    # lose a worker that exists but is not yet in the cluster's list, so stop() could not end it.
    old = {sig: signal.signal(sig, hold) for sig in (signal.SIGTERM, signal.SIGINT)}
    cluster = None
    try:
        cluster = LocalCluster(argv, n, module=module, log=log)
        for sig in old:
            signal.signal(sig, on_signal)
        if held:
            raise KeyboardInterrupt
        log(f"started {n} local workers ({', '.join(cluster.addresses)}); worker 0 is the chief")
        return cluster.wait()
    except KeyboardInterrupt:
        log("interrupted: stopping the workers (re-run the same command to resume from the last checkpoint)")
        return 130
    finally:
        if cluster is not None:
            cluster.stop()
        for sig, handler in old.items():
            signal.signal(sig, handler)
