"""Checkpoints of ``rvs-mi optimize``: the optimizer and the sampler state in one ``.npz``.

The optimizer is stored as its pickle (Dr.Jit's optimizers pickle their whole
state: parameter values, learning rates and every moment, e.g. Adam's
``t``, ``m``, ``v`` and AMSGrad's ``v_max``), so no field layout is assumed.
The file is written to a temporary name and renamed, so a run killed while
writing keeps the previous checkpoint.
"""
import json
import os
import pickle

import numpy as np

from ..errors import UserError

CHECKPOINT = "checkpoint.npz"


def save_checkpoint(path: str, step: int, opt, keys, sampler=None) -> None:
    meta = {"step": int(step), "keys": list(keys),
            "sampler": sampler.state_dict() if sampler is not None else None}
    arrays = {"optimizer": np.frombuffer(pickle.dumps(opt), dtype=np.uint8),
              "meta": np.array(json.dumps(meta, default=json_default))}
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def json_default(obj):
    """JSON encoding of NumPy arrays and scalars (decoded by :func:`_json_hook`)."""
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def _json_hook(obj):
    if "__ndarray__" in obj:
        return np.array(obj["__ndarray__"], dtype=obj["dtype"])
    return obj


def load_checkpoint(path: str, keys, sampler=None):
    """(optimizer, next step) from a checkpoint; restores ``sampler``'s state in place."""
    if not os.path.isfile(path):
        raise UserError(f"--resume: no checkpoint at {path}")
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]), object_hook=_json_hook)
            opt = pickle.loads(data["optimizer"].tobytes())
    except Exception as exc:
        raise UserError(f"--resume: unreadable checkpoint {path}: {exc}") from None
    if meta["keys"] != list(keys):
        raise UserError(f"--resume: checkpoint optimizes {meta['keys']}, config asks for {list(keys)}")
    for key in opt.keys():
        opt[key] = opt[key]      # a pickle holds values only: enable their gradients again
    if sampler is not None and meta.get("sampler") is not None:
        sampler.load_state_dict(meta["sampler"])
    return opt, int(meta["step"]) + 1
