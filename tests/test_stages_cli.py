"""The training and export stages' surface: validated configs, the click command lines
(exit 2 for usage errors, 1 for runtime errors, one line, never a traceback), --resume
refusing other options, the card's train_command round trip, and an export whose parity
fails writing nothing. Needs the training environment (imports train and export)."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from conftest import MNIST_SMALL

import ganlite
from export.cli import main as export_main
from export.config import ExportConfig
from train.cli import main as train_main
from train.cli import parse_classifier, parse_gan
from train.clitools import run_cli
from train.config import ClassifierConfig, GanConfig
from train.errors import ConfigError

pytestmark = pytest.mark.train
ROOT = Path(__file__).resolve().parent.parent


# -- configuration: every field validated where the config is made -----------------------

GAN_ERRORS = [
    # (field values, text of the message): one or more per kind of field
    ({"steps": 0}, "steps (--steps) must be an integer >= 1, got 0"),
    ({"batch_size": -3}, "batch_size (--batch-size) must be an integer >= 1"),
    ({"sample_every": 0}, "sample_every (--sample-every) must be an integer >= 1"),
    ({"limit": -5}, "limit (--limit) must be an integer >= 0, got -5"),
    ({"latent_dim": 0}, "latent_dim (--latent-dim) must be an integer between 1 and 4,096"),
    ({"latent_dim": 5000}, "got 5000"),
    ({"seed": -1}, "seed (--seed) must be an integer between 0 and 4,294,967,295"),
    ({"seed": 2**32}, "seed (--seed)"),
    ({"fcd_samples": 1}, "fcd_samples (--fcd-samples) must be an integer 0 or between 2"),
    ({"fcd_samples": -1}, "fcd_samples"),
    ({"steps": 2.5}, "steps (--steps) must be an integer"),
    ({"steps": True}, "steps (--steps) must be an integer"),
    ({"ema_decay": 1.0}, "ema_decay (--ema-decay) must be a number in [0, 1), got 1.0"),
    ({"ema_decay": -0.1}, "ema_decay"),
    ({"beta_1": 1}, "beta_1 (--beta-1) must be a number in [0, 1)"),
    ({"g_lr": 0}, "g_lr (--g-lr) must be a finite number > 0, got 0"),
    ({"d_lr": math.nan}, "d_lr (--d-lr) must be a finite number > 0, got nan"),
    ({"g_lr": math.inf}, "g_lr"),
    ({"g_lr": "0.1"}, "g_lr"),
    ({"arch": "resnet"}, "arch (--arch) must be one of mlp, dcgan, got 'resnet'"),
    ({"dataset": "cifar10"}, "dataset (--dataset) must be one of mnist, fashion_mnist"),
    ({"optimizer": "adamw"}, "optimizer (--optimizer) must be one of adam, sgd, rmsprop"),
    ({"conditional": 1}, "conditional (--conditional) must be true or false, got 1"),
    ({"jit_compile": "yes"}, "jit_compile"),
    ({"out": 3}, "out (--out) must be a folder path"),
    ({"out": ""}, "out (--out)"),
    ({"data": b"bytes"}, "data (--data) must be a folder path or None"),
    ({"steps": 25, "sample_every": 10},
     "steps (--steps) 25 must be a multiple of sample_every (--sample-every) 10"),
    ({"limit": 10, "batch_size": 64}, "limit (--limit) 10 is fewer images than one batch"),
]


@pytest.mark.parametrize("values,message", GAN_ERRORS,
                         ids=[" ".join(f"{k}={v!r}" for k, v in c[0].items())
                              for c in GAN_ERRORS])
def test_gan_config_refuses_bad_values(values, message):
    with pytest.raises(ConfigError) as info:
        GanConfig(**{"out": Path("run"), **values})
    assert message in str(info.value)
    assert isinstance(info.value, ganlite.UsageError) and "\n" not in str(info.value)


@pytest.mark.parametrize("values,message", [
    ({"epochs": 0}, "epochs (--epochs) must be an integer >= 1"),
    ({"batch_size": 0}, "batch_size (--batch-size)"),
    ({"dataset": "emnist"}, "dataset (--dataset) must be one of"),
    ({"seed": "0"}, "seed (--seed) must be an integer"),
])
def test_classifier_config_refuses_bad_values(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ClassifierConfig(**{"out": Path("run"), **values})


def test_config_from_json_checks_fields():
    good = GanConfig(out=Path("r")).to_json()
    assert GanConfig.from_json(good) == GanConfig(out=Path("r"))
    with pytest.raises(ConfigError, match="unknown configuration field"):
        GanConfig.from_json({**good, "learning_rate": 1})
    with pytest.raises(ConfigError, match="steps"):
        GanConfig.from_json({**good, "steps": "100"})
    # Classifier runs of older versions stored every value as text.
    legacy = {"out": "runs/c", "dataset": "mnist", "data": "None", "epochs": "10",
              "batch_size": "128", "seed": "0"}
    assert ClassifierConfig.from_json(legacy) == ClassifierConfig(out=Path("runs/c"))


# -- the card's train_command: shlex.join of the config, parsed back by the CLI ------------

@pytest.mark.parametrize("out,data", [
    ("runs/mnist-cdcgan", None),
    ("runs/with space/and 'quotes'", "/data/it's \"here\""),
    ("runs/ünï cödé;$(rm -rf x)`", "data dir/ with\ttab"),
    ("-runs starting with a dash", "--data-like"),
])
def test_train_command_round_trips_through_the_cli(out, data):
    config = GanConfig(out=Path(out), data=None if data is None else Path(data), arch="mlp",
                       dataset="fashion_mnist", limit=640, latent_dim=16, conditional=True,
                       steps=3000, batch_size=32, optimizer="rmsprop", g_lr=1.5e-4,
                       d_lr=0.1 + 0.2, beta_1=0.0, ema_decay=0.0, sample_every=300,
                       fcd_samples=0, seed=4_000_000_000, jit_compile=True)
    args = shlex.split(config.command())
    assert args[:4] == ["python", "-m", "train", "gan"]
    assert parse_gan(args[4:]) == config
    assert parse_gan(shlex.split(GanConfig(out=Path(out)).command())[4:]) == \
        GanConfig(out=Path(out))
    classifier = ClassifierConfig(out=Path(out), data=None if data is None else Path(data),
                                  dataset="fashion_mnist", epochs=2, batch_size=7, seed=9)
    args = shlex.split(classifier.command())
    assert args[:4] == ["python", "-m", "train", "classifier"]
    assert parse_classifier(args[4:]) == classifier


@pytest.mark.parametrize("card", ["mnist-cdcgan.json", "fashion-cdcgan.json"])
def test_shipped_cards_train_commands_still_parse(card):
    """The shipped models' commands (written by hand before) parse as the config that
    made them."""
    card = json.loads((ROOT / "artifacts" / card).read_text())
    config = parse_gan(shlex.split(card["train_command"])[4:])
    assert (config.steps, config.batch_size, config.seed, config.latent_dim) == (
        card["train_steps"], card["batch_size"], card["seed"], card["latent_dim"])
    assert config.conditional is card["conditional"] and config.dataset == card["dataset"]


@pytest.mark.parametrize("optimize,standing_stats", [(True, 0), (False, 0), (True, 20_000)])
def test_export_command_round_trips(optimize, standing_stats):
    config = ExportConfig(Path("runs/a b"), Path("out dir/m 1.onnx"), name="my model",
                          optimize=optimize, standing_stats=standing_stats)
    args = shlex.split(config.command())
    assert args[:4] == ["python", "-m", "export", "model"]
    with export_main.commands["model"].make_context("model", args[4:]) as ctx:
        params = dict(ctx.params)
        params["optimize"] = not params.pop("no_optimize")
        assert ExportConfig(**params) == config


# -- command lines: exit statuses, one line, no traceback ---------------------------------

def _cli(main, prog, args, capsys):
    status = run_cli(main, [str(a) for a in args], prog)
    captured = capsys.readouterr()
    return status, captured.err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    assert "Traceback" not in err
    return lines[0]


TRAIN_ERRORS = [
    (["gan", "--out", "{tmp}/r", "--steps", "0"], 2, "steps (--steps) must be"),
    (["gan", "--out", "{tmp}/r", "--limit", "-5"], 2, "limit (--limit) must be an integer >= 0"),
    (["gan", "--out", "{tmp}/r", "--ema-decay", "1"], 2, "ema_decay (--ema-decay)"),
    (["gan", "--out", "{tmp}/r", "--steps", "ten"], 2, "'ten' is not a valid integer"),
    (["gan", "--out", "{tmp}/r", "--arch", "vae"], 2, "'vae' is not one of 'mlp', 'dcgan'"),
    (["gan", "--out", "{tmp}/r", "--bogus"], 2, "No such option"),
    (["gan", "--out", "{tmp}/r", "--lr", "0.1", "--g-lr", "0.2"], 2, "give --lr or --g-lr"),
    (["gan"], 2, "give --out RUN_DIR for a new run, or --resume RUN_DIR"),
    (["classifier", "--out", "{tmp}/r", "--epochs", "0"], 2, "epochs (--epochs)"),
    (["gan", "--resume", "{tmp}/nothing"], 1, "run.json not found"),
    (["gan", "--out", "{tmp}/r", "--data", "{tmp}/no-data", "--steps", "10",
      "--sample-every", "10", "--fcd-samples", "0"], 1, "data folder not found"),
    (["gan", "--out", "{tmp}/r", "--data", str(MNIST_SMALL), "--batch-size", "1000",
      "--steps", "10", "--sample-every", "10", "--fcd-samples", "0"], 2,
     "600 training images are fewer than one batch (--batch-size 1000)"),
]


@pytest.mark.parametrize("args,status,message", TRAIN_ERRORS,
                         ids=[" ".join(c[0]) for c in TRAIN_ERRORS])
def test_train_cli_errors(tmp_path, capsys, args, status, message):
    args = [a.format(tmp=tmp_path) for a in args]
    code, err = _cli(train_main, "python -m train", args, capsys)
    assert code == status, err
    assert message in _one_error_line(err)
    assert not (tmp_path / "r").exists()


def _fake_run(run: Path, **config) -> GanConfig:
    run.mkdir(parents=True)
    gan = GanConfig(out=run, latent_dim=8, steps=10, sample_every=10, fcd_samples=0, **config)
    (run / "run.json").write_text(json.dumps({"config": gan.to_json(), "train_images": 600}))
    return gan


@pytest.mark.parametrize("extra", [["--batch-size", "20"], ["--out", "x"], ["--conditional"],
                                   ["--seed", "0"], ["--lr", "1e-3"], ["--data", "d"],
                                   ["--fcd-samples", "0", "--jit-compile"]])
def test_resume_refuses_every_other_option(tmp_path, capsys, extra):
    run = tmp_path / "run"
    _fake_run(run)
    before = sorted(os.listdir(run))
    code, err = _cli(train_main, "python -m train", ["gan", "--resume", run, *extra], capsys)
    line = _one_error_line(err)
    assert code == 2 and "takes no other option but --steps" in line
    assert all(flag in line for flag in extra if flag.startswith("--"))
    assert sorted(os.listdir(run)) == before


def test_resume_with_steps_asks_for_more_steps(tmp_path):
    from train.cli import gan, gan_config

    run = tmp_path / "run"
    written = _fake_run(run)
    with gan.make_context("gan", ["--resume", str(run), "--steps", "30"]) as ctx:
        config, resume = gan_config(ctx)
    assert resume and config == dataclasses.replace(written, out=run, steps=30)


def test_resume_reads_its_settings_from_the_run(tmp_path):
    from train.cli import gan, gan_config

    run = tmp_path / "moved"
    written = _fake_run(run, arch="mlp", seed=7)
    with gan.make_context("gan", ["--resume", str(run)]) as ctx:
        config, resume = gan_config(ctx)
    assert resume and config == dataclasses.replace(written, out=run)


def test_real_processes_exit_with_one_line(tmp_path):
    """As a user runs them: python -m train / export, exit status and stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    reseal_dir = tmp_path / "reseal"          # a run folder named like the subcommand
    reseal_dir.mkdir()
    cases = [
        (["train", "gan", "--out", tmp_path / "r", "--batch-size", "0"], 2,
         "batch_size (--batch-size) must be an integer >= 1"),
        (["export", "model", tmp_path, "--out", tmp_path / "m.txt"], 2,
         "must be a file name ending in .onnx"),
        (["export", "model", reseal_dir, "--out", tmp_path / "m.onnx"], 1,
         f"{reseal_dir / 'run.json'} not found"),
        (["export", "reseal", tmp_path / "none.onnx"], 1, "not found"),
        (["export", tmp_path, "--out", tmp_path / "m.onnx"], 2,
         f"use python -m export model {tmp_path} --out NAME.onnx"),
    ]
    for args, status, message in cases:
        result = subprocess.run([sys.executable, "-m", *map(str, args)], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=300,
                                check=False)
        assert result.returncode == status, (args, result.stderr)
        assert message in _one_error_line(result.stderr), args
    assert os.listdir(reseal_dir) == [] and not (tmp_path / "r").exists()


def test_tensorflows_import_chatter_is_dropped_and_other_stderr_kept(tmp_path):
    """On oneDNN CPUs (AVX-512, AMX) importing TensorFlow writes two lines to file
    descriptor 2 that TF_CPP_MIN_LOG_LEVEL does not silence; quiet_tensorflow() drops
    exactly those. A stand-in package writes them here, so this holds on every CPU."""
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os\n"
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called "
        "are written to STDERR\\n')\n"
        "os.write(2, b'I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on. "
        "You may see slightly different numerical results\\n')\n"
        "os.write(2, b'something else\\n')\n"
        "LOADED = True\n")
    code = ("import sys; from train.clitools import quiet_tensorflow; quiet_tensorflow(); "
            "print('before', file=sys.stderr); import tensorflow; assert tensorflow.LOADED; "
            "print('after', file=sys.stderr)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60, check=True)
    assert result.stderr == "before\nsomething else\nafter\n"

    # The real TensorFlow, through keras, as the stages import it: nothing on stderr.
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-c", code.replace("LOADED", "__version__")
                             .replace("import tensorflow", "import keras, tensorflow")],
                            env=env, capture_output=True, text=True, timeout=300, check=True)
    assert result.stderr == "before\nafter\n"


def test_export_cli_errors(tmp_path, capsys):
    run = tmp_path / "run"
    _fake_run(run)
    for args, status, message in [
        (["model", run, "--out", tmp_path / "x.onnx"], 1,
         "generator.keras not found: did the run finish?"),
        (["model", run, "--out", tmp_path / "x.onnx", "--name", "n" * 65], 2,
         "must be a model name of 1-64 printable characters"),
        (["model", run], 2, "Missing option '--out'"),
        (["reseal"], 2, "Missing argument"),
    ]:
        code, err = _cli(export_main, "python -m export", args, capsys)
        assert code == status, err
        assert message in _one_error_line(err)
    assert os.listdir(tmp_path) == ["run"]


# -- export: the [-1, 1] -> uint8 of the graph, parity failures write nothing -------------

def test_the_graphs_uint8_conversion_is_ganlites():
    import tensorflow as tf

    from export.convert import _to_uint8_tf
    from ganlite.pixels import to_uint8

    rng = np.random.default_rng(0)
    # Every level's exact value and its float32 neighbours (where rounding turns), and noise.
    levels = (np.arange(-1, 257) + 0.5).astype(np.float32) / np.float32(127.5) - np.float32(1)
    near = np.concatenate([levels, np.nextafter(levels, np.float32(-2)),
                           np.nextafter(levels, np.float32(2)),
                           rng.uniform(-1.5, 1.5, 100_000).astype(np.float32)])
    x = near.reshape(-1, 1)[..., None]                     # [n, 1, 1] + channel
    graph = _to_uint8_tf(tf.constant(x[..., None]))
    assert np.array_equal(graph.numpy(), to_uint8(x))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """An (untrained) unconditional dcgan run folder, as `python -m train gan` leaves it."""
    import keras

    from train.models import build_gan_pair
    from train.saving import save_keras

    run = tmp_path_factory.mktemp("tiny") / "run"
    _fake_run(run)
    keras.utils.set_random_seed(0)
    generator, _ = build_gan_pair("dcgan", 8, 0)
    save_keras(generator, run / "generator.keras")
    frames = np.stack([np.full((28, 28), v, np.uint8) for v in (0, 128, 255)])
    ganlite.save_animation(frames, run / "training.gif", scale=1)
    return run


def test_export_writes_the_model_and_its_files(tiny_run, tmp_path, capsys):
    out = tmp_path / "out" / "tiny.onnx"
    code, err = _cli(export_main, "python -m export", ["model", tiny_run, "--out", out],
                     capsys)
    assert code == 0, err
    assert sorted(os.listdir(out.parent)) == ["tiny-training.gif", "tiny.json", "tiny.keras",
                                              "tiny.onnx", "tiny.png"]
    card = ganlite.read_card(out)
    run_config = GanConfig.from_json(json.loads((tiny_run / "run.json").read_text())["config"])
    assert parse_gan(shlex.split(card["train_command"])[4:]) == run_config
    assert shlex.split(card["export_command"]) == [
        "python", "-m", "export", "model", str(tiny_run), "--out", str(out)]
    assert card["num_classes"] == 10 and card["class_names"][3] == "3"


def test_a_parity_failure_writes_nothing(tiny_run, tmp_path, capsys, monkeypatch):
    """The weights change between the Keras reference and the conversion: export must
    notice (ParityError), exit 1 with one line, and write none of its files."""
    import export.convert
    import export.model

    loaded = []
    load = export.model._load_keras
    monkeypatch.setattr(export.model, "_load_keras",
                        lambda path: loaded.append(load(path)) or loaded[-1])
    convert = export.convert._convert

    def perturbed(function, signature):
        last = loaded[-1].layers[-1]                 # the final conv: shift its bias
        last.bias.assign(last.bias.numpy() + 0.05)
        return convert(function, signature)
    monkeypatch.setattr(export.convert, "_convert", perturbed)

    out = tmp_path / "out" / "tiny.onnx"
    code, err = _cli(export_main, "python -m export", ["model", tiny_run, "--out", out],
                     capsys)
    assert code == 1
    assert "parity check failed, nothing written" in _one_error_line(err)
    assert os.listdir(out.parent) == []       # no .onnx, .json, .png, .keras, .gif, temp
    with pytest.raises(export.convert.ParityError):
        export.model.export_run(ExportConfig(tiny_run, out))
    assert os.listdir(out.parent) == []
