"""A closed stdout (`edgegen models list | head -1`) ends the command quietly, as Unix tools do."""
from __future__ import annotations

import os
import sys

EXIT_SIGPIPE = 128 + 13  # what a shell reports for a tool killed by SIGPIPE


def closed_pipe_exit() -> int:
    """Call from `except BrokenPipeError`: point stdout at /dev/null so the interpreter's final
    flush cannot raise again ("Exception ignored ... BrokenPipeError"), and return the exit code."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests capture it)
        pass
    return EXIT_SIGPIPE


def flush_stdout() -> None:
    """Flush inside the command, so a closed pipe surfaces where `closed_pipe_exit` handles it."""
    sys.stdout.flush()


def print_warnings_as_lines(prog: str) -> None:
    """Show edgegen's own warnings as `PROG: warning: ...` lines (not Python's file:line form)."""
    import warnings

    from edgegen.errors import EdgegenWarning

    python_format = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, EdgegenWarning):
            print(f"{prog}: warning: {message}", file=sys.stderr, flush=True)
        else:
            python_format(message, category, filename, lineno, file, line)

    warnings.showwarning = show
