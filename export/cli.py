"""The click commands of `python -m export`:

   python -m export model RUN_DIR --out artifacts/NAME.onnx [--name NAME] [--standing-stats N]
   python -m export optimize FILE.onnx      (rewrite a generator exported before optimize)
   python -m export int8 FILE.onnx          (its int8 variant, if it passes the quality gate)
   python -m export reseal FILE.onnx...     (seal models exported before model_sha256)

`model` converts a run's final model to ONNX, checks parity with Keras, writes the model
card into the ONNX metadata (and NAME.json beside it), and for generators a sample grid
NAME.png and the run's training film NAME-training.gif. A failed export writes nothing.
"""
from __future__ import annotations

from pathlib import Path

import click

from train.clitools import CONTEXT


class _Commands(click.Group):
    """Subcommands, with a hint for the command line of older versions
    (`python -m export RUN_DIR --out ...`)."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.commands and Path(args[0]).is_dir():
            raise click.UsageError(f"no command {args[0]!r}: to export a run folder, use "
                                   f"python -m export model {args[0]} --out NAME.onnx", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=_Commands, context_settings=CONTEXT)
def main() -> None:
    """Export trained models to sealed ONNX files (tf2onnx), or reseal older exports."""


@main.command(context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="NAME.onnx to write (NAME.json, .png, ... beside it).")
@click.option("--name", default=None, help="Model name in the card (default: NAME).")
@click.option("--no-optimize", is_flag=True,
              help="Keep tf2onnx's graph as converted (default: rewrite a generator for "
                   "onnxruntime's CPU kernels, export/optimize.py, parity-checked).")
@click.option("--standing-stats", type=int, default=0, show_default=True, metavar="N",
              help="Generators: recompute the BatchNorm statistics from N of the model's "
                   "own samples (1,000-200,000; 0: keep training's moving averages).")
def model(run_dir: Path, out: Path, name: str | None, no_optimize: bool,
          standing_stats: int) -> None:
    """Export the final model of RUN_DIR, a run folder of python -m train."""
    from .config import ExportConfig

    config = ExportConfig(run_dir, out, name, optimize=not no_optimize,
                          standing_stats=standing_stats)
    from .model import export_run

    export_run(config)
    click.echo(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)", err=True)


@main.command("optimize", context_settings=CONTEXT)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--keras", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The Keras model FILE was exported from (default: NAME.keras beside it).")
def optimize_command(file: Path, keras: Path | None) -> None:
    """Rewrite a generator exported without optimization, in place (same weights; parity
    checked against its Keras model; NAME.json and NAME.png rewritten; resealed)."""
    from .reoptimize import optimize_file

    parity = optimize_file(file, keras)["parity"]
    click.echo(f"{file}: optimized; parity with Keras: max abs {parity['max_abs_float']:.2e}, "
               f"{parity['max_gray_levels']} gray level(s)", err=True)


@main.command("int8", context_settings=CONTEXT)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="NAME-int8.onnx to write (default: beside FILE).")
@click.option("--seeds", default="0,1,2", show_default=True, metavar="S,S,...",
              help="Sample seeds of the quality gate.")
@click.option("--n", "n", type=click.IntRange(2, 1_000_000), default=10_000, show_default=True,
              help="Samples per seed.")
def int8_command(file: Path, out: Path | None, seeds: str, n: int) -> None:
    """Make the int8 variant of optimized generator FILE; write it only if it passes the
    quality gate against FILE (FCD within 5 %, score 0.05, precision/recall 0.02, on-label)."""
    from .int8 import make_int8

    try:
        seed_list = tuple(int(s) for s in seeds.split(","))
    except ValueError:
        raise click.BadParameter(f"{seeds!r} is not a comma-separated list of integers",
                                 param_hint="--seeds") from None
    gate = make_int8(file, out, seed_list, n)
    written = out or file.with_name(f"{file.stem}-int8.onnx")
    click.echo(f"passed the quality gate: FCD {gate['int8']['fcd']:.3f} vs float "
               f"{gate['float']['fcd']:.3f}; wrote {written}", err=True)


@main.command(context_settings=CONTEXT)
@click.argument("files", nargs=-1, required=True,
                type=click.Path(path_type=Path, dir_okay=False))
def reseal(files: tuple[Path, ...]) -> None:
    """Seal models exported before model_sha256 (and their NAME.json cards), in place:
    the SHA-256 of the whole file with the card; graphs unchanged. Needs no TensorFlow."""
    from ganlite import GanliteError

    from .errors import ExportError
    from .reseal import reseal as reseal_file

    failed: list[GanliteError] = []
    for path in files:
        try:
            click.echo(f"{path}: model_sha256 {reseal_file(path)}", err=True)
        except GanliteError as e:
            failed.append(e)
    if len(failed) == 1 and len(files) == 1:
        raise failed[0]
    if failed:
        raise ExportError(f"{len(failed)} of {len(files)} models not resealed: "
                          + "; ".join(str(e) for e in failed))
