"""Errors that rvs-mi reports to users as one clear line."""


class UserError(ValueError):
    """Bad input from the user: a missing file, an invalid parameter, ...

    A ``ValueError`` so that Python callers can catch it as such; the CLI
    prints its text on one line and exits with status 2.
    """


def one_line(text: str, limit: int = 300) -> str:
    """Collapse a (possibly multi-line) message from Mitsuba into one line."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    msg = " ".join(lines)
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."
