"""python -m export RUN_DIR --out artifacts/NAME.onnx
   python -m export reseal FILE.onnx...     (seal older exports: see reseal)

Converts a run's final model to ONNX, checks parity with Keras, writes the model card into
the ONNX metadata (and NAME.json beside it), and for generators a sample grid NAME.png and
the run's training film NAME-training.gif.
Everything is written to temporary names first: a failed export leaves nothing behind.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PIXEL_FORMAT = "uint8 [batch, 28, 28], 0 = black, 255 = white (grayscale)"


def train_command(config: dict) -> str:
    """The `python -m train gan ...` command line that reproduces a run's config."""
    parts = ["python -m train gan", f"--out {config['out']}", f"--arch {config['arch']}",
             f"--dataset {config['dataset']}"]
    if config.get("data"):
        parts.append(f"--data {config['data']}")
    if config.get("limit"):
        parts.append(f"--limit {config['limit']}")
    if config.get("conditional"):
        parts.append("--conditional")
    for key in ("latent_dim", "steps", "batch_size", "optimizer", "g_lr", "d_lr", "beta_1",
                "ema_decay", "sample_every", "fcd_samples", "seed"):
        parts.append(f"--{key.replace('_', '-')} {config[key]}")
    if config.get("jit_compile"):
        parts.append("--jit-compile")
    return " ".join(parts)


def _versions() -> dict:
    import keras
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "tf2onnx": tf2onnx.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def _finish(proto, card: dict, out: Path) -> bytes:
    """Stamp the card into the model and seal it (model_sha256 over the whole file, card
    included; card gains the hash); verify it loads in ganlite."""
    import onnx
    import onnxruntime as ort

    from ganlite import _card
    from ganlite._model import CARD_KEY, _signature

    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    card["inputs"] = _signature(session.get_inputs())
    card["outputs"] = _signature(session.get_outputs())
    for key in (_card.HASH_KEY, _card.LEGACY_HASH_KEY):
        card.pop(key, None)
    proto.producer_name = "ganlite-export"
    proto.doc_string = f"{card['name']}: {card.get('summary', '')}"
    onnx.helper.set_model_props(proto, {
        CARD_KEY: json.dumps(card),
        "Image.BitmapPixelFormat": "Gray8",
        "Image.NominalPixelRange": "NominalRange_0_255",
    })
    onnx.checker.check_model(proto)
    data = _card.seal(proto.SerializeToString(), card)
    # The seal, the card's schema and its agreement with the graph, as ganlite checks them.
    card[_card.HASH_KEY] = _card.read(out, data)[_card.HASH_KEY]
    return data


def _write_all(files: dict[Path, bytes]) -> None:
    """Write every file under a temporary name, then rename them all."""
    tmps = {}
    try:
        for path, data in files.items():
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(data)
            tmps[path] = tmp
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)


def export_gan(run_dir: Path, out: Path, name: str) -> dict:
    import keras

    from .convert import export_generator

    info = json.loads((run_dir / "run.json").read_text())
    config = info["config"]
    conditional = bool(config["conditional"])
    model = keras.models.load_model(run_dir / "generator.keras")
    from train.data import CLASS_NAMES

    proto, parity = export_generator(model, config["latent_dim"], conditional, 10)
    print(f"parity: max abs {parity['max_abs_float']:.2e} on [-1, 1], "
          f"{parity['max_gray_levels']} gray level(s) on uint8", file=sys.stderr)
    card = {
        "name": name, "kind": "generator",
        "summary": f"{'conditional ' if conditional else ''}{config['arch']} GAN "
                   f"generator of {config['dataset']} images",
        "dataset": config["dataset"], "architecture": config["arch"],
        "latent_dim": config["latent_dim"], "latent_distribution": "N(0, 1)",
        "conditional": conditional, "num_classes": 10,
        "class_names": CLASS_NAMES[config["dataset"]],
        "input_names": {"z": "z", **({"label": "label"} if conditional else {})},
        "output_format": PIXEL_FORMAT,
        "train_steps": config["steps"], "train_images": info.get("train_images"),
        "train_seconds": info.get("train_seconds"), "batch_size": config["batch_size"],
        "optimizer": config["optimizer"], "g_lr": config["g_lr"], "d_lr": config["d_lr"],
        "ema_decay": config["ema_decay"], "seed": config["seed"],
        "train_command": train_command(config),
        "export_command": f"python -m export {run_dir} --out {out}",
        "versions": {**info.get("versions", {}), **_versions()},
        "parity": parity,
        "exported": datetime.date.today().isoformat(),
    }
    data = _finish(proto, card, out)
    # The Keras model travels with the ONNX one: bench/speed.py compares the two.
    files = {out: data, out.with_suffix(".json"): json.dumps(card, indent=2).encode(),
             out.with_suffix(".keras"): (run_dir / "generator.keras").read_bytes()}
    film = run_dir / "training.gif"
    if film.exists():  # the training film travels with the model: NAME-training.gif
        files[out.with_name(f"{out.stem}-training.gif")] = film.read_bytes()
    _write_all(files)
    _write_grid(out, conditional)
    return card


def _write_grid(out: Path, conditional: bool) -> None:
    import ganlite

    generator = ganlite.Generator(out, device="cpu")
    labels = (list(range(10)) * 10) if conditional else None
    ganlite.save_grid(generator.generate(100, seed=0, labels=labels),
                      out.with_suffix(".png"), columns=10)


def export_classifier_run(run_dir: Path, out: Path, name: str) -> dict:
    import keras

    from .convert import export_classifier

    info = json.loads((run_dir / "run.json").read_text())
    model = keras.models.load_model(run_dir / "classifier.keras")
    proto, parity = export_classifier(model)
    print(f"parity: probs {parity['max_abs_probs']:.2e}, features "
          f"{parity['max_abs_features']:.2e}", file=sys.stderr)
    card = {
        "name": name, "kind": "classifier",
        "summary": f"{info['dataset']} classifier for evaluating generators",
        "dataset": info["dataset"], "architecture": "cnn",
        "test_accuracy": info["test_accuracy"], "num_classes": 10,
        "feature_dim": 128, "input_format": PIXEL_FORMAT,
        "reference": f"{out.with_suffix('.npz').name}: feature mean, covariance, features "
                     f"and k=3 radii of the {info['test_images']} test images",
        "train_command": f"python -m train classifier --out {run_dir} --dataset "
                         f"{info['dataset']} --data DIR",
        "export_command": f"python -m export {run_dir} --out {out}",
        "versions": {**info.get("versions", {}), **_versions()},
        "parity": parity, "exported": datetime.date.today().isoformat(),
    }
    data = _finish(proto, card, out)
    _write_all({out: data, out.with_suffix(".json"): json.dumps(card, indent=2).encode(),
                out.with_suffix(".npz"): (run_dir / "reference.npz").read_bytes()})
    return card


def reseal(path: Path) -> str:
    """Seal an exported model in place with model_sha256 (whole file, card included),
    graph and every other byte outside the card kept; its NAME.json copy of the card, if
    any, is rewritten to match. Old cards must still match their graph_sha256; sealed
    ones their model_sha256. Works on bytes: no onnx, no TensorFlow."""
    from ganlite import _card

    data = _card.read_file(path)
    card, _, _ = _card.unverified_card(path, data)
    if _card.HASH_KEY in card:
        _card.check_seal(path, data)
    else:
        from ganlite import _onnxfile

        if _onnxfile.graph_sha256(data) != card.get(_card.LEGACY_HASH_KEY):
            raise _card.IntegrityError(f"{path}: graph SHA-256 does not match its card; "
                                       f"refusing to seal a modified model")
    sealed = _card.seal(data, card)
    new_card = _card.read(path, sealed)          # seal and schema, as the runtime checks
    files = {path: sealed}
    copy = path.with_suffix(".json")
    if copy.exists():
        strip = (_card.HASH_KEY, _card.LEGACY_HASH_KEY)
        old = json.loads(copy.read_text())
        if {k: v for k, v in old.items() if k not in strip} != \
                {k: v for k, v in card.items() if k not in strip}:
            raise _card.ModelError(f"{copy} differs from the card inside {path}")
        # Key order as before, the new hash in place of the old one.
        text = {(_card.HASH_KEY if k == _card.LEGACY_HASH_KEY else k): v
                for k, v in old.items()}
        text[_card.HASH_KEY] = new_card[_card.HASH_KEY]
        files[copy] = json.dumps(text, indent=2).encode()
    _write_all(files)
    return new_card[_card.HASH_KEY]


def reseal_main(argv) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export reseal",
        description="Seal exported models (and their NAME.json cards) with model_sha256, "
                    "the SHA-256 of the whole file with the card: graphs unchanged.")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE.onnx")
    args = parser.parse_args(argv)
    from ganlite import GanliteError

    status = 0
    for path in args.files:
        try:
            print(f"{path}: model_sha256 {reseal(path)}", file=sys.stderr)
        except GanliteError as e:
            print(f"error: {e}", file=sys.stderr)
            status = 1
    return status


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["reseal"]:
        return reseal_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a run folder of python -m train")
    parser.add_argument("--out", type=Path, required=True, help="NAME.onnx to write")
    parser.add_argument("--name", help="model name (default: the file's stem)")
    args = parser.parse_args(argv)

    run_json = args.run_dir / "run.json"
    if not run_json.is_file():
        print(f"error: {run_json} not found: not a run folder", file=sys.stderr)
        return 1
    if args.out.suffix != ".onnx":
        print(f"error: --out {args.out} must end in .onnx", file=sys.stderr)
        return 2
    kind = json.loads(run_json.read_text()).get("kind", "generator")
    final = args.run_dir / ("classifier.keras" if kind == "classifier" else "generator.keras")
    if not final.is_file():
        print(f"error: {final} not found: did the run finish?", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from .convert import ParityError

    try:
        export = export_classifier_run if kind == "classifier" else export_gan
        export(args.run_dir, args.out, args.name or args.out.stem)
    except ParityError as e:
        print(f"error: parity check failed, nothing written: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
