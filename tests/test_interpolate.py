"""Latent walks: slerp, frames, the walk across labels, and their errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import ganlite
from ganlite._interpolate import slerp


def test_slerp_endpoints_and_norm():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(100), rng.standard_normal(100)
    path = slerp(a, b, np.linspace(0, 1, 11))
    assert np.allclose(path[0], a, atol=1e-5) and np.allclose(path[-1], b, atol=1e-5)
    # Unlike a straight line, the middle keeps the norm of Gaussian latents.
    assert np.linalg.norm(path[5]) > 0.9 * min(np.linalg.norm(a), np.linalg.norm(b))
    assert np.linalg.norm((a + b) / 2) < 0.8 * np.linalg.norm(path[5])


def test_walk_passes_through_each_seeds_image(default_generator):
    frames = ganlite.walk(default_generator, [4, 9], steps=6, label=3)
    assert frames.shape == (7, 28, 28) and frames.dtype == np.uint8
    first = default_generator.generate(1, seed=4, labels=3)[0]
    last = default_generator.generate(1, seed=9, labels=3)[0]
    assert np.abs(frames[0].astype(int) - first).max() <= 1
    assert np.abs(frames[-1].astype(int) - last).max() <= 1


def test_label_walk_and_gif(tmp_path, default_generator):
    if not default_generator.conditional:
        pytest.skip("default model is unconditional")
    frames = ganlite.label_walk(default_generator, seed=2)
    assert frames.shape == (10, 28, 28)
    ganlite.save_animation(frames, tmp_path / "walk.gif", frames_dir=tmp_path / "frames")
    with Image.open(tmp_path / "walk.gif") as gif:
        assert gif.n_frames == 10
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == 10


def test_cli_interpolate(cli, tmp_path):
    result = cli("interpolate", "--seeds", "1,2,3", "--steps", 4, "--out", tmp_path / "w.gif")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "w.gif") as gif:
        assert gif.n_frames == 9


@pytest.mark.parametrize("args,message", [
    (["--seeds", "1"], "at least two seeds"),
    (["--seeds", "a,b"], "separated by commas"),
    (["--seeds", "1,-2"], "separated by commas"),
    (["--steps", "1"], "--steps"),
    (["--digit", "12"], "out of range"),
])
def test_cli_interpolate_errors(cli, tmp_path, args, message):
    result = cli("interpolate", "--out", tmp_path / "w.gif", *args)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "w.gif").exists()


def test_label_walk_on_unconditional(tiny_generator):
    with pytest.raises(ganlite.UsageError, match="unconditional"):
        ganlite.label_walk(tiny_generator, seed=0)
