"""The `ganlite` command. Library errors become one line and an exit status:
2 for usage errors, 1 for runtime errors; never a traceback."""
from __future__ import annotations

import functools
import json
import os
import re
import signal
import sys
from typing import Any

import click

from . import __version__, _latents, _registry
from ._errors import GanliteError, OutputError, UsageError
from ._evaluate import MAX_SAMPLES
from ._interpolate import MAX_FRAMES
from ._model import MAX_BATCH_SIZE, LabelCycle
from ._providers import DEVICES
from ._shards import MAX_SHARDS as _MAX_SHARDS
from ._shards import shard_range as _shard_range
from .latents import MAX_TRUNCATION, check_truncation


def _errors_to_exit(func):
    """Library errors -> one line on stderr and exit 2 (usage) or 1 (runtime). OSErrors
    that escape the library (standard output closed or full) and MemoryError too: never
    a traceback."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            result = func(*args, **kwargs)
            if sys.stdout is not None:
                sys.stdout.flush()  # a full or closed stdout fails here, not at exit
            return result
        except UsageError as e:
            _fail(str(e), 2)
        except GanliteError as e:
            _fail(str(e), 1)
        except KeyboardInterrupt:
            _fail("\nInterrupted: files written so far are complete; rerun the same "
                  "command to finish.", 130, prefix="")
        except OSError as e:
            _silence_stdout()
            where = e.filename or "standard output"
            _fail(f"{where}: {e.strerror or type(e).__name__}", 1)
        except MemoryError:
            _fail("out of memory: use a smaller --batch-size or --n", 1)
    return wrapper


def _fail(message: str, status: int, prefix: str = "Error: ") -> None:
    """Print one line to stderr (if it can be written) and exit with `status`."""
    try:
        click.echo(f"{prefix}{message}", err=True)
    except OSError:
        pass
    sys.exit(status)


def _silence_stdout() -> None:
    """Point a broken stdout at /dev/null, so that the interpreter's final flush of what
    is still buffered cannot print an 'Exception ignored' traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass


def _emit(text: str) -> None:
    """Write the command's result to standard output; a closed stdout is an error, not
    silence."""
    if sys.stdout is None:
        raise OutputError("standard output is closed: nothing to write the result to")
    click.echo(text)


class _Progress:
    """A progress bar on stderr that appears with the first unit of work, so that a run
    refused before it starts prints only its one error line."""

    def __init__(self, length: int, label: str, hidden: bool):
        self.length, self.label, self.hidden = length, label, hidden
        self.bar: Any = None   # a click ProgressBar once work starts

    def update(self, k: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=self.length, label=self.label,
                                         file=sys.stderr, hidden=self.hidden)
            self.bar.__enter__()
        self.bar.update(k)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _sigterm_as_interrupt():
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def _quiet_onnxruntime() -> None:
    """The command owns its process: onnxruntime's own log lines (e.g. 'Failed to load
    library libonnxruntime_providers_cuda.so' before the CPU fallback that ganlite then
    refuses) would come before our one-line error. The library leaves this global alone."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(4)


model_option = click.option("--model", "-m", default=None, metavar="NAME|PATH",
                            help="Built-in model name or .onnx path (default: "
                                 f"{_registry.DEFAULT_MODEL}).")
device_option = click.option("--device", type=click.Choice(DEVICES), default="auto",
                             show_default=True,
                             help="auto picks CUDA when available; openvino and "
                                  "openvino-bf16 (CPUs with AMX or AVX512_BF16) need "
                                  "ganlite[openvino].")
quiet_option = click.option("--quiet", "-q", is_flag=True,
                            help="No progress bar and no summary line on stderr.")
seed_option = click.option("--seed", type=click.IntRange(0, _latents.MAX_SEED), default=0,
                           show_default=True, help="Same seed, same bytes.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ganlite")
def main():
    """Generate and evaluate handwritten digits with small ONNX GAN models."""


def _parse_classes(model, digits: tuple[str, ...], names: tuple[str, ...], balanced: bool):
    """--digit 7 --digit 3 / --digit 3,7 (class numbers) or --class sneaker (class names,
    from the model's card) -> the labels of the run: one class, or a LabelCycle (several
    classes share the images in turn: --digit 3,7 -> 3, 7, 3, 7, ...; --balanced -> every
    class in turn)."""
    if balanced and (digits or names):
        raise UsageError("--balanced cannot be combined with --digit or --class")
    if not digits and not names and not balanced:
        return None
    if not model.conditional:
        raise UsageError(f"model {model.name!r} is unconditional: --digit/--class/--balanced "
                         f"need a conditional model")
    if balanced:
        return LabelCycle(range(model.num_classes))
    chosen: list[int | str] = []
    for item in digits:
        for part in item.split(","):
            part = part.strip()
            if not re.fullmatch(r"-?[0-9]+", part):
                raise UsageError(f"--digit {part!r} is not a class number 0-"
                                 f"{model.num_classes - 1}")
            value = int(part)
            if not 0 <= value < model.num_classes:
                raise UsageError(f"--digit {value} out of range 0-{model.num_classes - 1}")
            chosen.append(value)
    for item in names:
        chosen.extend(model.class_index(part) for part in item.split(","))
    return chosen[0] if len(chosen) == 1 else LabelCycle(chosen)


def _parse_truncation(text: str | None) -> float | None:
    """--truncation PSI -> psi (None: off). Parsed here, not by a click type (which would
    print its usage text): a bad value is one line and exit 2, like the library's usage
    errors."""
    if text is None:
        return None
    try:
        return check_truncation(float(text))
    except (ValueError, UsageError):
        raise UsageError(f"--truncation must be a number greater than 0 and at most "
                         f"{MAX_TRUNCATION:g}, got {text!r}") from None


@main.command()
@click.option("--n", "-n", "n", type=click.IntRange(min=1), required=True,
              help="How many images.")
@click.option("--out", type=click.Path(file_okay=True, dir_okay=True), required=True,
              help="Output folder (created if missing).")
@seed_option
@model_option
@device_option
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH_SIZE), default=256,
              show_default=True, help="Images per onnxruntime call (memory grows with it).")
@click.option("--digit", "digits", multiple=True, metavar="D[,D...]",
              help="Class(es) to generate (conditional models); repeatable.")
@click.option("--class", "class_names", multiple=True, metavar="NAME[,NAME...]",
              help="Class(es) by name, as in the model's card (see `ganlite info`).")
@click.option("--balanced", is_flag=True, help="Cycle through all classes, n/10 each.")
@click.option("--grid", type=click.Path(dir_okay=False), default=None,
              help="Also save the first 100 images as one grid PNG.")
@click.option("--format", "fmt", type=click.Choice(["png", "npy", "parquet"]), default="png",
              show_default=True,
              help="png files, or one images.npy for bulk use; --engine ray: npy parts, "
                   "or parquet.")
@click.option("--overwrite", is_flag=True,
              help="Replace another run's files in --out (other files are left alone).")
@click.option("--truncation", default=None, metavar="PSI",
              help=f"Truncation trick: latent values beyond +-PSI redrawn within it "
                   f"(0 < PSI <= {MAX_TRUNCATION:g}; smaller: more typical, less "
                   f"varied images). Default: off.")
@click.option("--shard", default=None, metavar="I/K",
              help="Write only shard I of K of this run (I counts from 0: 0/16 ... 15/16); "
                   "the K shards may run at once into one --out.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
              show_default=True,
              help="ray: Ray Data actors (needs ganlite[ray]) on the cluster of RAY_ADDRESS "
                   "or a new local instance; --out may be a URI (s3://bucket/path).")
@quiet_option
@_errors_to_exit
def generate(n, out, seed, model, device, batch_size, digits, class_names, balanced, grid,
             fmt, overwrite, truncation, shard, engine, quiet):
    """Generate N images into folder OUT."""
    from ._files import check_new_file
    from ._images import save_grid
    from ._model import load
    from ._writer import write_images

    psi = _parse_truncation(truncation)
    shard = _parse_shard(shard)
    if engine == "ray" or fmt == "parquet":
        if shard is not None:
            raise UsageError("--shard is for the local engine: --engine ray spreads one run "
                             "over the Ray cluster itself")
        return _generate_on_ray(engine, n, out, seed, model, device, digits, class_names,
                                balanced, grid, fmt, overwrite, psi, quiet)
    _sigterm_as_interrupt()
    _quiet_onnxruntime()
    generator = load(model, device=device)
    labels = _parse_classes(generator, digits, class_names, balanced)
    if grid:
        check_new_file(grid, "grid file")
    count = n if shard is None else len(range(*_shard_range(n, *shard)))
    with _Progress(count, "generating", hidden=quiet or count < 1000) as bar:
        result = write_images(generator, n, out, seed, labels=labels,
                              batch_size=batch_size, fmt=fmt, overwrite=overwrite,
                              progress=bar.update, truncation=psi, shard=shard)
    if grid:
        save_grid(generator.generate(min(n, 100), seed, batch_size=batch_size, labels=labels,
                                     truncation=psi), grid, columns=10)
    what = f"{n} images as PNG files" if fmt == "png" else "images.npy"
    if shard is not None:
        what = (f"shard {shard[0]} of {shard[1]}: images {result.indices.start}-"
                f"{result.indices.stop - 1}" + ("" if fmt == "png" else ", npy parts"))
    if result.written == 0:
        done = f"{out} already holds this run ({what}): nothing to do"
    elif result.resumed_at > result.indices.start:
        done = f"resumed at image {result.resumed_at}: wrote {result.written} images to {out}"
    else:
        done = f"wrote {result.written} images to {out}" + \
            (f" ({what})" if shard is not None else "")
    if not quiet:
        truncated = "" if psi is None else f", truncation {psi}"
        click.echo(f"{done} (model {generator.name}, seed {seed}{truncated}, "
                   f"{generator.providers[0]})", err=True)
    if overwrite and result.others:
        shown = ", ".join(result.others[:5]) + (", ..." if len(result.others) > 5 else "")
        click.echo(f"left {len(result.others)} file(s) ganlite did not write in {out}: "
                   f"{shown}", err=True)


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    """--shard I/K -> (I, K), I counted from 0 (a job array's task index)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", text)
    if not match or not 0 <= int(match[1]) < int(match[2]) <= _MAX_SHARDS:
        raise UsageError(f"--shard {text!r}: expected I/K, shard I of K counted from 0 "
                         f"(0 <= I < K <= {_MAX_SHARDS}), e.g. 3/16")
    return int(match[1]), int(match[2])


def _generate_on_ray(engine, n, out, seed, model, device, digits, class_names, balanced,
                     grid, fmt, overwrite, psi, quiet):
    """`generate --engine ray`: ganlite.ray.write, after refusing what it cannot do."""
    from ._files import check_new_file
    from ._images import save_grid
    from ._model import load

    if engine != "ray":
        raise UsageError(f"--format {fmt} needs --engine ray (the local engine writes png "
                         f"or npy)")
    if overwrite:
        raise UsageError("--overwrite is for the local engine: --engine ray writes into a "
                         "new or empty --out only")
    if device not in ("auto", "cpu"):
        raise UsageError(f"--engine ray runs every actor on one CPU; --device {device} is "
                         f"for the local engine")
    from . import ray as ganlite_ray  # UsageError naming the extra when Ray is missing

    _sigterm_as_interrupt()
    _quiet_onnxruntime()
    generator = load(model, device="cpu")
    labels = _parse_classes(generator, digits, class_names, balanced)
    if grid:
        check_new_file(grid, "grid file")
    ganlite_ray._check_output(out)   # before Ray starts: a refusal costs nothing
    try:
        with ganlite_ray._stderr_to_file() as log:
            try:
                ganlite_ray._init_quietly()
                result = ganlite_ray.write(n, out, fmt=fmt, seed=seed, model=generator.path,
                                           labels=labels, truncation=psi)
            except GanliteError as e:
                if log.stat().st_size:
                    raise type(e)(f"{e} (Ray's messages: {log})") from None
                raise
    except KeyboardInterrupt:
        _fail(f"\nInterrupted: {out} holds an incomplete run (it has no "
              f".ganlite-run.json); remove it and run again.", 130, prefix="")
    if grid:
        save_grid(generator.generate(min(n, 100), seed, labels=labels, truncation=psi), grid,
                  columns=10)
    if not quiet:
        truncated = "" if psi is None else f", truncation {psi}"
        click.echo(f"wrote {result.n} images to {out} as {result.files} {fmt} file(s) on Ray "
                   f"(model {generator.name}, seed {seed}{truncated})", err=True)


@main.command()
@click.option("--seeds", default="0,1,2,3", show_default=True, metavar="S,S[,S...]",
              help="Walk through the latents of these seeds (image 0 of each).")
@click.option("--steps", type=click.IntRange(2, MAX_FRAMES), default=24, show_default=True,
              help="Frames from one seed to the next.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Animated GIF.")
@click.option("--frames", type=click.Path(file_okay=False), default=None,
              help="Also write each frame as a PNG into this folder.")
@click.option("--digit", default=None, metavar="D",
              help="Class to hold, by number (conditional models).")
@click.option("--class", "class_name", default=None, metavar="NAME",
              help="Class to hold, by its name in the card (e.g. sneaker).")
@click.option("--across-labels", is_flag=True,
              help="Fix the latent of the first seed and walk through every class.")
@model_option
@device_option
@quiet_option
@_errors_to_exit
def interpolate(seeds, steps, out, frames, digit, class_name, across_labels, model, device,
                quiet):
    """A latent walk (spherical interpolation) as an animated GIF."""
    from ._files import check_new_file, make_folder
    from ._interpolate import label_walk, save_animation, walk
    from ._model import load

    parts = [s.strip() for s in seeds.split(",") if s.strip()]
    if not all(re.fullmatch(r"[0-9]+", s) for s in parts):
        raise UsageError(f"--seeds {seeds!r}: expected seeds (0-{_latents.MAX_SEED}) "
                         f"separated by commas")
    seed_list = [int(s) for s in parts]
    check_new_file(out, "animation file")
    if frames is not None:
        make_folder(frames, "frames folder")
    _quiet_onnxruntime()
    generator = load(model, device=device)
    label = _parse_classes(generator, () if digit is None else (digit,),
                           () if class_name is None else (class_name,), False)
    if isinstance(label, LabelCycle):
        raise UsageError("a walk holds one class: give one --digit or --class")
    if across_labels:
        images = label_walk(generator, seed_list[0] if seed_list else 0)
        frame_ms = 400
    else:
        images = walk(generator, seed_list, steps, label)
        frame_ms = 80
    save_animation(images, out, frame_ms=frame_ms, frames_dir=frames)
    if not quiet:
        click.echo(f"wrote {out} ({len(images)} frames)" + (f" and {frames}/" if frames
                                                             else ""), err=True)


@main.command()
@model_option
@click.option("--json", "as_json", is_flag=True, help="The whole card as JSON.")
@_errors_to_exit
def info(model, as_json):
    """Show a model's card (the default model's if none is given)."""
    from ._model import read_card

    path = _registry.resolve(model)
    card = read_card(path)
    if as_json:
        _emit(json.dumps(card, indent=2))
        return
    keys = ("name", "kind", "variant", "variant_of", "dataset", "architecture", "latent_dim",
            "conditional", "num_classes", "class_names", "train_steps", "train_images",
            "output_format", "parity", "variant_method")
    lines = [f"{'path':<14} {path}"]
    for key in keys:
        if key in card:
            value = card[key]
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items())
            elif isinstance(value, list):
                value = ", ".join(map(str, value))
            lines.append(f"{key:<14} {value}")
    _emit("\n".join(lines))


@main.command("models")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: {name: {kind, dataset, architecture, precision, "
                   "variant_of, default, path}}.")
@_errors_to_exit
def list_models(as_json):
    """List the built-in models: generators, and the classifiers that evaluate them."""
    from ._model import read_card

    lines, listing = [], {}
    for name, path in _registry.builtin_models().items():
        card = read_card(path)
        # int8 variants say so: same weights as the float model, quantized, quality-gated.
        precision = card.get("variant") or "float32"
        listing[name] = {"kind": card["kind"], "dataset": card.get("dataset"),
                         "architecture": card.get("architecture"), "precision": precision,
                         "variant_of": card.get("variant_of"),
                         "default": name == _registry.DEFAULT_MODEL, "path": str(path)}
        default = " (default)" if name == _registry.DEFAULT_MODEL else ""
        of = f" of {card['variant_of']}" if card.get("variant_of") else ""
        lines.append(f"{name:<22} {card['kind']:<11} {card.get('dataset', ''):<14} "
                     f"{card.get('architecture', ''):<6} {precision}{of}{default}")
    _emit(json.dumps(listing, indent=2) if as_json else "\n".join(lines))


@main.command()
@model_option
@click.option("--images", type=click.Path(), default=None,
              help="Evaluate a folder of 28x28 PNGs instead of a model.")
@click.option("--dataset", default=None, metavar="NAME",
              help="With --images: whose classifier judges them (mnist, fashion_mnist; "
                   "default mnist). A model is judged by its card's dataset.")
@click.option("--n", "-n", "n", type=click.IntRange(2, MAX_SAMPLES), default=10_000,
              show_default=True, help="Samples to generate and judge.")
@seed_option
@device_option
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH_SIZE), default=1000,
              show_default=True, help="Images per onnxruntime call.")
@click.option("--truncation", default=None, metavar="PSI",
              help="With a model: judge samples drawn with the truncation trick at PSI "
                   "(as generate --truncation). Default: off.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@quiet_option
@_errors_to_exit
def evaluate(model, images, dataset, n, seed, device, batch_size, truncation, as_json, quiet):
    """FCD, classifier score, class shares, precision and recall of a model or image
    folder."""
    from ._evaluate import Evaluator
    from ._images import load_png_folder
    from ._model import load

    if images and model:
        raise UsageError("give --model or --images, not both")
    if dataset and not images:
        raise UsageError("--dataset goes with --images; a model is judged by the "
                         "classifier of its card's dataset")
    psi = _parse_truncation(truncation)
    if images and psi is not None:
        raise UsageError("--truncation goes with a model; --images are judged as they are")
    hidden = quiet or as_json
    _quiet_onnxruntime()
    if images:
        evaluator = Evaluator(dataset or "mnist", device=device)
        array = load_png_folder(images)
        with _Progress(len(array), "classifying", hidden=hidden or len(array) < 2000) as bar:
            report = evaluator.evaluate_images(array, f"folder {images}", bar.update,
                                               batch_size=batch_size)
    else:
        generator = load(model, device=device)
        evaluator = Evaluator(generator.card.get("dataset", "mnist"), device=device)
        with _Progress(evaluator.progress_total(generator, n), "evaluating",
                       hidden=hidden or n < 2000) as bar:
            report = evaluator.evaluate_generator(generator, n, seed, bar.update,
                                                  batch_size=batch_size, truncation=psi)
    _emit(json.dumps(report.to_dict()) if as_json else report.table())


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (there is no authentication: keep it on loopback, "
                   "or put a proxy in front).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--model", "-m", "models", multiple=True, metavar="NAME|PATH",
              help="Model(s) to serve, repeatable (default: every built-in generator).")
@device_option
@click.option("--max-n", type=click.IntRange(1, 1_000_000), default=10_000,
              show_default=True, help="Most images one request may ask for.")
@click.option("--max-batch", type=click.IntRange(1, MAX_BATCH_SIZE), default=256,
              show_default=True, help="Most images merged into one onnxruntime call.")
@click.option("--batch-wait-ms", type=click.FloatRange(0, 1000), default=0.0,
              show_default=True,
              help="Longest wait for more requests to merge (0: merge the requests that "
                   "queued while the model was busy).")
@click.option("--no-batching", is_flag=True,
              help="One onnxruntime call per request (worker threads), no merging.")
@click.option("--web", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Folder of the web page (default: web/ of the checkout, else of the "
                   "current folder, if it holds index.html).")
@click.option("--allow-origin", "allow_origins", multiple=True, metavar="ORIGIN",
              help="Let pages from this origin call the API (CORS), e.g. "
                   "http://localhost:3000; repeatable.")
@click.option("--no-access-log", is_flag=True, help="No log line per request.")
@_errors_to_exit
def serve(host, port, models, device, max_n, max_batch, batch_wait_ms, no_batching, web,
          allow_origins, no_access_log):
    """Serve the models and the web page over HTTP (needs the `serve` extra)."""
    from pathlib import Path

    try:
        from . import _server
    except ImportError as e:
        if (e.name or "").split(".")[0] not in ("starlette", "uvicorn", "anyio"):
            raise
        raise GanliteError("ganlite serve needs Starlette and uvicorn: "
                           "pip install 'ganlite[serve]'") from None
    _quiet_onnxruntime()
    if not models:
        from ._model import list_models as builtin_generators

        names = sorted(builtin_generators("generator"),
                       key=lambda name: name != _registry.DEFAULT_MODEL)   # default first
        models = tuple(names) or (_registry.DEFAULT_MODEL,)
    options = _server.Options(
        max_n=max_n, batching=not no_batching, max_batch=max_batch,
        batch_wait_ms=batch_wait_ms,
        web=Path(web) if web is not None else _server.default_web_folder(),
        allow_origins=tuple(allow_origins))
    _server.serve(host, port, models, device, options, access_log=not no_access_log)


if __name__ == "__main__":
    main()
