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

import os
import signal
import sys
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


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ start-up chatter off stderr (set before it is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
