"""The errors and warnings of ``neuronkit.io``: ``FormatError`` for a bad file read, ``WriteError`` for a file that
could not be written, ``NonFiniteWarning`` for weights that load but hold NaN or infinity."""

from __future__ import annotations


class FormatError(ValueError):
    """A saved file is truncated, oversized, inconsistent with itself or with the model, or not a neuronkit file.

    Loading raises only this for problems in a file's contents (never a crash, a hang or code execution); the
    message names the file and says what was expected and what arrived.
    """


class WriteError(OSError):
    """A file could not be written (disk full, file-size limit, read-only file system...). ``errno`` is the operating
    system's and ``reason`` its words ("No space left on device"); the message names the file. The file it was
    replacing, if any, is intact."""

    def __init__(self, message: str, errno: int | None = None, reason: str | None = None):
        super().__init__(message)
        self.errno, self.reason = errno, reason

    def __str__(self) -> str:  # the message alone (OSError would print "[Errno N] ..." once errno is set)
        return self.args[0]


class NonFiniteWarning(UserWarning):
    """Loaded arrays hold NaN or infinity (a model saved after its training diverged): the message names the file,
    the tensors and how many such values each holds."""
