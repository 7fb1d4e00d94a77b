"""Errors a user can fix. The CLI prints them as one line and exits non-zero, no traceback."""


def brief(exc: BaseException) -> str:
    """A library's exception in one line, for the message that wraps it: "OSError: first line"."""
    lines = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {lines[0]}" if lines else exc.__class__.__name__


class S3tvrError(Exception):
    """An expected failure: the message names the cause and the fix."""

    exit_code = 2


class InputError(S3tvrError):
    """A bad input file, device or option."""


class SetupError(S3tvrError):
    """A model or device could not be set up (missing extra, wrong path, device busy)."""

    exit_code = 3


class DiskFull(SetupError):
    """No room left for an output or a cache (a full disk, a used-up quota, a file too large for its
    file system): the machine's state, not the input's nor a bug; the message names the path, the
    space needed and where to free it."""


class TranslationFailed(S3tvrError):
    """A run that ended by itself with every utterance failed: nothing was translated."""

    exit_code = 4


class Stopped(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) raised as Ctrl-C's KeyboardInterrupt is, so that
    every command stops the same way, keeping what is finished; not an error."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
