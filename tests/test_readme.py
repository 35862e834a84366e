"""Every `ganlite ...` command in README.md runs as written, in order, in an empty folder
(as a newcomer would after Quick start), and exits 0. Commands that write into the
repository's bench/results/ get that folder made first."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import ganlite

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_commands() -> list[list[str]]:
    """The `ganlite` command lines of README's fenced code blocks, comments removed."""
    commands, in_block = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block
        # A server runs until stopped: tests/test_serve.py runs README's `ganlite serve`.
        elif in_block and line.startswith("ganlite ") and not line.startswith("ganlite serve"):
            commands.append(shlex.split(line, comments=True))
    return commands


def test_readme_has_commands():
    commands = readme_commands()
    assert len(commands) >= 20
    assert all(c[0] == "ganlite" for c in commands)


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path):
    (tmp_path / "bench" / "results").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(Path(ganlite.__file__).parent.parent)}
    for command in readme_commands():
        done = subprocess.run([sys.executable, "-m", "ganlite", *command[1:]], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{shlex.join(command)}: {done.stderr}"
        assert "Traceback" not in done.stderr
