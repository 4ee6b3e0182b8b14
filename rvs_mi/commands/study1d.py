"""rvs-mi study1d: the single-ray estimator study of Morozov et al. 2024 (Sec. 5.1, Fig. 2)."""
from __future__ import annotations

NAME = "study1d"
HELP = "single-ray colour-estimator variance study (Morozov et al. 2024, Sec. 5.1, Fig. 2) and a toy fit"

BASELINE_M = 128
MAX_SAMPLES_LIMIT = 65536
MAX_WORK = 1 << 26          # runs x max-samples: one flat array per estimate


def add_arguments(parser) -> None:
    parser.add_argument("-o", "--output", default="study1d", metavar="DIR",
                        help="output folder (default ./study1d)")
    parser.add_argument("--runs", type=int, default=256, metavar="R",
                        help="independent estimates per (field, estimator, m) (default 256)")
    parser.add_argument("--max-samples", type=int, default=256, metavar="M",
                        help="largest sample count; m = 1, 2, 4, ... <= M (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed in [0, 2^32 - 1] (default 0)")
    parser.add_argument("--toy-steps", type=int, default=300, metavar="N",
                        help="Adam steps of the toy density fit (default 300; 0 skips it)")
    parser.add_argument("--variant", default=None,
                        help="Mitsuba variant (default: cuda_ad_rgb if usable, else llvm_ad_rgb)")


def _check(args):
    import os

    from ..errors import UserError
    from ..scene import SEED_MAX
    if args.runs < 2:
        raise UserError(f"--runs must be >= 2 to measure a standard deviation (got {args.runs})")
    if not 1 <= args.max_samples <= MAX_SAMPLES_LIMIT:
        raise UserError(f"--max-samples must be in [1, {MAX_SAMPLES_LIMIT}] (got {args.max_samples})")
    if args.runs * args.max_samples > MAX_WORK:
        raise UserError(f"--runs x --max-samples must be <= {MAX_WORK} (got {args.runs * args.max_samples})")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0 (got {args.seed})")
    if args.seed > SEED_MAX:
        raise UserError(f"--seed must be <= {SEED_MAX} (got {args.seed})")
    if args.toy_steps < 0:
        raise UserError(f"--toy-steps must be >= 0 (got {args.toy_steps})")
    out = os.path.abspath(args.output)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"output {args.output} exists and is not a folder")
    parent = out if os.path.isdir(out) else os.path.dirname(out)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UserError(f"cannot write to {args.output}: {parent} is not a writable folder")


def run(args) -> int:
    import csv
    import json
    import os
    import time

    from tqdm import tqdm

    from .. import init
    from ..validate.fd import versions

    _check(args)
    init(args.variant)
    from ..figures import study1d as S

    os.makedirs(args.output, exist_ok=True)
    counts = S.sample_counts(args.max_samples)
    baseline_m = min(BASELINE_M, counts[-1])

    start = time.perf_counter()
    bar = tqdm(total=len(S.FIELDS) * len(S.ESTIMATORS) * len(counts), desc="study1d", unit="estimate")
    rows = S.run_study(args.runs, args.max_samples, args.seed, progress=lambda: bar.update(1))
    bar.close()
    study_s = time.perf_counter() - start
    table = S.matching_table(rows, baseline_m)

    paths = {"csv": os.path.join(args.output, "study1d.csv"),
             "figure": os.path.join(args.output, "study1d.png"),
             "json": os.path.join(args.output, "study1d.json"),
             "readme": os.path.join(args.output, "README.md")}
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["field", "estimator", "m", "mean", "std", "bias", "exact"])
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.9g}" if isinstance(v, float) else v) for k, v in r.items()})
    plot_study(S, rows, paths["figure"])
    text = format_table(S, table, baseline_m, args.runs)
    print(text)

    toy = None
    if args.toy_steps > 0:
        bar = tqdm(total=args.toy_steps, desc="study1d: toy fit", unit="step")
        start = time.perf_counter()
        toy = S.toy_optimization(steps=args.toy_steps, seed=args.seed, progress=lambda: bar.update(1))
        bar.close()
        toy["seconds"] = time.perf_counter() - start
        paths["toy_csv"] = os.path.join(args.output, "toy_loss.csv")
        paths["toy_figure"] = os.path.join(args.output, "toy_loss.png")
        with open(paths["toy_csv"], "w", newline="") as f:
            exact = dict(zip(toy["exact_steps"], toy["exact_losses"]))
            f.write("step,loss,exact_loss\n")
            f.write(f"0,,{exact[0]:.9g}\n")
            for step, loss in enumerate(toy["losses"], 1):
                f.write(f"{step},{loss:.9g},{exact[step]:.9g}\n" if step in exact else f"{step},{loss:.9g},\n")
        plot_toy(S, toy, paths["toy_figure"])
        print(f"toy fit ({toy['steps']} Adam steps, {toy['runs']} x {toy['samples']}-sample stratified RVS "
              f"per ray and step, {toy['seconds']:.1f} s): exact loss {toy['exact_loss_start']:.3g} -> "
              f"{toy['exact_loss_end']:.3g} ({toy['exact_loss_start'] / max(toy['exact_loss_end'], 1e-30):.0f}x lower)")

    summary = {"command": "study1d", "args": {"runs": args.runs, "max_samples": args.max_samples,
                                              "seed": args.seed, "toy_steps": args.toy_steps},
               "versions": versions(), "definitions": S.describe(), "seconds": study_s,
               "exact": {f: next(r["exact"] for r in rows if r["field"] == f) for f in S.FIELDS},
               "baseline": {"estimator": "stratified_uniform", "m": baseline_m},
               "matching_m": table, "files": {k: os.path.basename(v) for k, v in paths.items()}}
    if toy is not None:
        summary["toy"] = {k: toy[k] for k in ("target_field", "steps", "samples", "runs", "lr", "seconds",
                                              "exact_loss_start", "exact_loss_end", "targets")}
        summary["toy"]["radiances"] = S.TOY_RADIANCE_TEXT
        summary["toy"]["sigma"] = [float(x) for x in toy["sigma"]]
    with open(paths["json"], "w") as f:
        json.dump(summary, f, indent=2)
    write_readme(S, paths["readme"], summary, text)
    print(f"study1d: {len(rows)} rows in {study_s:.1f} s -> {args.output}")
    return 0


def format_table(S, table, baseline_m, runs) -> str:
    """Smallest m at which each estimator's std is at or below stratified uniform's at ``baseline_m``."""
    head = f"{'field':<16} {'baseline std':>12}" + "".join(f" {e:>18}" for e in S.ESTIMATORS)
    lines = [f"smallest m with std <= std(stratified_uniform, m={baseline_m}) "
             f"(R = {runs} runs; '-' = not reached)", head, "-" * len(head)]
    for field, row in table.items():
        cells = "".join(f" {('-' if row[e] is None else row[e]):>18}" for e in S.ESTIMATORS)
        lines.append(f"{field:<16} {row['baseline_std']:>12.4g}{cells}")
    return "\n".join(lines)


def write_readme(S, path, summary, table_text) -> None:
    d = summary["definitions"]
    lines = ["# rvs-mi study1d", "",
             "Single-ray colour-estimator study (Morozov et al. 2024, Sec. 5.1, Fig. 2).", "",
             f"Run: `rvs-mi study1d --runs {summary['args']['runs']} --max-samples "
             f"{summary['args']['max_samples']} --seed {summary['args']['seed']} "
             f"--toy-steps {summary['args']['toy_steps']}`", "",
             "## Definitions", "", f"- Ray: {d['ray']}."]
    for f, spec in d["fields"].items():
        lines.append(f"- `{f}`: {spec['definition']} (Sigma_f = {spec['sigma_far']:.4f}, "
                     f"exact C = {summary['exact'][f]:.8f}).")
    lines += [f"- Radiance: {d['radiance']}.", f"- Exact C: {d['exact']}.",
              f"- Random numbers: {d['random_numbers']}.", "", "Estimators (m samples):", ""]
    lines += [f"- `{k}`: {v}" for k, v in d["estimators"].items()]
    lines += ["", "## Result", "", "```", table_text, "```", "",
              "Files: `study1d.csv` (field, estimator, m, mean, std, bias, exact), `study1d.png` "
              "(top: opacity F and radiance c; bottom: std vs m, log scale), `study1d.json` "
              "(all of this as data, versions)."]
    if "toy" in summary:
        t = summary["toy"]
        lines += ["", "## Toy fit", "",
                  f"A 256-knot density sigma = softplus(64 s), s = 0 at the start, fitted with Adam (lr {t['lr']}) "
                  f"for {t['steps']} steps so that four rays through it (radiances: "
                  + "; ".join(t["radiances"]) + f") reach the expected colours of `{t['target_field']}`; "
                  f"each step uses {t['runs']} estimates per ray of {t['samples']}-sample stratified RVS. "
                  f"Exact loss {t['exact_loss_start']:.4g} -> {t['exact_loss_end']:.4g}. "
                  "Files: `toy_loss.csv`, `toy_loss.png`."]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


_STYLE = {"uniform": ("tab:red", "--", "uniform t (MC)"),
          "stratified_uniform": ("tab:red", "-", "stratified uniform t (Eq. 13)"),
          "rvs": ("tab:green", "--", "RVS (Eq. 7)"),
          "stratified_rvs": ("tab:green", "-", "stratified RVS (Eq. 8)")}


def plot_study(S, rows, path) -> None:
    from matplotlib.figure import Figure
    import numpy as np

    import drjit as dr
    import mitsuba as mi

    fig = Figure(figsize=(4.2 * len(S.FIELDS), 7))
    axes = fig.subplots(2, len(S.FIELDS), squeeze=False)
    t = np.linspace(0, 1, 2049)
    for j, field in enumerate(S.FIELDS):
        spline = S.ray_spline(S.field_sigma(field), 1)
        cum = np.array(spline.cumulative(mi.Float(t.astype(np.float32)), dr.zeros(mi.UInt32, t.size)),
                       dtype=np.float64)
        ax = axes[0, j]
        ax.plot(t, -np.expm1(-cum), color="tab:blue", label="opacity F(t)")
        ax.plot(t, S.radiance(t), color="tab:orange", label="radiance c(t)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(field.replace("_", " "))
        ax.set_xlabel("t")
        if j == 0:
            ax.legend(loc="upper left", fontsize=8)
        ax = axes[1, j]
        for est in S.ESTIMATORS:
            pts = sorted((r["m"], r["std"]) for r in rows if r["field"] == field and r["estimator"] == est)
            colour, ls, label = _STYLE[est]
            ax.plot([p[0] for p in pts], [max(p[1], 1e-12) for p in pts], color=colour, ls=ls, marker="o",
                    ms=3, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("samples m")
        ax.grid(True, which="major", alpha=0.3)
        if j == 0:
            ax.set_ylabel("std of the colour estimate")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_toy(S, toy, path) -> None:
    from matplotlib.figure import Figure
    import numpy as np

    fig = Figure(figsize=(10, 3.8))
    (a, b) = fig.subplots(1, 2)
    steps = np.arange(1, len(toy["losses"]) + 1)
    a.semilogy(steps, toy["losses"], color="tab:gray", lw=0.8, label="stochastic loss (8-sample stratified RVS)")
    a.semilogy(toy["exact_steps"], toy["exact_losses"], color="tab:green", marker="o", ms=3,
               label="exact loss (dense quadrature)")
    a.set_xlabel("Adam step")
    a.set_ylabel("loss")
    a.legend(fontsize=8)
    a.grid(True, alpha=0.3)
    t = np.linspace(0, 1, S.KNOTS)
    b.plot(t, S.field_sigma(toy["target_field"]), color="tab:blue", label=f"target ({toy['target_field']})")
    b.plot(t, toy["sigma"], color="tab:green", label="fitted")
    b.set_yscale("symlog", linthresh=1.0)
    b.set_xlabel("t")
    b.set_ylabel("density σ")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
