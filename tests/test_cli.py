"""`ganlite generate / info / models`: files, bytes, resume, grids, formats."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

import ganlite


def _pngs(folder):
    return sorted(p for p in folder.iterdir() if p.suffix == ".png")


def test_generate_writes_n_grayscale_digits(cli, tmp_path):
    result = cli("generate", "--n", 100, "--out", tmp_path / "digits")
    assert result.exit_code == 0, result.output
    files = _pngs(tmp_path / "digits")
    assert len(files) == 100
    with Image.open(files[0]) as im:
        assert im.size == (28, 28) and im.mode == "L"
    assert not [p for p in (tmp_path / "digits").iterdir() if p.name.endswith(".tmp")]


def test_same_seed_same_bytes(cli, tmp_path):
    for name in ("a", "b"):
        assert cli("generate", "--n", 30, "--seed", 7, "--out", tmp_path / name).exit_code == 0
    a, b = _pngs(tmp_path / "a"), _pngs(tmp_path / "b")
    assert [p.name for p in a] == [p.name for p in b]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))


def test_files_match_the_api(cli, tmp_path, default_generator):
    result = cli("generate", "--n", 5, "--seed", 3, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    images = default_generator.generate(5, seed=3)
    files = _pngs(tmp_path)
    assert len(files) == 5
    for image, path in zip(images, files, strict=True):
        assert np.array_equal(np.asarray(Image.open(path)), image)


def test_rerun_completes_a_partial_folder_with_the_same_bytes(cli, tmp_path):
    cli("generate", "--n", 40, "--out", tmp_path / "full")
    cli("generate", "--n", 40, "--out", tmp_path / "part")
    files = _pngs(tmp_path / "part")
    for p in files[10:30]:
        p.unlink()
    kept_mtime = files[0].stat().st_mtime_ns
    result = cli("generate", "--n", 40, "--out", tmp_path / "part")
    assert result.exit_code == 0 and "wrote 20 images" in result.output
    assert files[0].stat().st_mtime_ns == kept_mtime  # not rewritten
    for x, y in zip(_pngs(tmp_path / "full"), _pngs(tmp_path / "part"), strict=True):
        assert x.name == y.name and x.read_bytes() == y.read_bytes()


def test_another_run_into_the_same_folder_needs_overwrite(cli, tmp_path):
    cli("generate", "--n", 5, "--out", tmp_path)
    before = {p.name: p.read_bytes() for p in _pngs(tmp_path)}
    result = cli("generate", "--n", 5, "--seed", 1, "--out", tmp_path)
    assert result.exit_code == 1 and "overwrite them" in result.output
    assert {p.name: p.read_bytes() for p in _pngs(tmp_path)} == before
    assert cli("generate", "--n", 5, "--seed", 1, "--out", tmp_path, "--overwrite").exit_code == 0
    assert {p.name: p.read_bytes() for p in _pngs(tmp_path)} != before


def test_grid_and_npy(cli, tmp_path, default_generator):
    result = cli("generate", "--n", 20, "--out", tmp_path / "npy", "--format", "npy",
                 "--grid", tmp_path / "grid.png")
    assert result.exit_code == 0, result.output
    images = np.load(tmp_path / "npy" / "images.npy")
    assert images.shape == (20, 28, 28) and images.dtype == np.uint8
    assert np.array_equal(images, default_generator.generate(20, seed=0))
    with Image.open(tmp_path / "grid.png") as im:
        assert im.mode == "L" and im.size[0] > 28 * 10


def test_conditional_digits_in_file_names(cli, tmp_path, default_generator):
    assert default_generator.conditional   # the shipped default is conditional
    result = cli("generate", "--n", 6, "--digit", "3,7", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert [p.name for p in _pngs(tmp_path)] == [
        "0000_3.png", "0001_7.png", "0002_3.png", "0003_7.png", "0004_3.png", "0005_7.png"]
    result = cli("generate", "--n", 20, "--balanced", "--out", tmp_path / "b")
    labels = [int(p.stem.split("_")[1]) for p in _pngs(tmp_path / "b")]
    assert np.bincount(labels).tolist() == [2] * 10


def test_info_and_models(cli):
    card = json.loads(cli("info", "--json").output)
    assert card == ganlite.read_card()           # the whole card, exactly
    assert card["name"] == ganlite.DEFAULT_MODEL
    result = cli("info")
    assert result.exit_code == 0
    rows = dict(line.split(None, 1) for line in result.output.strip().splitlines())
    assert rows["name"] == card["name"] and rows["latent_dim"] == str(card["latent_dim"])
    assert rows["class_names"] == ", ".join(card["class_names"])
    assert rows["path"] == str(ganlite.list_models()[ganlite.DEFAULT_MODEL])
    other = json.loads(cli("info", "--model", "fashion-cdcgan", "--json").output)
    assert other["name"] == "fashion-cdcgan" and other != card
    listing = json.loads(cli("models", "--json").output)
    assert set(listing) == set(ganlite.list_models(kind=None))
    assert [n for n, m in listing.items() if m["default"]] == [ganlite.DEFAULT_MODEL]
    text = cli("models").output.splitlines()
    assert len(text) == len(listing)
    assert [line for line in text if line.endswith("(default)")] == [
        line for line in text if line.startswith(ganlite.DEFAULT_MODEL + " ")]


def test_class_by_name(cli, tmp_path):
    result = cli("generate", "--n", 4, "--class", "7", "--class", "1", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert [p.name for p in _pngs(tmp_path)] == ["0000_7.png", "0001_1.png", "0002_7.png",
                                                 "0003_1.png"]
    result = cli("generate", "--n", 4, "--class", "sneaker", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "choose from 0, 1, 2" in result.output
    assert not (tmp_path / "x").exists()
