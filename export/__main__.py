"""python -m export model RUN_DIR --out artifacts/NAME.onnx [--name NAME]
   python -m export reseal FILE.onnx...

See export/cli.py and README.md, "Training and exporting"."""
import sys

from train.clitools import quiet_tensorflow, run_cli

quiet_tensorflow()

if __name__ == "__main__":
    from .cli import main

    sys.exit(run_cli(main, None, "python -m export"))
