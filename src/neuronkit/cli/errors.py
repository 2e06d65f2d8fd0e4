"""The one error type of the command line: a user mistake, reported as one line on stderr."""

from __future__ import annotations


class CLIError(Exception):
    """A mistake in what the user asked for (a bad flag value, a file that is not what it should be, ...).

    ``main`` prints ``neuronkit: error: <message>`` and exits with status 2; no traceback.
    """
