"""The one place where the stages' command lines (`python -m train`, `python -m export`)
turn errors into exit statuses, as ganlite's CLI does:

  2  usage errors: click's own (unknown option, bad number) and ganlite.UsageError
     subclasses (train's ConfigError, export's ExportConfigError...);
  1  every other ganlite.GanliteError (TrainError, DataError, ExportError, ParityError,
     ModelError, OutputError...), an OSError or MemoryError that escaped;
  130 Ctrl-C or SIGTERM.

Each is one line on stderr, "Error: ...", never a traceback. Library code only raises.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import signal
import sys
import tempfile
from collections.abc import Sequence

import click

from ganlite import GanliteError, UsageError

CONTEXT = {"help_option_names": ["-h", "--help"]}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(message: str, status: int) -> int:
    try:
        click.echo(f"Error: {_one_line(message)}", err=True)
    except OSError:
        pass
    return status


def _sigterm_as_interrupt() -> None:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def run_cli(command: click.Command, argv: Sequence[str] | None, prog_name: str,
            interrupted: str = "interrupted") -> int:
    """Run a click command line and return its exit status (see the module's docstring).

    Args:
        command: the click group or command.
        argv: the arguments (None: sys.argv[1:]).
        prog_name: the name shown in help and messages, e.g. "python -m train".
        interrupted: the message for Ctrl-C / SIGTERM.
    """
    _sigterm_as_interrupt()
    try:
        try:
            status = command.main(args=None if argv is None else list(argv),
                                  prog_name=prog_name, standalone_mode=False)
        except click.exceptions.Abort:          # click's wrapper of KeyboardInterrupt
            raise KeyboardInterrupt from None
        if sys.stdout is not None:
            sys.stdout.flush()
        return status if isinstance(status, int) else 0   # --help returns 0
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.format_message(), err=True)      # a bare group: its help
        return 2
    except click.ClickException as e:
        where = f" (see {e.ctx.command_path} --help)" if getattr(e, "ctx", None) else ""
        return _fail(f"{e.format_message()}{where}", e.exit_code)
    except UsageError as e:
        return _fail(str(e), 2)
    except GanliteError as e:
        return _fail(str(e), 1)
    except KeyboardInterrupt:
        return _fail(interrupted, 130)
    except OSError as e:
        where = e.filename or "standard output"
        return _fail(f"{where}: {e.strerror or type(e).__name__}", 1)
    except MemoryError:
        return _fail("out of memory", 1)


def option_source_given(ctx: click.Context, name: str) -> bool:
    """True if the option `name` was given on the command line or by environment."""
    source = ctx.get_parameter_source(name)
    return source in (click.core.ParameterSource.COMMANDLINE,
                      click.core.ParameterSource.ENVIRONMENT)


# What TensorFlow's C++ libraries write to stderr while they load on CPUs where it turns on
# oneDNN's custom ops (AVX-512, AMX), whatever TF_CPP_MIN_LOG_LEVEL says.
TENSORFLOW_IMPORT_NOISE = ("All log messages before absl::InitializeLog() is called",
                           "oneDNN custom operations are on")


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up chatter off stderr, so that an error is one line there.

    Call it before TensorFlow is imported (the stages' __main__ do): it sets
    TF_CPP_MIN_LOG_LEVEL, and the first `import tensorflow` (direct, or through keras)
    then runs with file descriptor 2 captured; the lines in TENSORFLOW_IMPORT_NOISE are
    dropped and every other line is written back to stderr after the import.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules and not any(
            isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` once, with a loader that filters stderr while it runs."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)          # once; and the real finders answer below
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _FilteredStderrLoader(spec.loader)
        return spec


class _FilteredStderrLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):            # get_resource_reader, is_package...
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # The C++ libraries write to the file descriptor, not to sys.stderr: capture fd 2.
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:                     # no stderr at all: nothing to filter
            self.loader.exec_module(module)
            return
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self.loader.exec_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                kept = [line for line in captured.read().splitlines(keepends=True)
                        if not any(n.encode() in line for n in TENSORFLOW_IMPORT_NOISE)]
                if kept:
                    os.write(2, b"".join(kept))
