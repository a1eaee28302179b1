"""The user-facing error types that every layer raises: `python -m vatt.run` (and the other commands) print
their message on one screen and exit with code 2, without a traceback. Errors that are bugs are not here."""
from __future__ import annotations

from typing import Iterable


class UserError(Exception):
    """A mistake in the user's input: the message says what and where, and what to do."""


class ConfigError(UserError):
    """Every problem found in a config, each with its config path, reported at once (the first SHOWN_PROBLEMS
    of them in the message, so that it fits on a screen)."""

    SHOWN_PROBLEMS = 20

    def __init__(self, problems: Iterable[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        head = f"{len(self.problems)} problem(s) in config" + (f" {source}" if source else "") + ":"
        lines = [head] + [f"  - {p}" for p in self.problems[: self.SHOWN_PROBLEMS]]
        if len(self.problems) > self.SHOWN_PROBLEMS:
            lines.append(f"  ... and {len(self.problems) - self.SHOWN_PROBLEMS} more")
        super().__init__("\n".join(lines))


class RegistryError(UserError):
    """A name that cannot be resolved, or two components that claim the same name."""


class DataError(UserError):
    """Too many unreadable samples: the data, not the code, needs fixing."""
