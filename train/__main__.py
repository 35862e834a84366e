"""python -m train gan|classifier ...  (see README.md, "Training and exporting")."""
import sys

from .clitools import quiet_tensorflow, run_cli

quiet_tensorflow()

if __name__ == "__main__":
    from .cli import main

    sys.exit(run_cli(main, None, "python -m train",
                     interrupted="interrupted (a GAN run keeps its last checkpoint, if it "
                                 "reached one: continue it with python -m train gan "
                                 "--resume RUN_DIR)"))
