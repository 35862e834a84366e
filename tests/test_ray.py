"""ganlite.ray and `generate --engine ray` on a real local Ray instance (2 CPUs): the
images equal the single process's for the same (model, seed, i), whatever Ray's batches,
in every output format; errors are one line. Skipped where the extra is not installed,
except the tests that are about its absence (they run everywhere)."""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, TINY_UNCONDITIONAL

import ganlite
from ganlite._writer import write_images

LYING = DATA / "lying" / "one-image.onnx"
README = Path(__file__).resolve().parent.parent / "README.md"
N = 300      # crosses latent blocks (16) and Ray batches at odd places


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(Path(ganlite.__file__).parent.parent)}


# -- where the extra is absent (these run in every environment) ----------------------------

def test_without_ray_import_is_one_usage_error_naming_the_extra():
    # sys.modules["ray"] = None makes `import ray` fail as if it were not installed.
    code = ("import sys; sys.modules['ray'] = None\n"
            "import ganlite\n"
            "try:\n"
            "    import ganlite.ray\n"
            "except ganlite.UsageError as e:\n"
            "    print('UsageError:', e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("UsageError:") and 'pip install "ganlite[ray]"' in done.stdout
    assert len(done.stdout.strip().splitlines()) == 1


def test_cli_without_ray_exits_2_naming_the_extra(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from ganlite.cli import main\n"
            "main()\n")
    done = subprocess.run([sys.executable, "-c", code, "generate", "--engine", "ray", "--n",
                           "5", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        done.stderr.strip()] and 'pip install "ganlite[ray]"' in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_base_cli_never_imports_ray(tmp_path):
    """A local run (and --help) loads neither Ray nor pyarrow: the base install stays
    onnxruntime, numpy, pillow and click."""
    code = ("import sys\n"
            "from click.testing import CliRunner\n"
            "from ganlite.cli import main\n"
            "r = CliRunner().invoke(main, ['generate', '--n', '3', '--out', sys.argv[1], "
            "'--format', 'npy', '-q'])\n"
            "assert r.exit_code == 0, r.output\n"
            "CliRunner().invoke(main, ['generate', '--help'])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'pyarrow')))\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("args,message", [
    (["--format", "parquet"], "--format parquet needs --engine ray"),
    (["--engine", "ray", "--overwrite"], "--overwrite is for the local engine"),
    (["--engine", "ray", "--device", "cuda"], "--device cuda is for the local engine"),
    (["--engine", "ray", "--shard", "0/2"], "--shard is for the local engine"),
])
def test_combinations_that_make_no_sense_exit_2(cli, tmp_path, args, message):
    result = cli("generate", "--n", 5, "--out", tmp_path / "out", *args)
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# -- on a local Ray instance ---------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    pytest.importorskip("pyarrow")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def gray(ray_instance):
    import ganlite.ray

    return ganlite.ray


def _rows(dataset) -> dict[str, np.ndarray]:
    """A dataset's columns, sorted by index."""
    batch = dataset.take_batch(batch_size=10**9)
    order = np.argsort(batch["index"])
    return {name: np.asarray(column)[order] for name, column in batch.items()}


def _single(n: int, seed: int, model=None, labels=None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of the single process, in one batch."""
    batch = next(ganlite.load(model).batches(n, seed, labels=labels, batch_size=n))
    return batch.images, batch.labels


def test_dataset_equals_the_single_process(gray):
    rows = _rows(gray.generate(N, seed=5, batch_size=37))
    images, labels = _single(N, 5)
    assert rows["index"].dtype == np.int64 and rows["label"].dtype == np.int64
    assert rows["image"].dtype == np.uint8 and rows["image"].shape == (N, 28, 28)
    np.testing.assert_array_equal(rows["index"], np.arange(N))
    np.testing.assert_array_equal(rows["image"], images)
    np.testing.assert_array_equal(rows["label"], labels)


def test_truncation_as_the_single_process(gray):
    rows = _rows(gray.generate(100, seed=8, truncation=0.5, batch_size=30))
    np.testing.assert_array_equal(rows["image"],
                                  ganlite.load().generate(100, seed=8, truncation=0.5))
    assert not np.array_equal(rows["image"], ganlite.load().generate(100, seed=8))


def test_any_rows_in_any_order_give_the_same_bytes(gray, ray_instance):
    """The actor's class on rows as Ray may hand them: runs broken anywhere, out of order,
    longer than one onnxruntime call."""
    decoder = gray._Decoder([ray_instance.put((ganlite.load().path.read_bytes(), None))],
                            "mnist-cdcgan", seed=9, threads=1)
    ids = np.array([299, 5, 6, 7, 100, 3, 4, 15, 16, 17, *range(20, 290)], np.int64)
    out = decoder({"id": ids})
    images, labels = _single(N, 9)
    np.testing.assert_array_equal(out["index"], ids)
    np.testing.assert_array_equal(out["image"], images[ids])
    np.testing.assert_array_equal(out["label"], labels[ids])


@pytest.mark.parametrize("labels", [
    7, "3", ganlite.LabelCycle([3, 7]), ganlite.LabelCycle(range(10)),
    np.arange(N) % 4 + 5,
], ids=["class", "class-name", "cycle", "balanced", "per-image"])
def test_labels_follow_the_generators_rules(gray, labels):
    rows = _rows(gray.generate(N, seed=2, labels=labels, batch_size=64))
    images, expected = _single(N, 2, labels=labels)
    np.testing.assert_array_equal(rows["label"], expected)
    np.testing.assert_array_equal(rows["image"], images)


def test_unconditional_model_has_no_label_column(gray):
    rows = _rows(gray.generate(50, seed=1, model=TINY_UNCONDITIONAL, concurrency=1))
    assert sorted(rows) == ["image", "index"]
    np.testing.assert_array_equal(rows["image"], _single(50, 1, TINY_UNCONDITIONAL)[0])


@pytest.mark.parametrize("kwargs,message", [
    ({"labels": 10}, "class 10 out of range"),
    ({"labels": np.zeros(3, np.int64)}, "labels must be one class or one per image"),
    ({"seed": -1}, "seed must be"),
    ({"concurrency": (2, 1)}, "concurrency must be"),
    ({"concurrency": 0}, "concurrency must be"),
    ({"batch_size": 0}, "batch_size must be"),
    ({"truncation": 0}, "truncation must be"),
    ({"model": "no-such-model"}, "unknown model"),
])
def test_bad_arguments_are_usage_errors_before_ray_runs(gray, kwargs, message):
    with pytest.raises(ganlite.UsageError, match=message):
        gray.generate(N, **kwargs)


def _read_parquet(path: Path) -> dict[str, np.ndarray]:
    """With pyarrow alone: the image column is Ray's tensor extension, stored as a list
    of 784 uint8 per row."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    image = table.column("image").combine_chunks()
    pixels = getattr(image, "storage", image).flatten().to_numpy(zero_copy_only=False)
    order = np.argsort(table.column("index").to_numpy())
    return {"index": table.column("index").to_numpy()[order],
            "label": table.column("label").to_numpy()[order],
            "image": pixels.reshape(-1, 28, 28)[order]}


def _read_npy(path: Path) -> np.ndarray:
    parts = sorted(path.glob("*.npy"))
    assert parts
    records = np.concatenate([np.load(p) for p in parts])
    return records[np.argsort(records["index"])]


def test_parquet_and_npy_round_trip(gray, tmp_path):
    labels = ganlite.LabelCycle([3, 7])
    images, expected = _single(N, 4, labels=labels)
    for fmt in ("parquet", "npy"):
        result = gray.write(N, tmp_path / fmt, fmt=fmt, seed=4, labels=labels, batch_size=50)
        assert result.n == N and result.files >= 1
        got = _read_parquet(tmp_path / fmt) if fmt == "parquet" else _read_npy(tmp_path / fmt)
        np.testing.assert_array_equal(got["index"], np.arange(N))
        np.testing.assert_array_equal(got["label"], expected)
        np.testing.assert_array_equal(got["image"], images)
        manifest = (tmp_path / fmt / ".ganlite-run.json").read_text()
        assert '"engine": "ray"' in manifest and '"cycle"' in manifest


def test_png_files_equal_the_local_engines(gray, tmp_path):
    """Same names, same bytes as `ganlite generate` writes."""
    gray.write(N, tmp_path / "ray", fmt="png", seed=6, labels=ganlite.LabelCycle(range(10)))
    write_images(ganlite.load(), N, tmp_path / "local", seed=6,
                 labels=ganlite.LabelCycle(range(10)))
    pngs = sorted(p.name for p in (tmp_path / "local").glob("*.png"))
    assert len(pngs) == N and pngs[7] == "0007_7.png"
    assert sorted(p.name for p in (tmp_path / "ray").glob("*.png")) == pngs
    for name in pngs:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_cli_engine_ray_writes_parquet(gray, cli, tmp_path):
    out = tmp_path / "digits"
    result = cli("generate", "--engine", "ray", "--format", "parquet", "--n", 120, "--seed", 3,
                 "--digit", 1, "--out", out, "--grid", tmp_path / "grid.png")
    assert result.exit_code == 0, result.output
    assert re.search(r"wrote 120 images to .* as \d+ parquet file\(s\) on Ray", result.output)
    got = _read_parquet(out)
    np.testing.assert_array_equal(got["image"], _single(120, 3, labels=1)[0])
    assert set(got["label"]) == {1}
    assert (tmp_path / "grid.png").exists()


def test_cli_refuses_a_folder_that_is_not_empty(gray, cli, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    result = cli("generate", "--engine", "ray", "--n", 10, "--out", tmp_path / "out")
    assert result.exit_code == 1 and "is not empty" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert os.listdir(tmp_path / "out") == ["notes.txt"]


def test_api_error_in_an_actor_is_the_ganlite_error(gray, tmp_path):
    with pytest.raises(ganlite.ModelError, match=r"one-image.onnx: the model returned uint8 "
                       r"\[1, 28, 28\] for a batch of"):
        gray.write(40, tmp_path / "out", fmt="npy", model=LYING)


def test_an_unwritable_output_is_an_output_error(gray):
    with pytest.raises(ganlite.OutputError):
        gray.write(10, "/proc/ganlite-cannot-write-here", fmt="parquet")


def test_cli_error_inside_an_actor_is_one_line_exit_1(ray_instance, tmp_path):
    """A real process connected to the test's Ray instance (RAY_ADDRESS): the model fails
    inside the actors; stderr is exactly one line, no traceback."""
    address = ray_instance.get_runtime_context().gcs_address
    done = subprocess.run(
        [sys.executable, "-m", "ganlite", "generate", "--engine", "ray", "--n", "40", "--out",
         str(tmp_path / "out"), "--format", "npy", "--model", str(LYING)],
        capture_output=True, text=True, env={**_env(), "RAY_ADDRESS": address}, timeout=300)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "the model returned uint8 [1, 28, 28] for a batch of" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


def _readme_section() -> str:
    text = README.read_text()
    start = text.index("## Ray Data (ganlite[ray])")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_readme_ray_examples_run(gray, cli, tmp_path, monkeypatch):
    """The section's Python example and its local CLI lines run as written (s3:// lines
    need a bucket: not run)."""
    section = _readme_section()
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md (Ray Data)", "exec"), {})
    commands = [line.split("#")[0].split()[1:] for line in section.splitlines()
                if line.startswith(".venv-ray/bin/ganlite ") and "s3://" not in line]
    assert commands
    for command in commands:
        result = cli(*command)
        assert result.exit_code == 0, f"{command}: {result.output}"


def test_an_os_error_inside_a_write_task_is_an_output_error(gray, tmp_path, monkeypatch):
    """A real failing write task: a relative folder that the driver creates in its
    current folder and the workers (started elsewhere) cannot find. write() hands Ray
    absolute paths for exactly this reason; here the datasink gets the relative one."""
    monkeypatch.chdir(tmp_path)
    dataset = gray.generate(20)
    try:
        dataset.write_datasink(gray._NpyDatasink("relative/", dataset_uuid=dataset._uuid))
    except Exception as e:  # noqa: BLE001  (whatever Ray raises is the input here)
        error = gray._from_ray(e)
    else:
        pytest.skip("the workers share this test's current folder")
    assert type(error) is ganlite.OutputError
    assert re.match(r"\[Errno 2\] Failed to open local file 'relative/[^']+\.npy'\. Detail: "
                    r"\[errno 2\] No such file or directory$", str(error))
