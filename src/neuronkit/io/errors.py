"""``FormatError``: the one error a bad, damaged or hostile saved file raises."""

from __future__ import annotations


class FormatError(ValueError):
    """A saved file is truncated, oversized, inconsistent with itself or with the model, or not a neuronkit file.

    Loading raises only this for problems in a file's contents (never a crash, a hang or code execution); the
    message names the file and says what was expected and what arrived.
    """
