"""Checkpoints of ``rvs-mi optimize``: parameters, Adam moments and sampler state in one ``.npz``.

Written to a temporary file and renamed, so a run killed while writing keeps the previous one.
"""
from __future__ import annotations

import json
import os

import numpy as np

from ..errors import UserError

CHECKPOINT = "checkpoint.npz"


def save_checkpoint(path: str, step: int, opt, keys, sampler=None) -> None:
    arrays = {"step": np.array(step)}
    for i, key in enumerate(keys):
        value, _promoted, _lr, extra = opt.state[key]
        arrays[f"p{i}_value"] = np.array(value)
        arrays[f"p{i}_t"] = np.array(extra[0])
        arrays[f"p{i}_m"] = np.array(extra[1])
        arrays[f"p{i}_v"] = np.array(extra[2])
    meta = {"keys": list(keys), "sampler": sampler.state_dict() if sampler is not None else None}
    arrays["meta"] = np.array(json.dumps(meta, default=_json_default))
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def _json_hook(obj):
    if "__ndarray__" in obj:
        return np.array(obj["__ndarray__"], dtype=obj["dtype"])
    return obj


def load_checkpoint(path: str, opt, problem, sampler=None) -> int:
    """Restore parameter values and Adam moments; returns the next step to run."""
    import drjit as dr
    if not os.path.isfile(path):
        raise UserError(f"--resume: no checkpoint at {path}")
    try:
        data = np.load(path)
        meta = json.loads(str(data["meta"]), object_hook=_json_hook)
    except Exception as exc:
        raise UserError(f"--resume: unreadable checkpoint {path}: {exc}") from None
    if meta["keys"] != list(problem.keys):
        raise UserError(f"--resume: checkpoint optimizes {meta['keys']}, config asks for {problem.keys}")
    for i, key in enumerate(problem.keys):
        opt[key] = type(opt[key])(data[f"p{i}_value"])
        stored, promoted, lr, extra = opt.state[key]
        flat = type(extra[1])
        extra = (type(extra[0])(data[f"p{i}_t"]), flat(data[f"p{i}_m"].ravel()), flat(data[f"p{i}_v"].ravel()),
                 extra[3])
        dr.make_opaque(extra)
        opt.state[key] = (stored, promoted, lr, extra)
    if sampler is not None and meta.get("sampler") is not None:
        sampler.load_state_dict(meta["sampler"])
    problem.params.update(opt)
    return int(data["step"]) + 1
