"""The shared base for management commands: one-line errors, documented exit codes and inert output."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from config.errors import DossierError
from config.locks import advisory_lock
from textpolicy import inert

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_PERMITTED = 2
EXIT_INVALID = 3


class InertOutputWrapper(OutputWrapper):
    """Command output with user text shown inert (docs/text-policy.md): a title, name or comment printed by a
    command cannot drive the terminal. Escaping happens before styling, so colours a command asks for stay: pass
    the style as ``write(msg, self.style.SUCCESS)``; a message styled beforehand would have its ESC shown."""

    def write(self, msg="", style_func=None, ending=None):
        super().write(inert(str(msg)), style_func, ending)


def _inert_wrapper(wrapper: OutputWrapper) -> InertOutputWrapper:
    inert_wrapper = InertOutputWrapper(wrapper._out)  # type: ignore[arg-type]  # the stubs type _out wrongly
    inert_wrapper.style_func = wrapper.style_func
    return inert_wrapper


class DossierCommand(BaseCommand):
    """Turns application errors into a one-line reason on stderr and exit code 1 instead of a traceback, and
    prints everything through :class:`InertOutputWrapper`. A usage error (an unknown option, a bad choice) is an
    error too: exit 1 with the usage line, so exit 2 keeps meaning "not permitted" for every command."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        command_line_error = parser.error

        def error(message):
            if not parser.called_from_command_line:
                return command_line_error(message)  # raises CommandError for call_command()
            parser.print_usage(sys.stderr)
            sys.stderr.write(f"error: {inert(message)}\n")
            sys.exit(EXIT_ERROR)

        parser.error = error  # type: ignore[method-assign]  # argparse's documented override point
        return parser

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stdout, self.stderr = _inert_wrapper(self.stdout), _inert_wrapper(self.stderr)

    def execute(self, *args, **options):
        # BaseCommand.execute would wrap these streams in plain OutputWrappers.
        if options.get("stdout"):
            self.stdout = InertOutputWrapper(options.pop("stdout"))
        if options.get("stderr"):
            self.stderr = InertOutputWrapper(options.pop("stderr"))
        try:
            return super().execute(*args, **options)
        except DossierError as exc:
            self.stderr.write(f"error: {exc.message}")
            sys.exit(EXIT_ERROR)
        except CommandError as exc:
            self.stderr.write(f"error: {exc}")
            sys.exit(exc.returncode or EXIT_ERROR)


@contextmanager
def exclusive(name: str):
    """Refuse to run a cron-like command while another run of it holds the lock (a database advisory lock, so a
    cache outage cannot let two runs overlap: config/locks.py)."""
    with advisory_lock(f"dossier-command:{name}") as held:
        if not held:
            raise CommandError(f"another '{name}' run is in progress", returncode=EXIT_ERROR)
        yield
