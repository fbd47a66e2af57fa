"""The one error type that every configuration problem raises."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """A problem in ``[tool.neuron]``, located by file and key path."""

    def __init__(self, path: str, message: str, hint: str | None = None, file: str | None = None) -> None:
        self.path = path
        self.message = message
        self.hint = hint
        self.file = file
        super().__init__(str(self))

    def in_file(self, file: str) -> ConfigError:
        return ConfigError(self.path, self.message, self.hint, file)

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        text = f"{where}{self.path}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


def closest(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a typo, or None when nothing is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else None
