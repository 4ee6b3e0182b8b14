"""Mitsuba XML scenes and small assets shipped with rvs-mi."""
from importlib import resources


def path(name: str) -> str:
    """Filesystem path of a shipped scene file, e.g. ``path('cbox.xml')``."""
    return str(resources.files(__name__) / name)
