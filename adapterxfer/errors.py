"""The one exception type users see, and the wrapper that shows it: a single line, no stack trace."""
import functools
import logging
import os
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

        logging.getLogger("huggingface_hub.utils._http").addFilter(HUB_RETRIES)
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            if os.environ.get("RANK", "0") == "0":  # under a launcher, the main process says it for all
                click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo(interrupted, err=True)
            sys.exit(130)
    return wrapper


class _HubRetries(logging.Filter):
    """huggingface_hub's retries of a hub it cannot reach (two lines per try, about 25 s): one line instead."""

    told = False

    def filter(self, record) -> bool:
        message = record.getMessage()
        if "thrown while requesting" not in message and "[Retry " not in message:
            return True
        if not self.told:
            self.told = True
            print("warning: the Hugging Face Hub cannot be reached; huggingface_hub retries for about 25 s "
                  "(HF_HUB_OFFLINE=1: only what is downloaded already, at once)", file=sys.stderr)
        return False


HUB_RETRIES = _HubRetries()
