"""python -m train gan|classifier ...  (see README.md, "Training")."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _gan_parser(sub):
    p = sub.add_parser("gan", help="train a GAN generator")
    p.add_argument("--out", type=Path, help="run folder (created)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="continue an interrupted run from its last checkpoint")
    p.add_argument("--arch", choices=("mlp", "dcgan"), default="dcgan")
    p.add_argument("--dataset", choices=("mnist", "fashion_mnist"), default="mnist")
    p.add_argument("--data", type=Path, help="folder of the four IDX .gz files "
                   "(default: keras.datasets download)")
    p.add_argument("--limit", type=int, default=0, help="use the first N images only")
    p.add_argument("--latent-dim", type=int, default=100)
    p.add_argument("--conditional", action="store_true", help="class-conditional model")
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=("adam", "sgd", "rmsprop"), default="adam")
    p.add_argument("--lr", type=float, default=None, help="both learning rates")
    p.add_argument("--g-lr", type=float, default=2e-4)
    p.add_argument("--d-lr", type=float, default=2e-4)
    p.add_argument("--beta-1", type=float, default=0.5)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--sample-every", type=int, default=500)
    p.add_argument("--fcd-samples", type=int, default=2000,
                   help="samples for the FCD curve at each snapshot (0 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jit-compile", action="store_true", help="XLA-compile the train step")


def _classifier_parser(sub):
    p = sub.add_parser("classifier", help="train the evaluation classifier")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dataset", choices=("mnist", "fashion_mnist"), default="mnist")
    p.add_argument("--data", type=Path)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)


def _gan_config(args):
    from .config import GanConfig

    if args.resume:
        run_json = args.resume / "run.json"
        if not run_json.is_file():
            raise SystemExit(f"error: {run_json} not found: not a run folder")
        config = GanConfig.from_json(json.loads(run_json.read_text())["config"])
        return GanConfig(**{**config.__dict__, "out": args.resume}), True
    if args.out is None:
        raise SystemExit("error: --out RUN_DIR is required (or --resume RUN_DIR)")
    for name in ("steps", "batch_size", "sample_every", "latent_dim"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be positive")
    lr = {"g_lr": args.lr, "d_lr": args.lr} if args.lr is not None else {
        "g_lr": args.g_lr, "d_lr": args.d_lr}
    return GanConfig(out=args.out, arch=args.arch, dataset=args.dataset, data=args.data,
                     limit=args.limit, latent_dim=args.latent_dim,
                     conditional=args.conditional, steps=args.steps,
                     batch_size=args.batch_size, optimizer=args.optimizer,
                     beta_1=args.beta_1, ema_decay=args.ema_decay,
                     sample_every=args.sample_every, fcd_samples=args.fcd_samples,
                     seed=args.seed, jit_compile=args.jit_compile, **lr), False


def _evaluator(dataset: str):
    """The bundled classifier, if this checkout has one for the dataset (for FCD curves)."""
    try:
        from ganlite import Evaluator, GanliteError
    except ImportError:
        return None
    try:
        return Evaluator(dataset, device="cpu")
    except GanliteError as e:
        print(f"note: no FCD curve ({e})", file=sys.stderr)
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _gan_parser(sub)
    _classifier_parser(sub)
    args = parser.parse_args(argv)

    from .callbacks import NonFiniteLoss
    from .data import DataError
    from .run_gan import RunError

    try:
        if args.command == "gan":
            config, resume = _gan_config(args)
            evaluator = _evaluator(config.dataset) if config.fcd_samples else None
            from .run_gan import train

            final = train(config, resume=resume, evaluator=evaluator)
        else:
            from .classifier import train_classifier
            from .config import ClassifierConfig

            final = train_classifier(ClassifierConfig(
                out=args.out, dataset=args.dataset, data=args.data, epochs=args.epochs,
                batch_size=args.batch_size, seed=args.seed))
    except (DataError, RunError, NonFiniteLoss) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"saved {final}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
