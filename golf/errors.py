"""The one error type users see: a bad input or usage, reported as one line with exit code 2."""


class GolfError(Exception):
    """A user-facing error: the CLI prints `golf: error: <message>` and exits with code 2."""


class BudgetExceeded(GolfError):
    """A run broke a hard budget (wallclock or artifact bytes)."""
