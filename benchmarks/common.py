"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""
import json


def write_json(path, data: dict, indent: int = 2) -> None:
    """Write a benchmark's arguments and results as JSON when ``path`` is given (``--json``)."""
    if path:
        with open(path, "w") as f:
            json.dump(data, f, indent=indent)
