"""Standard output and error for the command line, when they fail.

During a command, ``sys.stdout`` is wrapped (:func:`guarded`) so that a failed write (a
full disk: ``resdsl ir x > /dev/full``; a closed stream: ``>&-``) raises
:class:`StdoutFailed` instead of an OSError from deep inside a backend; ``main()`` turns
it into ``error[io]: cannot write to standard output: ...`` and exit status 1. A reader
that left (``| head -0``, EPIPE) is not an error: nothing more is written, exit status 0,
as Python's docs advise for BrokenPipeError. A closed standard error is replaced by a sink:
the exit status still tells.
"""
from __future__ import annotations

import contextlib
import errno
import os
import sys


class StdoutFailed(Exception):
    """Writing to standard output failed; `error` is the OSError."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error

    @property
    def reader_left(self) -> bool:
        return isinstance(self.error, BrokenPipeError) or self.error.errno == errno.EPIPE

    def message(self) -> str:
        if self.error.errno == errno.EBADF:
            return "cannot write to standard output: it is closed"
        return f"cannot write to standard output: {self.error.strerror or self.error}"


class _Closed:
    """What standard output is when the process started with it closed (sys.stdout None)."""

    def _fail(self, *a):
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    write = writelines = flush = fileno = _fail

    def isatty(self) -> bool:
        return False

    @property
    def buffer(self):
        return self


class _Guard:
    """A stream whose write errors become StdoutFailed; everything else is the stream's."""

    def __init__(self, stream):
        self._stream = stream

    def _call(self, name, *a):
        try:
            return getattr(self._stream, name)(*a)
        except OSError as e:
            raise StdoutFailed(e) from None

    def write(self, data):
        return self._call("write", data)

    def writelines(self, lines):
        return self._call("writelines", lines)

    def flush(self):
        return self._call("flush")

    @property
    def buffer(self):
        return _Guard(self._stream.buffer)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _Sink:
    def write(self, data):
        return len(data)

    def flush(self):
        pass

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def guarded():
    """sys.stdout guarded and sys.stderr present for the duration; both restored after."""
    out, err = sys.stdout, sys.stderr
    sys.stdout = _Guard(out if out is not None else _Closed())
    if err is None:
        sys.stderr = _Sink()
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def silence_stdout() -> None:
    """After the reader left: point file descriptor 1 at /dev/null, so that the interpreter's
    last flush does not fail again."""
    with contextlib.suppress(OSError, AttributeError, ValueError):
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
