"""Exceptions that map to the documented exit codes.

0 pass · 1 negative verdict · 2 usage/config error · 3 inconclusive · 4 unexpected error.
A stage raises :class:`UsageError` (or a subclass) for anything the user can fix; the
message must say what was wrong, where (file, input or key) and the exact fix.
"""

from __future__ import annotations

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3
EXIT_UNEXPECTED = 4

REPORT_HINT = (
    "This is a bug in ml-cicd, not in your project. Please report it with the full log "
    "and the file mlci-report/<stage>.json attached."
)


class MlciError(Exception):
    """Base class of every error ml-cicd raises on purpose."""

    exit_code = EXIT_UNEXPECTED


class UsageError(MlciError):
    """Bad input, bad config, bad data or a missing tool: the user can fix it (exit 2).

    ``where`` names the file, input or key; ``fix`` says exactly what to change.
    """

    exit_code = EXIT_USAGE

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.where}: {self.what}" if self.where else self.what
        return f"{head}\nFix: {self.fix}" if self.fix else head


class ConfigError(UsageError):
    """A problem in mlci.yaml."""


class DataError(UsageError):
    """A data file that cannot be read or does not have the expected shape."""


class ToolMissingError(UsageError):
    """A program the stage needs (a builder, nginx) is not installed."""


class TargetError(MlciError):
    """A deploy target could not carry out an operation (exit 4 unless wrapped)."""
