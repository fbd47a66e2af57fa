"""The one error type that every configuration problem raises."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A problem in ``[tool.neuron]``, located by file and key path; ``more``: the file's other problems,
    reported with it (``str`` puts each on a line of its own)."""

    def __init__(
        self,
        path: str,
        message: str,
        hint: str | None = None,
        file: str | None = None,
        more: tuple[ConfigError, ...] = (),
        position: tuple[int, int] | None = None,
    ) -> None:
        self.path = path
        self.message = message
        self.hint = hint
        self.file = file
        self.more = more
        #: (line, column), both from 1, where the file says it (YAML model files).
        self.position = position
        super().__init__(str(self))

    @classmethod
    def combined(cls, errors: list[ConfigError]) -> ConfigError:
        """One error reporting every problem of ``errors`` (and of the ones they carry), first first."""
        problems = [problem for error in errors for problem in error.problems]
        first = problems[0]
        return cls(first.path, first.message, first.hint, first.file, tuple(problems[1:]), first.position)

    @property
    def problems(self) -> list[ConfigError]:
        return [ConfigError(self.path, self.message, self.hint, self.file, (), self.position), *self.more]

    def in_file(self, file: str) -> ConfigError:
        """This error (and those it carries) located in ``file``, where no other file was named yet."""
        return ConfigError(
            self.path,
            self.message,
            self.hint,
            self.file or file,
            tuple(m.in_file(file) for m in self.more),
            self.position,
        )

    def _line(self) -> str:
        at = "".join(f":{n}" for n in self.position or ())
        where = f"{self.file}{at}: " if self.file else ""
        text = f"{where}{self.path}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def __str__(self) -> str:
        if not self.more:
            return self._line()
        return "\n".join([f"{self._line()}", *(m._line() for m in self.more)])


class Problems:
    """Collects the :class:`ConfigError` of each step, so that one pass reports them all."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def check(self, step: Callable[[], T]) -> T | None:
        """``step()``, or None after keeping its ConfigError."""
        try:
            return step()
        except ConfigError as exc:
            self.errors.append(exc)
            return None

    def raise_any(self) -> None:
        if self.errors:
            raise ConfigError.combined(self.errors)


def close_match(word: str, choices: Iterable[str]) -> str | None:
    """The choice ``word`` is likely a typo of, or None when nothing is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return match[0] if match else None


def closest(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a typo, or None when nothing is close."""
    match = close_match(word, choices)
    return f"did you mean {match!r}?" if match else None
