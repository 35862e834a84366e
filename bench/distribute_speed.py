"""Training speed of --strategy mirrored on 2 logical CPU devices against the default
strategy, in one process, interleaved: default, mirrored, default, mirrored...

    PYTHONPATH=. .venv-train/bin/python bench/distribute_speed.py --data tests/data/mnist-small

Both GANs are built as `python -m train gan` builds them (train/run_gan.py,
train/distribute.py) and fed by the same input pipeline. Each round fits `--steps` steps;
its rate is taken between the ends of its first and last step (no tracing, no start-up),
in wall-clock steps/s and in CPU seconds per step (the process's CPU time, all threads:
what a step costs, whatever share of a busy machine the process gets). The ratios are
medians over rounds of mirrored/default measured back to back. Two logical devices share
the same cores: this measures the price of the tf.distribute machinery (per-replica work,
all-reduce, synchronised batch norm) and any gain from running two replicas' ops at once.
Writes bench/results/distribute.json (bench/results/distribute.md discusses it).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.machine import cpu  # noqa: E402


def build(config, strategy):
    from train import distribute
    from train.gan import GAN
    from train.models import build_gan_pair
    from train.run_gan import _optimizer

    with distribute.scope(strategy):
        generator, discriminator = build_gan_pair(config.arch, config.latent_dim,
                                                  config.num_classes)
        gan = GAN(generator, discriminator, config.latent_dim, config.num_classes,
                  seed=config.seed, ema_decay=config.ema_decay)
        gan.compile(d_optimizer=_optimizer(config.optimizer, config.d_lr, config.beta_1),
                    g_optimizer=_optimizer(config.optimizer, config.g_lr, config.beta_1))
        gan.build_optimizers()
    distribute.prepare(gan, strategy)
    return gan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--arch", default="dcgan")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    import dataclasses

    from train import distribute
    from train.config import GanConfig
    from train.data import load
    from train.run_gan import _batches

    steps = args.steps * (args.rounds + 1)
    base = GanConfig(out=Path("unused"), arch=args.arch, data=args.data,
                     batch_size=args.batch_size, steps=steps, sample_every=steps,
                     fcd_samples=0)
    mirrored_config = dataclasses.replace(base, strategy="mirrored", devices=2)
    strategy = distribute.make_strategy(mirrored_config, distribute.Placement())

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    images, labels = load(base.dataset, "train", args.data)

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.ends.append((time.perf_counter(), time.process_time()))

    def feed(strategy_):
        if strategy_ is None:
            return _batches(images, labels, base, 0)
        return distribute.distribute_batches(lambda: _batches(images, labels, base, 0),
                                             strategy_, base.batch_size)

    runs = {"default": (build(base, None), None), "mirrored": (build(base, strategy),
                                                              strategy)}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    cpu_costs: dict[str, list[float]] = {name: [] for name in runs}
    load_before = os.getloadavg()
    for round_ in range(args.rounds + 1):          # round 0: tracing, warm-up
        for name, (gan, strategy_) in runs.items():
            clock = Clock()
            clock.ends = []
            gan.fit(feed(strategy_), epochs=1, steps_per_epoch=args.steps,
                    callbacks=[clock], verbose=0)
            (wall0, cpu0), (wall1, cpu1) = clock.ends[0], clock.ends[-1]
            rate = (len(clock.ends) - 1) / (wall1 - wall0)
            cost = (cpu1 - cpu0) / (len(clock.ends) - 1)
            if round_:
                rates[name].append(rate)
                cpu_costs[name].append(cost)
            print(f"round {round_} {name}: {rate:.2f} steps/s, {cost * 1000:.0f} CPU ms "
                  f"per step", file=sys.stderr)
    ratios = [m / d for m, d in zip(rates["mirrored"], rates["default"], strict=True)]
    cost_ratios = [m / d for m, d in zip(cpu_costs["mirrored"], cpu_costs["default"],
                                         strict=True)]
    command = "PYTHONPATH=. .venv-train/bin/python bench/distribute_speed.py " + \
        shlex.join(sys.argv[1:])
    result = {
        "command": command, "machine": cpu(),
        "load_average_before": [round(x, 1) for x in load_before],
        "tensorflow": tf.__version__,
        "keras": keras.__version__, "arch": args.arch, "batch_size": args.batch_size,
        "steps_per_round": args.steps, "rounds": args.rounds,
        "default_steps_per_s": rates["default"], "mirrored_steps_per_s": rates["mirrored"],
        "median_default": statistics.median(rates["default"]),
        "median_mirrored": statistics.median(rates["mirrored"]),
        "median_ratio_mirrored_over_default": statistics.median(ratios),
        "default_cpu_s_per_step": cpu_costs["default"],
        "mirrored_cpu_s_per_step": cpu_costs["mirrored"],
        "median_cpu_ratio_mirrored_over_default": statistics.median(cost_ratios),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "distribute.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
