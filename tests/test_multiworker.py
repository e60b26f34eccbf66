"""Multi-worker training (issue 15): ``--workers N`` local clusters, TF_CONFIG workers started by hand,
equality with one process, chief-only outputs, resume after ``kill -9``, a lost worker.

Every subprocess is bounded by a timeout and killed by its PID (its whole session) when a test ends.
The default suite runs the helpers' unit tests and one ESPCN comparison (two workers vs one process);
SRResNet (synchronised BatchNorm), SRGAN and the kill tests are ``slow``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-5

# Tiny recipes. SGD for the BatchNorm models: Adam divides by sqrt(v), which turns float rounding in a
# ~zero gradient (a conv bias before BatchNorm) into an lr-sized step (see tests/test_distribute.py).
SRRESNET = """
[recipe]
name = "tiny_srresnet"
kind = "supervised"
[model]
name = "srresnet"
scale = 2
options = { num_blocks = 1, num_features = 8 }
[data]
hr_patch = 16
batch = 4
augment = true
[train]
steps = 4
checkpoint_every = 2
val_every = 0
log_every = 1
seed = 3
[optimizer]
name = "sgd"
lr = 0.01
momentum = 0.9
[schedule]
kind = "constant"
[loss]
terms = [{ name = "mse", weight = 1.0 }]
"""
SRGAN = SRRESNET.replace('name = "tiny_srresnet"\nkind = "supervised"', 'name = "tiny_srgan"\nkind = "gan"') + """
[d_optimizer]
name = "sgd"
lr = 0.01
momentum = 0.9
[gan]
discriminator = "srgan_discriminator"
d_options = { num_features = 8 }
adversarial = "standard"
adversarial_weight = 0.1
"""
ESPCN = ["--recipe", "espcn", "--scale", "2", "--patch-size", "16", "--batch-size", "4", "--set", "model.options.n1=8",
         "--set", "model.options.n2=8", "--seed", "5"]  # fmt: skip
OUTPUTS = {"config.json", "metrics.csv", "model.keras", "summary.json", "checkpoints", "tensorboard"}


@pytest.fixture(scope="module")
def hr_dir(tmp_path_factory):
    from srkeras.data import save_image

    d = tmp_path_factory.mktemp("hr")
    rng = np.random.default_rng(0)
    for i in range(4):
        save_image(d / f"img{i}.png", rng.random((40 + 4 * i, 36, 3)).astype(np.float32))
    return d


def env(tmp: Path, **extra) -> dict:
    """The children's environment; TMPDIR is the test's own, to see that scratch folders are removed."""
    tmp.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO), "TMPDIR": str(tmp),
            "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", **extra}  # fmt: skip


def train_cmd(hr_dir, out, *args) -> list[str]:
    return [sys.executable, "-m", "pipelines.train", "--train-dir", str(hr_dir), "--out", str(out), "--quiet", *args]


@contextlib.contextmanager
def started(cmds_envs):
    """Start processes (each in its own session); on exit kill every one still running, by PID."""
    procs = []
    try:
        for cmd, e in cmds_envs:
            procs.append(subprocess.Popen(cmd, cwd=REPO, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            if p.stdout:
                p.stdout.close()


def run(cmd, e, timeout=240) -> subprocess.CompletedProcess:
    with started([(cmd, e)]) as (p,):
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"timed out after {timeout} s: {' '.join(cmd)}")
        return subprocess.CompletedProcess(cmd, p.returncode, out.decode(errors="replace"), "")


def weights(ckpt: Path) -> dict:
    """Every variable of a checkpoint (models, optimizers, step) by name, but the save counter."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(ckpt))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k.endswith("VARIABLE_VALUE") and not k.startswith(("save_counter", "best_psnr"))}


def max_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in zip(a, b))


def compare(one: Path, two: Path, step: int) -> dict:
    """Max abs difference of the final checkpoints' variables and of the exported generators' weights."""
    from srkeras.inference import load_generator

    a, b = weights(one / "checkpoints" / f"ckpt-{step}"), weights(two / "checkpoints" / f"ckpt-{step}")
    assert sorted(a) == sorted(b) and len(a) > 5
    m1, m2 = (load_generator(d / "model.keras").model for d in (one, two))
    w1, w2 = m1.get_weights(), m2.get_weights()  # BatchNorm moving statistics included
    assert len(w1) == len(w2)
    it = [k for k in a if k.startswith("g_optimizer/_iterations")]
    return {"max_abs_diff": max(max_diff([a[k] for k in a], [b[k] for k in a]), max_diff(w1, w2)),
            "iterations": [int(a[it[0]]), int(b[it[0]])], "variables": len(a)}


def scratch_left(tmp: Path) -> list[str]:
    """A non-chief worker's scratch folders left in its TMPDIR (TensorFlow's own autograph files aside)."""
    return [p.name for p in tmp.iterdir() if p.name.startswith("srkeras-")]


def two_workers_vs_one(hr_dir, tmp_path, args, steps: int) -> dict:
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = run(train_cmd(hr_dir, one, *args, "--strategy", "default"), env(tmp_path / "tmp1"))
    assert r1.returncode == 0, r1.stdout[-3000:]
    t0 = time.monotonic()
    r2 = run(train_cmd(hr_dir, two, *args, "--workers", "2"), env(tmp_path / "tmp2"))
    assert r2.returncode == 0, r2.stdout[-3000:]
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (one, two))
    assert (s1["replicas"], s1["workers"]) == (1, 1) and (s2["replicas"], s2["workers"]) == (2, 2)
    assert s1["step"] == s2["step"] == steps
    # Only the chief's run directory holds outputs; the other worker's scratch folder is gone.
    assert {p.name for p in two.iterdir()} >= OUTPUTS
    assert scratch_left(tmp_path / "tmp2") == []
    assert "started 2 local workers" in r2.stdout
    rows1, rows2 = ((d / "metrics.csv").read_text().splitlines() for d in (one, two))
    assert [r.split(",")[0] for r in rows1] == [r.split(",")[0] for r in rows2]
    return {**compare(one, two, steps), "seconds_two_workers": time.monotonic() - t0}


# --------------------------------------------------------------------------------------------------
# Helpers (no TensorFlow)
# --------------------------------------------------------------------------------------------------


def test_local_cluster_configs():
    from srkeras.training import launcher

    ports = launcher.free_ports(3)
    assert len(set(ports)) == 3
    confs = [json.loads(c) for c in launcher.tf_configs(ports)]
    assert all(c["cluster"] == {"worker": [f"localhost:{p}" for p in ports]} for c in confs)
    assert [c["task"] for c in confs] == [{"type": "worker", "index": i} for i in range(3)]
    assert launcher.without_workers_flag(["--recipe", "x", "--workers", "2", "--workers=3", "--quiet"]) == ["--recipe", "x", "--quiet"]


def test_worker_env_gpus_and_threads():
    from srkeras.training import launcher

    base = {"PATH": "/bin"}
    e = [launcher.worker_env(i, 2, "{}", ["0", "1"], 8, base=base) for i in range(2)]
    assert [x["CUDA_VISIBLE_DEVICES"] for x in e] == ["0", "1"]  # one GPU each
    assert e[0]["TF_NUM_INTRAOP_THREADS"] == "4" and "TF_FORCE_GPU_ALLOW_GROWTH" not in e[0]
    cpu = launcher.worker_env(1, 2, "{}", [], 2, base=base)
    assert "CUDA_VISIBLE_DEVICES" not in cpu and cpu["TF_NUM_INTRAOP_THREADS"] == "1"
    assert launcher.worker_env(2, 3, "{}", ["5"], 2, base=base)["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert launcher.visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert launcher.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_multiworker_selection(monkeypatch):
    from srkeras.training import cluster

    for k in ("TF_CONFIG", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"):
        monkeypatch.delenv(k, raising=False)
    assert not cluster.multiworker_requested()
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert not cluster.multiworker_requested()  # a one-task Slurm job trains as one process
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")
    assert cluster.slurm_tasks() == 4 and cluster.multiworker_requested()
    monkeypatch.setenv("SLURM_STEP_NODELIST", "node[1-2]")
    monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", "2(x2)")
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # CPU nodes: no nvidia-smi needed
    r = cluster.resolver_from_env()
    assert r.cluster_spec().as_dict() == {"worker": ["node1:8888", "node1:8889", "node2:8888", "node2:8889"]}
    assert (r.task_type, r.task_id) == ("worker", 3)
    monkeypatch.delenv("SLURM_PROCID")
    monkeypatch.setenv("TF_CONFIG", "not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not a valid"):
        cluster.resolver_from_env()


def test_lost_worker_named():
    from srkeras.training.cluster import Cluster, lost_workers

    c = Cluster("worker", 0, (("worker 0", "localhost:1"), ("worker 1", "localhost:2")), True)
    err = RuntimeError("Collective ops is aborted by: The following tasks are unhealthy (stopped sending heartbeats):\n"
                       "/job:worker/replica:0/task:1\nThe tasks have crashed.")
    assert lost_workers(err, c) == ["worker 1 (localhost:2)"]
    # Not named: the peer that no longer accepts connections (nothing listens on port 2 here).
    assert lost_workers(RuntimeError("recvmsg:Connection reset by peer"), c) == ["worker 1 (localhost:2)"]


def test_time_budget_is_decided_by_the_cluster():
    # Each worker's clock starts with its process: all stop at the step the first one is due.
    from srkeras.training.callbacks import RunState, TimeBudget

    class Model:
        stop_training = False

    for local_minutes, others_due, stops in [(1e-9, 0.0, True), (1e9, 1.0, True), (1e9, 0.0, False)]:
        seen = []
        st = RunState(0, 100, max_minutes=local_minutes)
        budget = TimeBudget(st, agree=lambda v, o=others_due, seen=seen: (seen.append(v), max(v, o))[1])
        budget.set_model(model := Model())
        budget.on_train_batch_end(0)
        assert seen == [1.0 if local_minutes < 1 else 0.0] and model.stop_training is stops and (st.stop_reason == "time") is stops


def test_workers_flag_refuses_tf_config(hr_dir, tmp_path):
    r = run(train_cmd(hr_dir, tmp_path / "o", *ESPCN, "--steps", "1", "--workers", "2"),
            env(tmp_path / "t", TF_CONFIG='{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}}'), timeout=60)
    assert r.returncode == 2 and "unset TF_CONFIG" in r.stdout


@pytest.mark.parametrize("seen", [1, 2])
def test_launcher_stops_its_workers_when_interrupted(hr_dir, tmp_path, seen):
    """Stopped once running (2 workers seen) and while still starting them (1 seen: the signal lands
    while the second Popen runs); every worker it started is ended and reaped before it exits."""
    with started([(train_cmd(hr_dir, tmp_path / "o", *ESPCN, "--steps", "100000", "--workers", "2"), env(tmp_path / "t"))]) as (proc,):
        deadline = time.monotonic() + 30
        while len(pids := worker_pids(proc.pid)) < seen and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(pids) >= seen
        os.kill(proc.pid, signal.SIGTERM)  # as Ctrl-C (SIGINT) does
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and b"stopping the workers" in out
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# --------------------------------------------------------------------------------------------------
# Two local workers train like one process
# --------------------------------------------------------------------------------------------------


def test_two_workers_match_one_process_espcn(hr_dir, tmp_path):
    r = two_workers_vs_one(hr_dir, tmp_path, [*ESPCN, "--steps", "6", "--checkpoint-every", "3", "--log-every", "2"], 6)
    print("espcn", r)
    assert r["iterations"] == [6, 6]
    assert r["max_abs_diff"] < TOL, r


@pytest.mark.slow
@pytest.mark.parametrize("name", ["srresnet", "srgan"])
def test_two_workers_match_one_process_bn_and_gan(hr_dir, tmp_path, name):
    recipe = tmp_path / f"tiny_{name}.toml"
    recipe.write_text(SRRESNET if name == "srresnet" else SRGAN)
    r = two_workers_vs_one(hr_dir, tmp_path, ["--recipe", str(recipe), "--init-from", "none"], 4)
    print(name, r)
    assert r["iterations"] == [4, 4]
    assert r["max_abs_diff"] < TOL, r


# --------------------------------------------------------------------------------------------------
# Kill and resume
# --------------------------------------------------------------------------------------------------


def latest_step(out: Path) -> int:
    state = out / "checkpoints" / "checkpoint"
    m = re.search(r'model_checkpoint_path: "ckpt-(\d+)"', state.read_text()) if state.exists() else None
    return int(m.group(1)) if m else 0


def wait_for_step(procs, out: Path, step: int, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while latest_step(out) < step and all(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(p.poll() is None for p in procs), "a worker ended before it could be killed"
    assert latest_step(out) >= step, f"no checkpoint {step} within {timeout} s"


def worker_pids(launcher_pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(launcher_pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


LONG = [*ESPCN, "--steps", "400", "--checkpoint-every", "20", "--log-every", "20"]


@pytest.mark.slow
def test_kill_9_both_workers_then_resume(hr_dir, tmp_path):
    out = tmp_path / "run"
    e = env(tmp_path / "tmp")
    with started([(train_cmd(hr_dir, out, *LONG, "--workers", "2"), e)]) as (launcher_proc,):
        wait_for_step([launcher_proc], out, 40)
        pids = worker_pids(launcher_proc.pid)
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        launcher_proc.wait(timeout=60)
        assert launcher_proc.returncode != 0
    killed_at = latest_step(out)
    assert 40 <= killed_at < 400 and not (out / "model.keras").exists()
    done = run(train_cmd(hr_dir, out, *LONG, "--workers", "2"), e, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"step {killed_at}, optimizer iterations {killed_at}" in done.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["step"] == 400 and s["optimizer_iterations"] == 400 and s["steps_this_run"] == 400 - killed_at
    steps = [int(r.split(",")[0]) for r in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(20, 401, 20))


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0])
def test_lost_worker_stops_the_other_with_its_name_then_resume(hr_dir, tmp_path, victim):
    """Workers started by hand with their TF_CONFIG, as on a cluster; one is killed (the chief too)."""
    from srkeras.training import launcher

    out = tmp_path / "run"
    ports = launcher.free_ports(2)
    cmds = [(train_cmd(hr_dir, out, *LONG), env(tmp_path / f"tmp{i}", TF_CONFIG=c)) for i, c in enumerate(launcher.tf_configs(ports))]
    survivor = 1 - victim
    with started(cmds) as procs:
        wait_for_step(procs, out, 40)
        os.kill(procs[victim].pid, signal.SIGKILL)
        t0 = time.monotonic()
        try:
            text, _ = procs[survivor].communicate(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {survivor} did not stop within 2 minutes of losing worker {victim}")
        elapsed = time.monotonic() - t0
    text = text.decode(errors="replace")
    print(f"worker {survivor} stopped {elapsed:.1f} s after worker {victim} was killed:", text.strip().splitlines()[-2:])
    assert procs[survivor].returncode == 4, text[-3000:]
    assert f"worker {survivor}: lost worker {victim} (localhost:{ports[victim]})" in text
    if survivor == 1:
        assert scratch_left(tmp_path / "tmp1") == []  # the non-chief's scratch folder is removed even then
    killed_at = latest_step(out)
    # Re-running both workers (new ports) resumes from the last checkpoint.
    done = run(train_cmd(hr_dir, out, *LONG, "--workers", "2"), env(tmp_path / "tmp3"), timeout=400)
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"step {killed_at}, optimizer iterations {killed_at}" in done.stdout
    assert json.loads((out / "summary.json").read_text())["optimizer_iterations"] == 400


def free_pair() -> int:
    """A port P with P and P + 1 free (the Slurm resolver numbers a node's tasks from a base port)."""
    import random
    import socket

    for _ in range(200):
        base = random.randint(30000, 60000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("localhost", base))
                b.bind(("localhost", base + 1))
            return base
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports")


@pytest.mark.slow
def test_slurm_job_step_trains_as_one_cluster(hr_dir, tmp_path):
    """Two tasks of a (simulated) one-node Slurm job step, no TF_CONFIG: SlurmClusterResolver's cluster."""
    base = free_pair()
    slurm = {"SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "localhost", "SLURM_STEP_TASKS_PER_NODE": "2",
             "SRKERAS_SLURM_PORT": str(base), "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip
    out = tmp_path / "run"
    cmds = [(train_cmd(hr_dir, out, *ESPCN, "--steps", "4"), env(tmp_path / f"t{i}", SLURM_PROCID=str(i), **slurm)) for i in range(2)]
    with started(cmds) as procs:
        texts = [p.communicate(timeout=240)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], texts[0][-2000:] + texts[1][-2000:]
    s = json.loads((out / "summary.json").read_text())
    assert (s["workers"], s["replicas"], s["step"], s["task"]) == (2, 2, 4, "worker 0")


FAKE_WORKER = """
import json, os, signal, sys, tempfile, time
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
if index == 1:  # a non-chief worker: makes its scratch folder, as pipelines.train does, then is killed
    tempfile.mkdtemp(prefix="srkeras-worker1-")
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(60)
"""


def test_a_killed_worker_ends_the_launcher_with_exit_4_and_nothing_left(tmp_path, monkeypatch):
    import tempfile

    from srkeras.training import launcher

    (tmp_path / "fake_worker.py").write_text(FAKE_WORKER)
    monkeypatch.chdir(tmp_path)  # ``python -m fake_worker`` finds it here
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    log = []
    assert launcher.launch([], 2, module="fake_worker", log=log.append) == 4
    assert any("worker 1" in m and "killed by signal 9" in m for m in log), log
    assert list(tmp.iterdir()) == []  # the launcher's folder, the killed worker's scratch folder in it
