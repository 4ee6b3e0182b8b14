"""Checkpoints of ``rvs-mi optimize``: the optimizer and the sampler state in one ``.npz``.

The optimizer is stored as its pickle (Dr.Jit's optimizers pickle their whole
state: parameter values, learning rates and every moment, e.g. Adam's
``t``, ``m``, ``v`` and AMSGrad's ``v_max``), so no field layout is assumed.
``meta`` records the step, the optimized keys, the number of ``metrics.csv``
rows the checkpoint covers and the sampler state. Files are written with
:func:`atomic_write` (temporary file, fsync, rename, fsync of the folder), so a
run killed at any moment keeps either the previous checkpoint or the new one.
"""
import json
import os
import pickle
import zipfile

import drjit as dr
import numpy as np

from ..errors import UserError

CHECKPOINT = "checkpoint.npz"
META_KEYS = ("step", "keys", "rows")


def atomic_write(path: str, write) -> None:
    """Create ``path`` through ``write(file)`` on a temporary file that is fsynced and renamed."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def fsync_dir(folder: str) -> None:
    """Make a rename or a new file in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: str, obj) -> None:
    """``obj`` as indented JSON, written atomically."""
    text = json.dumps(obj, indent=2, default=json_default).encode()
    atomic_write(path, lambda f: f.write(text))


def save_checkpoint(path: str, step: int, opt, keys, sampler=None, rows: int | None = None) -> None:
    """Checkpoint after step ``step``, covering ``rows`` metrics rows (default: ``step + 1``)."""
    meta = {"step": int(step), "keys": list(keys), "rows": int(step + 1 if rows is None else rows),
            "sampler": sampler.state_dict() if sampler is not None else None}
    arrays = {"optimizer": np.frombuffer(pickle.dumps(opt), dtype=np.uint8),
              "meta": np.array(json.dumps(meta, default=json_default))}
    atomic_write(path, lambda f: np.savez(f, **arrays))


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


def read_checkpoint(path: str):
    """(optimizer, meta) of a checkpoint; any damage is a :class:`UserError` naming the file."""
    if not os.path.isfile(path):
        raise UserError(f"--resume: no checkpoint at {path}")
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]), object_hook=_json_hook)
            opt = pickle.loads(data["optimizer"].tobytes())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError,
            AttributeError, TypeError, ImportError, IndexError) as exc:
        raise UserError(f"unreadable checkpoint {path}: {type(exc).__name__}: {exc}") from None
    missing = [k for k in META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise UserError(f"unreadable checkpoint {path}: its meta lacks {', '.join(missing)}")
    if not (type(meta["step"]) is int and type(meta["rows"]) is int and meta["step"] >= 0 and meta["rows"] >= 0
            and isinstance(meta["keys"], list) and all(isinstance(k, str) for k in meta["keys"])):
        raise UserError(f"unreadable checkpoint {path}: its meta has a wrong step, rows or keys")
    if not hasattr(opt, "state"):
        raise UserError(f"unreadable checkpoint {path}: it holds no optimizer")
    return opt, meta


def load_checkpoint(path: str, keys, sampler=None):
    """(optimizer, next step) from a checkpoint; restores ``sampler``'s state in place."""
    opt, meta = restore_checkpoint(path, keys, sampler)
    return opt, int(meta["step"]) + 1


def restore_checkpoint(path: str, keys, sampler=None):
    """(optimizer, meta) from a checkpoint; restores ``sampler``'s state in place.

    Refuses (one line naming the file) a checkpoint of other keys or with
    non-finite parameters or moments."""
    opt, meta = read_checkpoint(path)
    if meta["keys"] != list(keys):
        raise UserError(f"--resume: checkpoint {path} optimizes {meta['keys']}, the config asks for {list(keys)}")
    bad = nonfinite_keys(opt)
    if bad:
        raise UserError(f"--resume: checkpoint {path} holds non-finite values (NaN/inf) in {', '.join(bad)}")
    for key in opt.keys():
        opt[key] = opt[key]      # a pickle holds values only: enable their gradients again
    if sampler is not None and meta.get("sampler") is not None:
        try:
            sampler.load_state_dict(meta["sampler"])
        except UserError as exc:
            raise UserError(f"--resume: checkpoint {path}: {exc}") from None
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            raise UserError(f"unreadable checkpoint {path}: its sampler state: {type(exc).__name__}: {exc}") from None
    return opt, meta


def _float_arrays(obj):
    """The floating-point Dr.Jit arrays in an optimizer's state entry (nested tuples)."""
    if isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _float_arrays(item)
    elif dr.is_array_v(obj) and dr.is_float_v(obj) and dr.width(obj):
        yield obj.array if dr.is_tensor_v(obj) else obj


def nonfinite_keys(opt) -> list:
    """Keys whose parameter value or optimizer moments hold NaN or inf."""
    bad = []
    with dr.suspend_grad():
        for k, state in opt.state.items():
            finite = {}                 # one fused test per array size (value and moments share one)
            for a in _float_arrays(state):
                n = dr.width(a)
                finite[n] = dr.isfinite(a) & finite[n] if n in finite else dr.isfinite(a)
            if not all(bool(dr.all(f, axis=None)[0]) for f in finite.values()):
                bad.append(k)
    return bad
