"""The truncation trick (`truncation=psi`, `--truncation PSI`): off by default and then the
latents as ever; with psi, every latent component within +-psi, drawn from the truncated
normal, still a pure function of (seed, image index, psi) under any batching, start or
resume; part of a run's manifest; judged by `evaluate`; served over HTTP; bad values one
line."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import TINY_UNCONDITIONAL
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import ganlite
from ganlite import latents

MANIFEST = ".ganlite-run.json"
DIM, CLASSES = 100, 10


def documented_latents(seed: int, start: int, count: int, dim: int) -> np.ndarray:
    """The untruncated latents as ganlite.latents documents them: image i is row i % 16 of
    block i // 16, each block a standard normal draw of default_rng([seed, block])."""
    rows = [np.random.default_rng([seed, i // latents.BLOCK]).standard_normal(
        (latents.BLOCK, dim), dtype=np.float32)[i % latents.BLOCK]
        for i in range(start, start + count)]
    return np.stack(rows)


def truncated_normal_std(psi: float) -> float:
    """Standard deviation of N(0, 1) truncated to [-psi, psi]."""
    density = math.exp(-psi * psi / 2) / math.sqrt(2 * math.pi)
    return math.sqrt(1 - 2 * psi * density / math.erf(psi / math.sqrt(2)))


def check_truncated(draw, psi: float, seed: int = 11, count: int = 4096) -> None:
    """What truncation must do to a run's latents, asserted of a draw function."""
    plain, labels = draw(seed, 0, count, DIM, CLASSES)
    z, truncated_labels = draw(seed, 0, count, DIM, CLASSES, psi)
    assert z.dtype == np.float32 and z.shape == (count, DIM)
    assert np.abs(z).max() <= psi                        # every component within psi
    within = np.abs(plain) <= psi
    assert np.array_equal(z[within], plain[within])      # only the values beyond are redrawn
    assert np.array_equal(truncated_labels, labels)      # labels are not touched
    redrawn = z[~within].astype(np.float64)
    assert redrawn.size > 100
    # Redrawn from the truncated normal: not clipped to +-psi, not scaled, not uniform.
    assert np.mean(np.abs(redrawn) == np.float32(psi)) < 0.01
    assert abs(redrawn.mean()) < 0.05 * psi
    assert redrawn.std() == pytest.approx(truncated_normal_std(psi), rel=0.05)
    assert z.std() == pytest.approx(truncated_normal_std(psi), rel=0.02)


# -- latents ------------------------------------------------------------------------------

def test_off_by_default_gives_the_documented_latents():
    for args in [(3, 0, 40, DIM, CLASSES), (2**63 - 1, 37, 5, 8, 0)]:
        z, _ = latents.draw(*args)
        assert np.array_equal(z, documented_latents(*args[:4]))
        z_off, _ = latents.draw(*args, truncation=None)
        assert np.array_equal(z_off, z)


@pytest.mark.parametrize("psi", [2.0, 1.0, 0.5, 0.05])
def test_truncated_latents_are_the_truncated_normal(psi):
    check_truncated(latents.draw, psi)


def test_a_draw_that_ignores_psi_fails_the_check():
    def ignores_psi(seed, start, count, dim, classes, truncation=None):
        return latents.draw(seed, start, count, dim, classes)

    def clips(seed, start, count, dim, classes, truncation=None):
        z, y = latents.draw(seed, start, count, dim, classes)
        return (z if truncation is None else np.clip(z, -truncation, truncation)), y

    def scales(seed, start, count, dim, classes, truncation=None):
        z, y = latents.draw(seed, start, count, dim, classes)
        return (z if truncation is None else z * (truncation / np.abs(z).max())), y

    for mutant in (ignores_psi, clips, scales):
        with pytest.raises(AssertionError):
            check_truncated(mutant, 1.0)


def test_smaller_psi_lowers_the_spread():
    spreads = [float(latents.draw(5, 0, 2048, DIM, 0, psi)[0].std())
               for psi in (None, 3.0, 2.0, 1.5, 1.0, 0.75, 0.5, 0.1)]
    assert spreads == sorted(spreads, reverse=True) and len(set(spreads)) == len(spreads)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), psi=st.floats(1e-6, latents.MAX_TRUNCATION),
       cuts=st.lists(st.integers(1, 70), min_size=1, max_size=6),
       start=st.integers(0, 40))
def test_image_i_depends_only_on_seed_i_and_psi(seed, psi, cuts, start):
    whole, whole_labels = latents.draw(seed, 0, start + sum(cuts), 8, CLASSES, psi)
    assert np.abs(whole).max() <= psi
    lo = start
    for count in cuts:           # any partition, from any start: the same rows
        z, labels = latents.draw(seed, lo, count, 8, CLASSES, psi)
        assert np.array_equal(z, whole[lo:lo + count])
        assert np.array_equal(labels, whole_labels[lo:lo + count])
        lo += count


def test_tiny_psi_ends_at_once():
    z, _ = latents.draw(1, 0, 1600, DIM, 0, 1e-30)   # nearly every value redrawn
    assert np.abs(z).max() <= 1e-30


BAD_VALUES = [0, 0.0, -1.0, -0.5, float("nan"), float("inf"), -float("inf"), 10.5, 1e300,
              "0.5", True, [0.5], np.array([0.5])]


@pytest.mark.parametrize("bad", BAD_VALUES, ids=repr)
def test_bad_psi_is_a_usage_error_naming_it(bad):
    with pytest.raises(ganlite.UsageError, match=r"truncation must be .* greater than 0 and "
                                                 r"at most 10, got "):
        latents.draw(0, 0, 4, 8, 0, bad)


def test_the_range_ends_are_valid():
    assert np.abs(latents.draw(0, 0, 64, 8, 0, latents.MAX_TRUNCATION)[0]).max() <= 10
    assert latents.check_truncation(np.float32(0.5)) == 0.5
    assert latents.check_truncation(2) == 2.0 and isinstance(latents.check_truncation(2),
                                                             float)


# -- the API ------------------------------------------------------------------------------

def test_generate_off_is_the_same_bytes(default_generator):
    g = default_generator
    assert np.array_equal(g.generate(40, 3, truncation=None), g.generate(40, 3))
    z, labels = latents.draw(3, 0, 40, g.latent_dim, g.num_classes)
    assert np.array_equal(g.generate(40, 3), g.decode(z, labels))


@pytest.mark.parametrize("psi", [1.5, 0.5])
def test_generate_decodes_the_truncated_latents(default_generator, psi):
    g = default_generator
    z, labels = latents.draw(9, 0, 50, g.latent_dim, g.num_classes, psi)
    images = g.generate(50, 9, truncation=psi)
    assert np.array_equal(images, g.decode(z, labels))
    assert not np.array_equal(images, g.generate(50, 9))
    sevens = g.generate(20, 9, labels=7, truncation=psi)
    assert np.array_equal(sevens, g.decode(z[:20], 7))


@pytest.mark.parametrize("batch_size, start", [(1, 0), (7, 0), (16, 5), (33, 17), (256, 49)])
def test_batches_give_generate_bytes_at_any_batch_size_and_start(default_generator,
                                                                 batch_size, start):
    g = default_generator
    whole = g.generate(50, 4, labels=ganlite.LabelCycle([2, 5]), truncation=0.7)
    parts = list(g.batches(50, 4, labels=ganlite.LabelCycle([2, 5]), start=start,
                           batch_size=batch_size, truncation=0.7))
    assert parts[0].start == start
    assert np.array_equal(np.concatenate([b.images for b in parts]), whole[start:])


def test_an_unconditional_model_truncates_too(tiny_generator):
    z, labels = latents.draw(2, 0, 30, tiny_generator.latent_dim, 0, 0.8)
    assert labels is None
    assert np.array_equal(tiny_generator.generate(30, 2, truncation=0.8),
                          tiny_generator.decode(z))


def test_smaller_psi_makes_less_varied_images(default_generator):
    spread = [default_generator.generate(100, 1, labels=3, truncation=psi)
              .astype(np.float64).std(axis=0).mean() for psi in (None, 1.0, 0.5, 0.1)]
    assert spread == sorted(spread, reverse=True)
    assert spread[-1] < spread[0] / 4


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), 11, "1"], ids=repr)
def test_api_refuses_bad_psi_before_any_work(default_generator, tmp_path, bad):
    g = default_generator
    with pytest.raises(ganlite.UsageError, match="truncation"):
        g.generate(3, truncation=bad)
    with pytest.raises(ganlite.UsageError, match="truncation"):
        next(g.batches(3, truncation=bad))
    with pytest.raises(ganlite.UsageError, match="truncation"):
        ganlite.write_images(g, 3, tmp_path / "out", truncation=bad)
    assert not (tmp_path / "out").exists()


# -- written runs: the manifest, resume, another run ------------------------------------

def _pngs(folder):
    return sorted(p for p in folder.iterdir() if p.suffix == ".png")


def _manifest(folder):
    return json.loads((folder / MANIFEST).read_text())


def test_manifest_records_truncation_only_when_set(default_generator, tmp_path):
    ganlite.write_images(default_generator, 5, tmp_path / "off")
    ganlite.write_images(default_generator, 5, tmp_path / "on", truncation=0.7)
    assert "truncation" not in _manifest(tmp_path / "off")
    assert _manifest(tmp_path / "on")["truncation"] == 0.7
    images = default_generator.generate(5, truncation=0.7)
    for image, path in zip(images, _pngs(tmp_path / "on"), strict=True):
        assert np.array_equal(np.asarray(Image.open(path)), image)


def test_png_resume_with_the_same_psi_completes_with_the_same_bytes(cli, tmp_path):
    args = ("generate", "--n", 40, "--seed", 2, "--truncation", "0.6", "--batch-size", 16)
    assert cli(*args, "--out", tmp_path / "full").exit_code == 0
    assert cli(*args, "--out", tmp_path / "part").exit_code == 0
    for p in _pngs(tmp_path / "part")[10:30]:
        p.unlink()
    result = cli(*args[:-1], 7, "--out", tmp_path / "part")     # another batch size
    assert result.exit_code == 0 and "wrote 20 images" in result.output, result.output
    full, part = _pngs(tmp_path / "full"), _pngs(tmp_path / "part")
    assert [p.name for p in full] == [p.name for p in part]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(full, part, strict=True))
    assert "already holds this run" in cli(*args, "--out", tmp_path / "part").output


def test_npy_resume_with_the_same_psi_gives_the_same_bytes(default_generator, tmp_path):
    g, out = default_generator, tmp_path / "npy"

    def stop_after(k):
        done = []

        def progress(step):
            done.append(step)
            if sum(done) >= k:
                raise KeyboardInterrupt
        return progress

    with pytest.raises(KeyboardInterrupt):
        ganlite.write_images(g, 100, out, seed=5, fmt="npy", batch_size=32, truncation=1.25,
                             progress=stop_after(64))
    assert not (out / "images.npy").exists()
    result = ganlite.write_images(g, 100, out, seed=5, fmt="npy", batch_size=10,
                                  truncation=1.25)
    assert result.resumed_at == 64 and result.written == 36
    assert np.array_equal(np.load(out / "images.npy"), g.generate(100, 5, truncation=1.25))
    z, labels = latents.draw(5, 0, 100, g.latent_dim, g.num_classes, 1.25)
    assert np.array_equal(np.load(out / "labels.npy"), labels)


@pytest.mark.parametrize("first, second", [
    (["--truncation", "0.5"], ["--truncation", "0.7"]),
    ([], ["--truncation", "0.5"]),
    (["--truncation", "0.5"], []),
], ids=["0.5 then 0.7", "off then 0.5", "0.5 then off"])
def test_another_psi_is_another_run(cli, tmp_path, first, second):
    out = tmp_path / "out"
    assert cli("generate", "--n", 6, "--out", out, *first).exit_code == 0
    before = {p.name: p.read_bytes() for p in _pngs(out)}
    result = cli("generate", "--n", 6, "--out", out, *second)
    assert result.exit_code == 1 and "differs in truncation)" in result.output, result.output
    assert {p.name: p.read_bytes() for p in _pngs(out)} == before
    assert cli("generate", "--n", 6, "--out", out, *second, "--overwrite").exit_code == 0
    assert {p.name: p.read_bytes() for p in _pngs(out)} != before
    assert _manifest(out).get("truncation") == (float(second[1]) if second else None)


def test_the_same_psi_written_differently_is_the_same_run(cli, tmp_path):
    assert cli("generate", "--n", 4, "--out", tmp_path, "--truncation", "0.5").exit_code == 0
    result = cli("generate", "--n", 4, "--out", tmp_path, "--truncation", ".50")
    assert result.exit_code == 0 and "already holds this run" in result.output


# -- the CLI ------------------------------------------------------------------------------

def test_cli_writes_the_api_images_and_grid(cli, tmp_path, default_generator):
    result = cli("generate", "--n", 12, "--seed", 3, "--digit", "3,7", "--truncation", "0.8",
                 "--out", tmp_path / "out", "--grid", tmp_path / "grid.png")
    assert result.exit_code == 0, result.output
    assert "truncation 0.8" in result.output
    images = default_generator.generate(12, 3, labels=ganlite.LabelCycle([3, 7]),
                                        truncation=0.8)
    files = _pngs(tmp_path / "out")
    assert [p.name for p in files][:2] == ["0000_3.png", "0001_7.png"]
    for image, path in zip(images, files, strict=True):
        assert np.array_equal(np.asarray(Image.open(path)), image)
    grid = np.asarray(Image.open(tmp_path / "grid.png"))[::2, ::2]     # saved 2x enlarged
    assert np.array_equal(grid, ganlite.make_grid(images, columns=10))


def test_cli_without_the_option_is_the_same_bytes(cli, tmp_path, default_generator):
    assert cli("generate", "--n", 8, "--seed", 6, "--format", "npy",
               "--out", tmp_path).exit_code == 0
    z, labels = latents.draw(6, 0, 8, default_generator.latent_dim,
                             default_generator.num_classes)
    assert np.array_equal(np.load(tmp_path / "images.npy"),
                          default_generator.decode(z, labels))


@pytest.mark.parametrize("bad", ["0", "-1", "-0.5", "nan", "inf", "-inf", "1e999", "10.01",
                                 "abc", "", "0,5"])
def test_cli_bad_psi_is_one_line_exit_2(cli, tmp_path, bad):
    result = cli("generate", "--n", 3, "--out", tmp_path / "out", "--truncation", bad)
    assert result.exit_code == 2, result.output
    assert result.output == (f"Error: --truncation must be a number greater than 0 and at "
                             f"most 10, got {bad!r}\n")
    assert not (tmp_path / "out").exists()


def test_cli_help_names_the_option(cli):
    text = cli("generate", "--help").output
    assert "--truncation PSI" in text and "0 < PSI <= 10" in text


def test_an_unconditional_model_from_the_cli(cli, tmp_path, tiny_generator):
    result = cli("generate", "--n", 5, "--model", TINY_UNCONDITIONAL, "--truncation", "2",
                 "--format", "npy", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.load(tmp_path / "images.npy"),
                          tiny_generator.generate(5, truncation=2.0))


# -- ganlite evaluate --truncation ----------------------------------------------------------
@pytest.fixture(scope="module")
def mnist_evaluator():
    return ganlite.Evaluator("mnist", device="cpu")


def test_evaluate_judges_the_truncated_samples(mnist_evaluator, default_generator):
    """The report is the one of the truncated images themselves, on-label pass included;
    a judge that ignored psi would report the untruncated model's figures."""
    report = mnist_evaluator.evaluate_generator(default_generator, n=200, seed=3,
                                                truncation=0.5)
    images = default_generator.generate(200, 3, truncation=0.5)
    assert report.fcd == mnist_evaluator.evaluate_images(images).fcd
    assert report.fcd != mnist_evaluator.evaluate_generator(default_generator, 200, 3).fcd
    on_label = [(mnist_evaluator.classify(default_generator.generate(
        20, 3, labels=c, truncation=0.5))[0].argmax(axis=1) == c).mean() for c in range(10)]
    assert np.array_equal(report.label_accuracy, on_label)
    assert "truncation 0.5" in report.source


def test_cli_evaluate_truncation_is_the_api_report(cli, default_generator):
    result = cli("evaluate", "--n", 200, "--seed", 3, "--truncation", "0.5", "--json")
    assert result.exit_code == 0, result.output
    expected = ganlite.evaluate(default_generator, n=200, seed=3, device="cpu",
                                truncation=0.5)
    assert json.loads(result.output)["fcd"] == pytest.approx(expected.fcd, abs=1e-4)  # 4 places


@pytest.mark.parametrize("bad", ["0", "nan", "11", "abc"])
def test_cli_evaluate_bad_psi_is_one_line_exit_2(cli, bad):
    result = cli("evaluate", "--n", 50, "--truncation", bad)
    assert result.exit_code == 2, result.output
    assert result.output == (f"Error: --truncation must be a number greater than 0 and at "
                             f"most 10, got {bad!r}\n")


def test_cli_evaluate_truncation_with_images_is_refused(cli, tmp_path):
    result = cli("evaluate", "--images", tmp_path, "--truncation", "1")
    assert result.exit_code == 2, result.output
    assert result.output == ("Error: --truncation goes with a model; --images are judged "
                             "as they are\n")


def test_api_evaluate_truncation_with_images_is_refused(default_generator):
    with pytest.raises(ganlite.UsageError, match="truncation goes with a model"):
        ganlite.evaluate(images=default_generator.generate(5), truncation=1.0)


# -- ganlite serve ------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["batching", "no batching"])
def server(request, tmp_path_factory):
    from test_serve import HAS_EXTRA, Server

    if not HAS_EXTRA:
        pytest.skip("the serve extra (starlette, uvicorn) is not installed")
    args = ["--model", "mnist-cdcgan", "--model", str(TINY_UNCONDITIONAL)]
    if request.param == "no batching":
        args.append("--no-batching")
    server = Server(tmp_path_factory.mktemp("server"), *args)
    yield server
    assert server.stop() == 0, server.log()
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("params, labels", [
    ({"n": 300, "seed": 7, "truncation": "0.7"}, None),      # more than one batch of 256
    ({"n": 20, "seed": 1, "digit": 4, "truncation": "1.5"}, 4),
    ({"n": 5, "seed": 2, "truncation": "2"}, None),
    ({"n": 9, "seed": 3}, None),                              # absent: off
])
def test_served_npy_is_the_api_bytes(server, default_generator, params, labels):
    from test_serve import generate_path, npy_bytes

    status, headers, body = server.get(generate_path(format="npy", **params))
    assert status == 200, body[:300]
    psi = float(params["truncation"]) if "truncation" in params else None
    assert body == npy_bytes(default_generator.generate(params["n"], params["seed"],
                                                         labels=labels, truncation=psi))


def test_served_unconditional_model_truncates(server, tiny_generator):
    from test_serve import TINY, generate_path, npy_bytes

    status, _, body = server.get(generate_path(model=TINY, n=6, truncation="0.3",
                                               format="npy"))
    assert status == 200 and body == npy_bytes(tiny_generator.generate(6, truncation=0.3))


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "1e999", "10.5", "abc", "",
                                 "0x1", "1_0", " 1", "1" * 50])
def test_served_bad_psi_is_400_naming_it(server, bad):
    from test_serve import generate_path

    status, headers, body = server.get(generate_path(n=2, truncation=bad))
    assert (status, headers["content-type"]) == (400, "application/json"), body
    answer = json.loads(body)
    assert answer == {"parameter": "truncation",
                      "error": f"truncation must be a number greater than 0 and at most "
                               f"10, got {bad[:57] + '...' if len(bad) > 60 else bad!r}"}


# -- README -------------------------------------------------------------------------------

def test_readme_python_example_runs_as_written(default_generator):
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text[text.index("### Precision or recall: truncation"):]
    start = section.index("```python\n") + len("```python\n")
    example = section[start:section.index("```", start)]
    scope = {"ganlite": ganlite, "gen": default_generator}
    exec(example, scope)
    assert scope["images"].shape == (64, 28, 28)
    assert np.array_equal(scope["images"], default_generator.decode(scope["z"], 7))
    assert np.abs(scope["z"]).max() <= 1.5
