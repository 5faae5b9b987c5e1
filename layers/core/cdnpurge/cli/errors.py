"""A reader that stopped reading: `cdnpurge plan ... | head` closes the pipe early.

That is the reader's choice, not an error worth a traceback: the command ends quietly with the status a
process killed by SIGPIPE has.
"""

from __future__ import annotations

import os
import signal
from typing import TextIO

# The shell's status for a process ended by SIGPIPE: what `git log | head` reports, and never a cdnpurge status.
EXIT_READER_GONE = 128 + signal.SIGPIPE


def reader_gone(stream: TextIO) -> int:
    """The reader of `stream` closed it: point its descriptor at /dev/null and return the exit status.

    Python's documented recipe (the `signal` module's note on SIGPIPE): without it the interpreter's final
    flush of stdout at exit fails again and prints `Exception ignored ... BrokenPipeError`. A stream with no
    descriptor (a test's StringIO) has nothing to redirect.
    """
    try:
        descriptor = stream.fileno()
    except (OSError, ValueError):
        return EXIT_READER_GONE
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)
    return EXIT_READER_GONE
