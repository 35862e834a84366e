"""Training: a tiny real run writes its folder; an interrupted run resumes exactly."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conftest import MNIST_SMALL, kill_at_first_checkpoint  # noqa: E402

from train.versions import cpu_info  # noqa: E402

pytestmark = [pytest.mark.train, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
TINY = ["--data", str(MNIST_SMALL), "--arch", "dcgan", "--latent-dim", "8",
        "--batch-size", "32", "--fcd-samples", "0", "--seed", "3"]


def _train(*args, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "train", "gan", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=check)


def _weights(run_dir):
    with np.load(run_dir / "checkpoint.npz") as ckpt:
        return {k: ckpt[k] for k in ckpt.files}


def test_tiny_run_writes_its_folder(tmp_path):
    run = tmp_path / "run"
    result = _train("--out", run, "--steps", "20", "--sample-every", "10",
                    "--conditional", *TINY)
    assert "step" in result.stderr and "steps/s" in result.stderr
    for name in ("run.json", "checkpoint.npz", "metrics.csv", "generator.keras",
                 "training.gif", "samples/step_0000010.png", "samples/step_0000020.png"):
        assert (run / name).is_file(), name
    # Training seconds mean something only with the machine they were measured on.
    machine = json.loads((run / "run.json").read_text())["machine"]
    assert machine["model"] and machine["cores"] >= 1 and isinstance(machine["flags"], list)
    assert machine == cpu_info()
    lines = (run / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,d_loss,g_loss,d_real,d_fake" and len(lines) == 21
    # Same seed, same run: training is reproducible.
    again = tmp_path / "again"
    _train("--out", again, "--steps", "20", "--sample-every", "10", "--conditional", *TINY)
    a, b = _weights(run), _weights(again)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_existing_run_folder_is_not_overwritten(tmp_path):
    run = tmp_path / "run"
    _train("--out", run, "--steps", "10", "--sample-every", "10", *TINY)
    result = _train("--out", run, "--steps", "10", "--sample-every", "10", *TINY, check=False)
    assert result.returncode == 1 and "already holds a run" in result.stderr


def test_kill_9_then_resume_equals_uninterrupted(tmp_path):
    args = ["--steps", "60", "--sample-every", "10", *TINY]
    straight = tmp_path / "straight"
    _train("--out", straight, *args)

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kill_at_first_checkpoint(args, killed, env, ROOT, 60)
    assert not (killed / "generator.keras").exists()

    _train("--resume", killed)
    a, b = _weights(straight), _weights(killed)
    assert int(b["step"]) == 60
    assert all(np.array_equal(a[k], b[k]) for k in a), "resumed weights differ"
    steps = [int(line.split(",")[0]) for line in
             (killed / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 61))


def test_a_run_resumed_with_more_steps_equals_one_trained_that_long(tmp_path):
    straight, extended = tmp_path / "straight", tmp_path / "extended"
    _train("--out", straight, "--steps", "12", "--sample-every", "4", *TINY)
    _train("--out", extended, "--steps", "8", "--sample-every", "4", *TINY)
    assert (extended / "generator.keras").exists()          # a finished run goes further
    result = _train("--resume", extended, "--steps", "12")
    assert "extending" in result.stderr and "from 8 to 12 steps" in result.stderr
    a, b = _weights(straight), _weights(extended)
    assert int(b["step"]) == 12
    assert all(np.array_equal(a[k], b[k]) for k in a), "extended weights differ"
    info = json.loads((extended / "run.json").read_text())
    assert info["config"]["steps"] == 12 and info["extended_from"] == [8]
    steps = [int(line.split(",")[0]) for line in
             (extended / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 13))


@pytest.mark.parametrize("extra, message", [
    (["--steps", "4"], "was made for 8 steps; a resumed run goes further, not shorter"),
    (["--steps", "12"], "decays its learning rates to 0 at step 8 (lr_schedule linear)"),
])
def test_more_steps_are_refused_where_they_would_be_another_run(tmp_path, extra, message):
    run = tmp_path / "run"
    _train("--out", run, "--steps", "8", "--sample-every", "4", "--lr-schedule", "linear",
           *TINY)
    before = (run / "run.json").read_text(), (run / "checkpoint.npz").read_bytes()
    result = _train("--resume", run, *extra, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], lines
    assert ((run / "run.json").read_text(), (run / "checkpoint.npz").read_bytes()) == before


def test_diverging_run_stops_with_a_clear_message(tmp_path):
    run = tmp_path / "run"
    result = _train("--out", run, "--steps", "40", "--sample-every", "10", *TINY,
                    "--optimizer", "sgd", "--lr", "1e30", check=False)
    assert result.returncode == 1
    assert "NaN or infinite" in result.stderr and "Traceback" not in result.stderr


def test_seconds_from_another_machine_are_flagged(tmp_path):
    from train.run_gan import _record_time

    other = {"model": "another CPU", "cores": 64, "flags": []}
    (tmp_path / "run.json").write_text(json.dumps({"machine": other, "train_seconds": 1.0}))
    _record_time(tmp_path, 2.0)
    _record_time(tmp_path, 3.0)
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["train_seconds"] == 6.0 and info["machine"] == other
    assert info["resumed_on"] == [cpu_info()]
    (tmp_path / "run.json").write_text(json.dumps({"machine": cpu_info()}))
    _record_time(tmp_path, 2.0)
    assert "resumed_on" not in json.loads((tmp_path / "run.json").read_text())


def test_interrupted_run_keeps_its_checkpoint_and_counts_its_seconds(tmp_path):
    import signal
    import time

    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "train", "gan", "--out", str(run),
                             "--steps", "100000", "--sample-every", "5", *TINY], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 300
    while not (run / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err.splitlines()[-1] and "Traceback" not in err
    # The seconds it trained count towards the run's time, interrupted or not.
    first = json.loads((run / "run.json").read_text())["train_seconds"]
    assert first > 0
    assert 0 < int(np.load(run / "checkpoint.npz")["step"]) < 100000
