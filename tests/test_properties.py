"""Property-based: any argument either works or is a clean error; never a crash or a
partial file."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ganlite

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
anything = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True),
                     st.integers(-2**70, 2**70), st.text(max_size=5))


@SETTINGS
@given(n=st.one_of(st.integers(-3, 40), anything), seed=st.one_of(st.integers(-3, 2**64), anything),
       batch_size=st.one_of(st.integers(-2, 50), anything),
       labels=st.one_of(st.none(), st.integers(-2, 12), st.lists(st.integers(-1, 11), max_size=5)))
def test_api_works_or_raises_usage_error(default_generator, n, seed, batch_size, labels):
    try:
        images = default_generator.generate(n, seed=seed, batch_size=batch_size, labels=labels)
    except ganlite.UsageError:
        return
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8


cli_values = st.one_of(st.integers(-5, 30).map(str), st.text(
    alphabet="0123456789-,.xe ", min_size=0, max_size=6))


@SETTINGS
@given(n=cli_values, seed=cli_values, digit=st.one_of(st.none(), cli_values),
       batch=cli_values)
def test_cli_works_or_fails_cleanly(cli, n, seed, digit, batch):
    out = Path(tempfile.mkdtemp()) / "out"
    try:
        args = ["generate", "--n", n, "--seed", seed, "--batch-size", batch, "--out", out,
                "-q"]
        if digit is not None:
            args += ["--digit", digit]
        result = cli(*args)
        assert result.exit_code in (0, 1, 2), result.output
        assert "Traceback" not in result.output
        if result.exit_code == 0:
            files = sorted(out.glob("*.png"))
            assert len(files) == int(n)
        else:
            assert result.output.strip().splitlines()[-1].startswith("Error:")
            assert not out.exists() or not any(out.iterdir())
        assert not list(out.parent.rglob("*.tmp"))
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
