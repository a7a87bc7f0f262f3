"""The one error type that user-facing layers turn into a clear message (CLI exit 2, HTTP 422)."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: names the offending ``field`` and the ``reason``.

    ``details`` carries machine-readable extras (e.g. ``{"min_budget": 1.5}``) that the API
    puts into its problem+json body.
    """

    def __init__(self, field: str, reason: str, **details: object) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.details = details
