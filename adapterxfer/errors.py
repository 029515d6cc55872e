"""The one exception type users see, and the wrapper that shows it: a single line, no stack trace."""
import functools
import sys

RESUME_HINT = "interrupted: rerun the same command with --resume to continue"


class UserError(Exception):
    """Bad input or an unavailable resource; the CLI prints ``error: <message>`` and exits 2."""


def friendly(fn=None, *, interrupted: str = RESUME_HINT):
    """Decorate a click command: a :class:`UserError` prints ``error: <message>`` and exits 2; Ctrl-C
    prints ``interrupted`` and exits 130. ``@friendly`` or ``@friendly(interrupted="...")``."""
    if fn is None:
        return functools.partial(friendly, interrupted=interrupted)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import click

        try:
            return fn(*args, **kwargs)
        except UserError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo(interrupted, err=True)
            sys.exit(130)
    return wrapper
