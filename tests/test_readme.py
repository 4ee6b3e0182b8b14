"""The README's Python snippets run as written (in order, in one namespace)."""
import os
import re

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _snippets():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_readme_has_snippets():
    assert len(_snippets()) >= 2


def test_readme_snippets_run(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    namespace = {}
    for code in _snippets():
        exec(compile(code, "README.md", "exec"), namespace)
    # the optimization example does optimize: its result is closer to the reference than its start
    import drjit as dr
    import mitsuba as mi
    scene, params, key, ref = (namespace[k] for k in ("scene", "params", "key", "reference"))

    def mse():
        return float(np.mean((np.array(mi.render(scene, spp=16, seed=99)) - np.array(ref)) ** 2))

    final = mse()
    params[key] = dr.full(mi.TensorXf, 1.0, params[key].shape)
    params.update()
    assert final < 0.7 * mse()
    first = namespace["sampler"]
    assert first.n_samples == round(0.05 * first.n_pixels)
    assert "loss" in capsys.readouterr().out
