"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""
import json
import os


def variant() -> str:
    """The Mitsuba variant of a benchmark: ``RVS_MI_VARIANT`` (e.g. ``cuda_ad_rgb``), else ``llvm_ad_rgb``."""
    return os.environ.get("RVS_MI_VARIANT", "llvm_ad_rgb")


def write_json(path, data: dict, indent: int = 2) -> None:
    """Write a benchmark's arguments and results as JSON when ``path`` is given (``--json``)."""
    if path:
        with open(path, "w") as f:
            json.dump(data, f, indent=indent)
