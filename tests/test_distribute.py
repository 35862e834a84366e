"""Training across devices (train/distribute.py): the default strategy is the code path of
before, bit for bit; mirrored on 2 logical CPU devices splits the batch, equals the default
run up to float rounding, is reproducible and resumes bit-identically; multi-worker runs as
two local processes on loopback, only the chief writing the run folder; bad combinations
are refused with one line."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conftest import MNIST_SMALL, kill_at_first_checkpoint  # noqa: E402
from PIL import Image  # noqa: E402

pytestmark = [pytest.mark.train, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
TINY = ["--data", str(MNIST_SMALL), "--latent-dim", "8", "--batch-size", "32",
        "--fcd-samples", "0", "--seed", "3"]
# No dropout in the mlp discriminator and plain SGD (whose step is proportional to the
# gradient, where Adam's first steps are nearly its sign): the run in which a mirrored
# step must be a default step up to rounding, with every lever that acts inside the step
# (hinge loss, spectral norm, R1, DiffAugment). A small learning rate: GAN training
# amplifies rounding differences (at lr 0.05 they grew from 1e-6 to 1e-2 within 5 steps
# once the discriminator had won, around step 16).
EXACT = [*TINY, "--arch", "mlp", "--optimizer", "sgd", "--lr", "0.01",
         "--steps", "20", "--sample-every", "5", "--loss", "hinge", "--spectral-norm",
         "--r1-gamma", "1", "--diffaugment", "color,translation,cutout"]
MIRRORED = ["--strategy", "mirrored", "--devices", "2"]


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**env, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def _train(*args, check=True, **env):
    result = subprocess.run([sys.executable, "-m", "train", "gan", *map(str, args)],
                            cwd=ROOT, env=_env(**env), capture_output=True, text=True,
                            timeout=600)
    if check and result.returncode:
        raise AssertionError(f"exit {result.returncode}: {result.stderr[-3000:]}")
    return result


def _arrays(run_dir: Path) -> dict:
    with np.load(run_dir / "checkpoint.npz") as ckpt:
        return {k: ckpt[k] for k in ckpt.files}


def _same(a: Path, b: Path) -> bool:
    x, y = _arrays(a), _arrays(b)
    return x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


# --- the default strategy: main's code path, bit for bit ---------------------------------

# sha256 of a 20-step conditional dcgan run (the command in the test), computed on main's
# code before strategies existed (commit fc9ac55): every checkpoint array and the pixels of
# the last sample grid. Float results depend on the TensorFlow build and the CPU's vector
# instructions, so the comparison runs where it was recorded.
BEFORE_STRATEGIES = "508b96267021673387306cbe2ca1630f2a2d1967d56ec8edf9527d5c971d8c19"
RECORDED_WITH = {"tensorflow": "2.21.0", "keras": "3.15.1", "machine": "x86_64",
                 "avx2": True, "avx512f": False}


def _recorded_here() -> bool:
    import keras
    import tensorflow as tf

    flags = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    here = {"tensorflow": tf.__version__, "keras": keras.__version__,
            "machine": platform.machine(), "avx2": "avx2" in flags,
            "avx512f": "avx512f" in flags}
    return here == RECORDED_WITH


def _fingerprint(run_dir: Path) -> str:
    digest = hashlib.sha256()
    for key, array in sorted(_arrays(run_dir).items()):
        digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    with Image.open(run_dir / "samples" / "step_0000020.png") as image:
        digest.update(np.asarray(image.convert("L")).tobytes())
    return digest.hexdigest()


def test_default_strategy_is_the_code_path_of_before(tmp_path):
    if not _recorded_here():
        pytest.skip(f"fingerprint recorded with {RECORDED_WITH}")
    run = tmp_path / "run"
    result = _train("--out", run, *TINY, "--steps", "20", "--sample-every", "10",
                    "--conditional")
    assert _fingerprint(run) == BEFORE_STRATEGIES
    assert "replica(s)" not in result.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["config"]["strategy"] == "default" and "replicas" not in info


# --- mirrored on 2 logical CPU devices ---------------------------------------------------

@pytest.fixture(scope="module")
def exact_runs(tmp_path_factory):
    """(default run, mirrored run, mirrored stderr) of the EXACT configuration."""
    folder = tmp_path_factory.mktemp("exact")
    _train("--out", folder / "default", *EXACT)
    result = _train("--out", folder / "mirrored", *EXACT, *MIRRORED)
    return folder / "default", folder / "mirrored", result.stderr


def test_mirrored_hands_each_replica_half_of_the_batch(tmp_path):
    # One step of the real input pipeline, per replica: the two halves of the very batch
    # (images, labels) a default run trains on at that step, with the step and slot.
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        from train import distribute
        from train.config import GanConfig
        from train.data import load
        from train.run_gan import _batches
        config = GanConfig(out={str(tmp_path)!r}, data={str(MNIST_SMALL)!r}, steps=40,
                           sample_every=10, batch_size=32, seed=3, strategy="mirrored",
                           devices=2)
        strategy = distribute.make_strategy(config, distribute.placement(config))
        images, labels = load("mnist", "train", config.data)
        start = 17
        whole = next(iter(_batches(images, labels, config, start)))
        parts = next(iter(distribute.distribute_batches(
            lambda: _batches(images, labels, config, start), strategy, 32)))
        local = [strategy.experimental_local_results(p) for p in parts]
        print([tuple(x.shape) for x in local[0]], [int(s) for s in local[2]],
              [int(s) for s in local[3]])
        assert np.array_equal(np.concatenate(local[0]), whole[0])
        assert np.array_equal(np.concatenate(local[1]), whole[1])
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-2:] == [
        "[(16, 28, 28, 1), (16, 28, 28, 1)] [17, 17] [0, 1]", "ok"]


def test_mirrored_step_is_the_default_step_up_to_rounding(exact_runs):
    default, mirrored, stderr = exact_runs
    assert ("strategy mirrored: 2 replica(s) (/cpu:0, /cpu:1), 16 images each of the "
            "32-image batch") in stderr
    assert json.loads((mirrored / "run.json").read_text())["replicas"] == 2
    a, b = _arrays(default), _arrays(mirrored)
    assert a.keys() == b.keys() and int(b["step"]) == 20
    for key in a:
        if a[key].dtype.kind == "f":
            # Measured: 1.2e-7. Without the loss scaled by the replica count (gradients
            # twice too large): 0.057 (no levers); with each replica augmenting its own
            # rows as a batch of its own (the same transforms on both halves): 0.0084.
            np.testing.assert_allclose(b[key], a[key], rtol=0, atol=2e-5, err_msg=key)
        else:
            assert np.array_equal(a[key], b[key]), key
    # The logged losses are the global batch's means, as in a default run.
    la = np.loadtxt(default / "metrics.csv", delimiter=",", skiprows=1)
    lb = np.loadtxt(mirrored / "metrics.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(lb, la, rtol=1e-4)


def test_mirrored_run_is_reproducible(exact_runs, tmp_path):
    _, mirrored, _ = exact_runs
    again = tmp_path / "again"
    _train("--out", again, *EXACT, *MIRRORED)
    assert _same(mirrored, again)


def test_mirrored_kill_then_resume_equals_uninterrupted(exact_runs, tmp_path):
    _, straight, _ = exact_runs
    killed = tmp_path / "killed"
    kill_at_first_checkpoint([*EXACT, *MIRRORED], killed, _env(), ROOT, 20)
    result = _train("--resume", killed)
    assert "2 replica(s)" in result.stderr and "note:" not in result.stderr
    assert _same(straight, killed), "resumed weights differ"


# --- multi-worker: two local processes -------------------------------------------------

def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _multi_worker(out: Path, scratch: Path, *args: str) -> list[subprocess.CompletedProcess]:
    """Run `python -m train gan --strategy multi-worker` as workers 0 and 1."""
    scratch.mkdir(parents=True, exist_ok=True)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                             "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "train", "gan", "--out", str(out), "--strategy",
             "multi-worker", *args], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
            env=_env(TF_CONFIG=tf_config, TMPDIR=str(scratch))))
    results = []
    for proc in procs:
        try:
            stdout, stderr = proc.communicate(timeout=600)
        finally:
            for other in procs:
                if other.poll() is None and proc.returncode is None:
                    other.kill()
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout,
                                                   stderr))
    return results


def test_multi_worker_two_local_processes(tmp_path):
    args = [*TINY, "--conditional", "--steps", "20", "--sample-every", "10"]
    runs = []
    for name in ("first", "second"):
        out, scratch = tmp_path / name, tmp_path / f"scratch-{name}"
        chief, worker = _multi_worker(out, scratch, *args)
        assert chief.returncode == 0, chief.stderr[-3000:]
        assert worker.returncode == 0, worker.stderr[-3000:]
        for result in (chief, worker):
            assert ("strategy multi-worker: 2 replica(s)" in result.stderr
                    and "16 images each of the 32-image batch" in result.stderr)
        # Only the chief writes the run folder; the other worker wrote its copy to a
        # scratch folder under TMPDIR and removed it.
        assert "scratch folder" not in chief.stderr
        assert f"writing to scratch folder {scratch}" in worker.stderr
        assert list(scratch.iterdir()) == []
        for name_ in ("run.json", "checkpoint.npz", "generator.keras",
                      "samples/step_0000020.png"):
            assert (out / name_).is_file(), name_
        assert json.loads((out / "run.json").read_text())["replicas"] == 2
        runs.append(out)
    assert _same(*runs), "two multi-worker runs of one command differ"


# --- refusals ---------------------------------------------------------------------------

def test_batch_not_divisible_by_replicas_is_a_usage_error(tmp_path):
    result = _train("--out", tmp_path / "run", *TINY, "--steps", "10", "--sample-every",
                    "10", "--strategy", "mirrored", "--devices", "3", check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "Error: batch_size (--batch-size) 32 must be a multiple of devices (--devices) 3: "
        "each replica takes an equal share of the batch")
    assert not (tmp_path / "run").exists()


def test_multi_worker_without_tf_config_is_one_clear_line(tmp_path):
    result = _train("--out", tmp_path / "run", *TINY, "--steps", "10", "--sample-every",
                    "10", "--strategy", "multi-worker", check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "Error: strategy multi-worker needs the TF_CONFIG environment variable")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("tf_config, words", [
    ("{not json", "not valid JSON"),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "cluster must"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
     "task must"),
])
def test_bad_tf_config_is_refused(tmp_path, monkeypatch, tf_config, words):
    from train.config import GanConfig
    from train.distribute import placement
    from train.errors import ConfigError

    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ConfigError, match=words):
        placement(GanConfig(out=tmp_path, strategy="multi-worker"))


def test_chief_is_worker_0_unless_the_cluster_has_a_chief(tmp_path, monkeypatch):
    from train.config import GanConfig
    from train.distribute import placement

    config = GanConfig(out=tmp_path, strategy="multi-worker")
    for cluster, task, chief in [
            ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 0}, True),
            ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1}, False),
            ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "worker", "index": 0}, False),
            ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "chief", "index": 0}, True)]:
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
        assert placement(config).chief is chief, (cluster, task)


def test_devices_needs_the_mirrored_strategy(tmp_path):
    from train.config import GanConfig
    from train.errors import ConfigError

    with pytest.raises(ConfigError, match=r"devices \(--devices\) 2 needs strategy"):
        GanConfig(out=tmp_path, devices=2)
    with pytest.raises(ConfigError, match="strategy"):
        GanConfig(out=tmp_path, strategy="parameter-server")
