"""deploy/: the Kubernetes Indexed Job and the Slurm job array, checked as far as one
machine allows: the Job has what an Indexed Job needs and its container command, run
here once per index, writes the single run; the Slurm script, run once per array task id,
writes the single run's bytes."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ganlite

# In the dev extra (pyyaml); the training environment collects this file without it.
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
N = 40


def _env(**extra):
    return {**os.environ, "PYTHONPATH": str(Path(ganlite.__file__).parent.parent), **extra}


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix == ".png"}


def _job() -> dict:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "k8s-indexed-job.yaml").read_text()) if d]
    jobs = [d for d in docs if d.get("kind") == "Job"]
    assert len(jobs) == 1
    return jobs[0]


def _container(job: dict) -> dict:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def test_the_indexed_job_has_what_kubernetes_needs():
    job = _job()
    assert job["apiVersion"] == "batch/v1" and job["metadata"]["name"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert isinstance(spec["completions"], int) and spec["completions"] >= 1
    assert isinstance(spec["parallelism"], int) and 1 <= spec["parallelism"]
    pod = spec["template"]["spec"]
    # backoffLimitPerIndex is only allowed with restartPolicy Never.
    assert pod["restartPolicy"] == ("Never" if "backoffLimitPerIndex" in spec
                                    else pod["restartPolicy"])
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    container = _container(job)
    assert container["name"] and container["image"]
    command = " ".join(container["command"] + container.get("args", []))
    assert "$JOB_COMPLETION_INDEX" in command and "--shard" in command
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["GANLITE_SHARDS"] == str(spec["completions"])      # K = completions
    # The output folder is on the shared volume every pod mounts.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (volume,) = pod["volumes"]
    assert env["GANLITE_OUT"].startswith(mounts[volume["name"]] + "/")
    claim = volume["persistentVolumeClaim"]["claimName"]
    claims = [d for d in yaml.safe_load_all((DEPLOY / "k8s-indexed-job.yaml").read_text())
              if d and d["kind"] == "PersistentVolumeClaim"]
    assert [c["metadata"]["name"] for c in claims] == [claim]
    assert claims[0]["spec"]["accessModes"] == ["ReadWriteMany"]   # pods on many nodes


def _ganlite_on_path(tmp_path: Path) -> str:
    """A folder holding a `ganlite` command that runs this checkout's ganlite."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "ganlite"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ganlite "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


def test_the_jobs_command_run_once_per_index_writes_the_single_run(tmp_path,
                                                                   default_generator):
    """The container's command, run here by sh with the Job's environment (n, folder and
    K made small) and JOB_COMPLETION_INDEX = 0 .. K - 1 all at once, as the pods would."""
    container = _container(_job())
    env = {e["name"]: e["value"] for e in container["env"]}
    count, out = 3, tmp_path / "data" / "digits"
    env.update(GANLITE_N=str(N), GANLITE_OUT=str(out), GANLITE_SHARDS=str(count))
    path = _ganlite_on_path(tmp_path)
    procs = [subprocess.Popen(container["command"] + container.get("args", []),
                              env=_env(**env, JOB_COMPLETION_INDEX=str(i), PATH=path),
                              stderr=subprocess.PIPE, text=True) for i in range(count)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    images, labels = ganlite.read_run(out)
    assert np.array_equal(images, default_generator.generate(N, seed=int(env["GANLITE_SEED"])))
    assert len(list(out.glob(f"images-*-of-{count:05d}.npy"))) == count


@pytest.fixture
def bash():
    found = shutil.which("bash")
    if found is None:
        pytest.skip("no bash")
    return found


def test_the_slurm_array_run_locally_writes_the_single_runs_bytes(tmp_path, bash):
    """deploy/slurm-array.sh run as K array tasks at once (SLURM_ARRAY_TASK_ID set as
    Slurm sets it) writes exactly the PNG files of one `ganlite generate` run."""
    out, single, count = tmp_path / "array", tmp_path / "single", 3
    done = subprocess.run([sys.executable, "-m", "ganlite", "generate", "--n", str(N),
                           "--seed", "4", "--out", str(single), "-q"], env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    settings = dict(GANLITE_OUT=str(out), GANLITE_N=str(N), GANLITE_SEED="4",
                    GANLITE_FORMAT="png", GANLITE_PYTHON=sys.executable,
                    SLURM_ARRAY_TASK_COUNT=str(count))
    procs = [subprocess.Popen([bash, str(DEPLOY / "slurm-array.sh")],
                              env=_env(**settings, SLURM_ARRAY_TASK_ID=str(i)),
                              stderr=subprocess.PIPE, text=True) for i in range(count)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert _pngs(out) == _pngs(single)
    assert sorted(p.name for p in out.glob(".ganlite-run-*")) == \
        [f".ganlite-run-{i:05d}-of-{count:05d}.json" for i in range(count)]


def test_the_slurm_script_outside_an_array_says_so(tmp_path, bash):
    env = {k: v for k, v in _env(GANLITE_OUT=str(tmp_path / "x")).items()
           if not k.startswith("SLURM_")}
    done = subprocess.run([bash, str(DEPLOY / "slurm-array.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "not a Slurm array task" in done.stderr
    assert not (tmp_path / "x").exists()


def test_the_slurm_script_asks_for_an_array_from_0():
    text = (DEPLOY / "slurm-array.sh").read_text()
    assert "#SBATCH --array=0-15" in text
    assert '--shard "$index/$count"' in text
