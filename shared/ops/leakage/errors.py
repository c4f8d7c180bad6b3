"""The leakage commands' own error (kept apart so light modules need not import the builders)."""

from __future__ import annotations

from avsets.core.errors import AvsetsError


class LeakageUsageError(AvsetsError, ValueError):
    """A spec, folder option or input file that cannot work as given (the CLI exits 2 naming it)."""
