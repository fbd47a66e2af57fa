"""Compile cache: content-addressed artifacts (``store``), their keys (``keys``), and the files a model's
factory read (``deps``) for warm builds that skip running factories."""

from .store import CorruptEntry, LocalCache

__all__ = ["CorruptEntry", "LocalCache"]
