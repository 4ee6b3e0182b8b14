"""Frozen vs traced optimization steps: ms/step of ``rvs-mi optimize``'s step (render, loss,
backward, Adam) for the volume example (two views, 16³ grids, 1 spp), sparse batches of 1% and
5% of the pixels and whole images, side by side in one process; the median of the second half
of the steps (after the recordings).

    python benchmarks/bench_freeze.py [--res 64] [--steps 30]
"""
import argparse
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    import numpy as np
    from common import variant
    import rvs_mi
    rvs_mi.init(variant())
    import test_frozen as T
    from rvs_mi.optimize import loop
    from rvs_mi.optimize.frozen import FrozenCore
    from rvs_mi.optimize.step import make_core, step
    T.STEPS = args.steps
    print("| pixels per step | integrator | traced ms/step | frozen ms/step | frozen / traced | recordings |")
    print("|---|---|---|---|---|---|")
    for sampler, budget in (("uniform", args.res ** 2 // 100), ("uniform", args.res ** 2 // 20), ("full", 1.0)):
        for integrator in ("rvs", "volquad"):
            times, recs = {}, 0
            for frozen in (False, True):
                d = pathlib.Path(tempfile.mkdtemp())
                config = T.volume_config(d, integrator, sampler)
                config.references.res, config.upsample.at_steps = args.res, []
                if sampler != "full":
                    config.sampler.budget = budget
                problem = loop.setup_problem(config)
                smp = loop.make_pixel_sampler(config, problem)
                opt = loop._fresh_optimizer(config, problem)
                problem.params.update(opt)
                core = make_core(config, problem)
                if frozen:
                    core = FrozenCore(core, None, print)     # frozen whatever blocker() advises
                t = []
                for i in range(args.steps):
                    t0 = time.perf_counter()
                    step(config, problem, opt, smp, i, core)
                    t.append(time.perf_counter() - t0)
                times[frozen] = 1000 * float(np.median(t[args.steps // 2:]))   # after the recordings
                recs = core.recordings if frozen else recs
            share = 1.0 if sampler == "full" else budget / args.res ** 2
            print(f"| {share:.0%} of {args.res}² | {integrator} | {times[False]:.1f} | {times[True]:.1f} | "
                  f"{times[True] / times[False]:.2f}× | {recs} |")


if __name__ == "__main__":
    main()
