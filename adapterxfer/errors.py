"""The one exception type users see: a clear, single-line message, no stack trace."""


class UserError(Exception):
    """Bad input or an unavailable resource; the CLI prints ``error: <message>`` and exits 2."""
