"""``python -m rnnkit bench``: time rnnkit against its NumPy reference, PyTorch, Keras and ONNX Runtime.

For each case, cell and pass (forward; forward + backward) every implementation is set up with the
same float32 weights, its output (forward) or its gradients (forward + backward) are checked against
the oracle — rnnkit.reference, or torch where the reference lacks the cell — and only the ones that
agree are timed, in alternating blocks (see ``timing``).  The report gives milliseconds, GFLOP/s,
the percentage of the machine's GEMM peak measured in the same run (NumPy's float32 matmul of
2048×2048), how many times faster rnnkit is than each peer, and the issue's speed goals.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import shlex
import sys
import time

import numpy as np

from . import kernels_v2, report
from .adapters import IMPLEMENTATIONS, ORACLES, ORDER, make_runner, missing_module
from .problems import (
    CASES,
    CELLS,
    GATES,
    MODE_LABELS,
    MODES,
    QUICK_CASES,
    QUICK_V2_CASES,
    QUICK_V2_CELLS,
    V2_CASES,
    Case,
    flops,
    make_problem,
)
from .runner import Unavailable
from .timing import TOLERANCE, check_outputs, measure

QUICK_ROUNDS = 5            # --quick: alternating rounds (a full run: 7) ...
QUICK_BLOCK_SECONDS = 0.1   # ... of this much work per block (a full run: 0.2 s)
PEER_DISTRIBUTIONS = {"torch": ("torch",), "keras": ("tensorflow", "tensorflow-cpu", "keras"), "onnx": ("onnxruntime", "onnx")}


def _csv(choices):
    def parse(text: str) -> list:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if items == ["all"]:
            return list(choices)
        unknown = [item for item in items if item not in choices]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(choices)} (or all), got {text!r}")
        return items
    return parse


def _shape(text: str) -> Case:
    try:
        steps, batch, inputs, hidden = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected T,B,I,H (four integers), got {text!r}") from None
    if min(steps, batch, inputs, hidden) < 1:
        raise argparse.ArgumentTypeError(f"T, B, I and H must be at least 1, got {text!r}")
    return Case("custom", "custom", steps, batch, inputs, hidden)


def parse_args(argv: list) -> argparse.Namespace:
    import rnnkit

    v2_names = list(dict.fromkeys(c.name for c in V2_CASES))
    parser = argparse.ArgumentParser(
        prog="python -m rnnkit bench",
        description="Time rnnkit against its NumPy reference, PyTorch, Keras and ONNX Runtime (those installed), "
                    "after checking each one's results against the reference.",
        epilog="Cases: " + "; ".join(f"{c.name} {c.title}: {c.shape}" for c in CASES)
               + ". Kernels-v2 cases (issue 11; each with its own cells unless --cell is given): "
               + ", ".join(v2_names) + " (infer: " + str(sum(c.kind == "infer" for c in V2_CASES)) + " shapes). "
               + "--quick: the same method (validation, alternating rounds, pauses) on fewer cases, each at its "
               + "full size: " + ", ".join(dict.fromkeys(c.name for c in (*QUICK_CASES, *QUICK_V2_CASES)))
               + f" ({', '.join(QUICK_V2_CELLS or ['their own cells'])} only unless --cell is given), {QUICK_ROUNDS} rounds of "
               + f"{QUICK_BLOCK_SECONDS} s blocks. A goal whose per-round values spread over more than "
               + f"{report.NOISY_SPREAD:.0%} of their median reads 'noisy' instead of yes or NO.")
    parser.add_argument("--quick", action="store_true",
                        help="the full method on fewer cases, fewer rounds: ratios within the spread of a full run's "
                             "(2-5 minutes on 2 cores, as busy as they are)")
    parser.add_argument("--cell", type=_csv(CELLS), default=None,
                        help="tanh, relu, lstm, gru, a comma-separated list or all (default: tanh for S1-S4, "
                             "each kernels-v2 case its own cells)")
    parser.add_argument("--case", type=_csv([c.name for c in CASES] + v2_names), default=None,
                        help="S1,S2,S3,S4 and the kernels-v2 cases " + ",".join(v2_names) + " (default all)")
    parser.add_argument("--shape", type=_shape, default=None, metavar="T,B,I,H", help="one custom case instead of S1-S4")
    parser.add_argument("--mode", choices=("forward", "train", "both"), default="both", help="forward, train (forward+backward) or both")
    parser.add_argument("--peers", type=_csv(ORDER), default=None,
                        help="implementations to run: rnnkit, numpy (the reference), torch, keras, onnx; default all "
                             "(rnnkit-1t, rnnkit on 1 thread, follows --scaling)")
    parser.add_argument("--threads", type=int, default=rnnkit.get_num_threads(), help="threads for every implementation (default: rnnkit's)")
    parser.add_argument("--scaling", action=argparse.BooleanOptionalAction, default=None,
                        help="also time rnnkit on 1 thread (default: on, except with --quick, --peers or --threads 1)")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 7, --quick 3)")
    parser.add_argument("--pause", type=float, default=None, help="seconds of rest at each switch (default 0.3, --quick 0.05)")
    parser.add_argument("--block-seconds", type=float, default=None, help="work per timed block (default 0.2, --quick 0.02)")
    parser.add_argument("--peak-size", type=int, default=2048, help="n of the n×n NumPy matmul that measures the GEMM peak (0: skip)")
    parser.add_argument("--gemm", action=argparse.BooleanOptionalAction, default=True,
                        help="compare rnnkit's GEMM with NumPy's on the all-timestep product shapes (default on)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help=f"validation: max error relative to the oracle's max (default {TOLERANCE:g})")
    parser.add_argument("--json", metavar="PATH", help="write every number to PATH as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG bar chart of GFLOP/s (needs matplotlib: the bench extra)")
    parser.add_argument("--markdown", metavar="PATH", help="write the tables as Markdown; in an existing file (BENCHMARKS.md) "
                                                           f"only the region between {report.MARK_BEGIN} and {report.MARK_END}")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if args.shape and args.case:
        parser.error("--shape and --case exclude each other")
    # --quick keeps the pause (idle BLAS and OpenMP workers spin for 0.1-0.3 s after a call: a shorter rest
    # times rnnkit against them) and the untimed call; it runs fewer and shorter rounds
    args.rounds = args.rounds or (QUICK_ROUNDS if args.quick else 7)
    args.pause = args.pause if args.pause is not None else 0.3
    args.block_seconds = args.block_seconds or (QUICK_BLOCK_SECONDS if args.quick else 0.2)
    if args.scaling is None:
        args.scaling = args.peers is None and not args.quick and args.threads > 1
    peers = args.peers or [name for name in ORDER if name != "rnnkit-1t"]
    if args.scaling and "rnnkit" in peers and "rnnkit-1t" not in peers:
        peers.insert(peers.index("rnnkit") + 1, "rnnkit-1t")
    args.peers = [name for name in ORDER if name in peers]
    args.modes = list(MODES) if args.mode == "both" else [args.mode]
    args.v2_cells = args.cell  # None: each kernels-v2 case its own cells
    args.cell = args.cell or ["tanh"]
    if args.shape:
        args.cases, args.v2_cases = [args.shape], []
    else:
        pool = QUICK_CASES if args.quick else CASES
        args.cases = [c for c in pool if args.case is None or c.name in args.case]
        pool = QUICK_V2_CASES if args.quick else V2_CASES
        args.v2_cases = [c for c in pool if (args.case is None or c.name in args.case)
                         and any(m in args.modes for m in c.modes)]
    return args


def v2_cells(case: Case, args) -> list:
    """The cells a kernels-v2 case runs: its own (with --quick, those of QUICK_V2_CELLS), or those of
    --cell that its kind can run."""
    if args.v2_cells is None:
        if args.quick and QUICK_V2_CELLS is not None:
            return [cell for cell in case.cells if cell in QUICK_V2_CELLS]
        return list(case.cells)
    return [cell for cell in args.v2_cells if cell in kernels_v2.KIND_CELLS[case.kind]]


def _blas_threads(threads: int):
    """Limit NumPy's BLAS to the benchmark's thread count (needs threadpoolctl; else left as it is)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext(), "unknown (threadpoolctl not installed: not limited)"
    return threadpool_limits(limits=threads, user_api="blas"), str(threads)


def _peer_version(name: str) -> str | None:
    """The installed distributions behind a peer, e.g. "tensorflow-cpu 2.21.0, keras 3.15.1"."""
    found = []
    for dist in PEER_DISTRIBUTIONS.get(name, ()):
        try:
            found.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ", ".join(found) or None


def _without_outputs(argv: list) -> list:
    """argv less --json/--plot/--markdown and their paths: the options that shape the numbers."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--json", "--plot", "--markdown"):
            skip = True
        elif not arg.startswith(("--json=", "--plot=", "--markdown=")):
            kept.append(arg)
    return kept


def _record(case: Case, cell: str, mode: str, impl: str, status: str, reason: str = "", **numbers) -> dict:
    record = {"case": case.name, "title": case.title, "kind": case.kind, "shape": case.shape, "T": case.steps,
              "B": case.batch, "I": case.inputs, "H": case.hidden, "G": GATES[cell], "cell": cell, "mode": mode,
              "impl": impl, "label": IMPLEMENTATIONS[impl].label, "status": status, "reason": reason,
              "full_size": case in CASES or case in V2_CASES,
              "flops": flops(cell, case, mode), "oracle": None, "error": None, "ms": None, "ms_min": None, "ms_rounds": None,
              "spread": None, "calls": None, "other_load": None, "gflops": None, "percent_of_peak": None, "rnnkit_speedup": None,
              "peak_gflops_here": None}
    record.update(numbers)
    return record


# --------------------------------------------------------------------------------------------------


class GemmPeak:
    """NumPy's float32 n×n matmul: the machine's GEMM peak, measured at the start and again alongside
    every case (it joins the alternation), so that a busy spell shows up as a low peak for that case.
    The run's peak is the best of these measurements."""

    name = "gemm-peak"

    def __init__(self, n: int):
        rng = np.random.default_rng(0)
        self.n = n
        self.a, self.b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
        self.flops = 2.0 * n ** 3
        self.seconds = []  # the median of each measurement

    def __call__(self):
        return self.a @ self.b

    def add(self, timing) -> float:
        self.seconds.append(timing.median)
        return self.flops / timing.median / 1e9

    def summary(self) -> dict:
        best = min(self.seconds)
        return {"n": self.n, "gflops": self.flops / best / 1e9, "ms": 1e3 * best,
                "measurements_gflops": [self.flops / s / 1e9 for s in self.seconds]}


def gemm_shapes(args) -> list:
    """The all-timestep products of each case and cell: (case, cell, what, M, K, N) for c = a (M, K) @ b (K, N)."""
    shapes = []
    for case in args.cases:
        for cell in args.cell:  # tanh and relu share shapes: deduplicated below
            rows, gh = case.steps * case.batch, GATES[cell] * case.hidden
            label = f"{case.name}{'' if cell in ('tanh', 'relu') else ' ' + cell}"
            candidates = [(f"{label} input projection x·W_ihᵀ", rows, case.inputs, gh)]
            if "train" in args.modes and "train" in case.modes and not args.quick:  # --quick: one shape a case
                candidates += [(f"{label} dW_ih = dpreᵀ·x", gh, rows, case.inputs),
                               (f"{label} dW_hh = dpreᵀ·h", gh, rows, case.hidden),
                               (f"{label} dx = dpre·W_ih", rows, gh, case.inputs)]
            for what, m, k, n in candidates:
                if all((m, k, n) != tuple(s[3:]) for s in shapes):
                    shapes.append((case, cell, what, m, k, n))
    return shapes


def gemm_comparison(args) -> list:
    from rnnkit import _core

    results = []
    rng = np.random.default_rng(1)
    for case, cell, what, m, k, n in gemm_shapes(args):
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        # --quick times only each case's input projection: "every product shape" is not measured, so its
        # products are shown but judge no goal
        entry = {"what": what, "case": case.name, "cell": cell, "full_size": case in CASES and not args.quick,
                 "shape": [m, k, n], "flops": 2.0 * m * k * n}
        check = check_outputs({"c": _core.matmul(a, b)}, {"c": a @ b}, args.tolerance)
        entry["error"] = check.error
        if not check.ok:
            entry.update(status="rejected", reason=check.detail)
            print(f"  GEMM {what}: rnnkit WRONG: {check.detail}; not timed")
            results.append(entry)
            continue
        timings = measure({"rnnkit": lambda a=a, b=b: _core.matmul(a, b), "numpy": lambda a=a, b=b: a @ b},
                          rounds=args.rounds, pause=args.pause, block_seconds=args.block_seconds)
        for name, timing in timings.items():
            entry[f"{name}_ms"] = 1e3 * timing.median
            entry[f"{name}_ms_rounds"] = [1e3 * t for t in timing.seconds]
            entry[f"{name}_gflops"] = entry["flops"] / timing.median / 1e9
        entry.update(status="ok", reason="", ratio=entry["numpy_ms"] / entry["rnnkit_ms"],
                     other_load=timings["rnnkit"].other_load,
                     ratio_rounds=[a / b for a, b in zip(entry["numpy_ms_rounds"], entry["rnnkit_ms_rounds"])])
        print(f"  GEMM {what:<40} {m}×{k}×{n:<6} rnnkit {entry['rnnkit_gflops']:7.1f}  numpy {entry['numpy_gflops']:7.1f} GFLOP/s"
              f"  ({100 * entry['ratio']:.0f}%, rounds {report.range_text(entry['ratio_rounds'], 100, '%')})", flush=True)
        results.append(entry)
    return results


def _oracle(cell: str, problem, runners: dict):
    """(name, runner) of the first oracle that can run this cell, else (None, reason)."""
    reasons = []
    for name in ORACLES:
        if name in runners:
            return name, runners[name]
        try:
            return name, make_runner(name, cell, problem)
        except Unavailable as exc:
            reasons.append(f"{name}: {exc}")
        except Exception as exc:  # reported with the case, not fatal
            reasons.append(f"{name}: {type(exc).__name__}: {exc}")
    return None, "; ".join(reasons)


def _expected(oracle, mode: str) -> dict:
    if mode == "forward":
        return {"y": oracle.output(oracle.forward())}
    return oracle.gradients(oracle.train())


def _validate(name: str, runner, mode: str, expected: dict, args):
    """Run ``name`` once and compare it with the oracle: (Check, None) or (None, why it failed)."""
    try:
        runner.enter()
        got = {"y": runner.output(runner.forward())} if mode == "forward" else runner.gradients(runner.train())
        return check_outputs(got, expected, args.tolerance), None
    except Exception as exc:  # a peer that crashes is reported, and the run goes on
        return None, f"{type(exc).__name__}: {exc}"


def run_case(cell: str, case: Case, args, peak: GemmPeak | None) -> list:
    """Set up, validate and time every implementation on one case and cell; the records."""
    problem = make_problem(cell, case, args.threads)
    runners, unavailable = {}, {}
    for name in args.peers:
        try:
            runners[name] = make_runner(name, cell, problem)
        except Unavailable as exc:
            unavailable[name] = ("unavailable", str(exc))
        except Exception as exc:  # a peer that cannot even be set up is reported, not fatal
            unavailable[name] = ("failed", f"setup: {type(exc).__name__}: {exc}")
    oracle_name, oracle = _oracle(cell, problem, runners)
    records = []
    for mode in (m for m in args.modes if m in case.modes):
        against = f" — oracle: {IMPLEMENTATIONS[oracle_name].label}" if oracle_name else ""
        print(f"{case.name} {case.title} ({case.shape}), {cell}, {MODE_LABELS[mode]}{against}", flush=True)
        group = {name: _record(case, cell, mode, name, *unavailable[name]) for name in unavailable}
        expected, why = None, f"no oracle: {oracle}" if oracle_name is None else ""
        if oracle_name is not None:
            try:
                expected = _expected(oracle, mode)
            except Exception as exc:
                why = f"the oracle ({oracle_name}) failed: {type(exc).__name__}: {exc}"
        if expected is None:
            print(f"  nothing to validate against ({why}); not timed")
            records += [group.get(name) or _record(case, cell, mode, name, "failed", why) for name in args.peers]
            continue
        to_time, errors = {}, {}
        for name, runner in runners.items():
            if mode == "train" and runner.train is None:
                group[name] = _record(case, cell, mode, name, "skipped", "forward only")
                continue
            check, failure = (check_outputs(expected, expected), None) if name == oracle_name else _validate(name, runner, mode, expected, args)
            if failure:
                group[name] = _record(case, cell, mode, name, "failed", failure)
            elif not check.ok:
                group[name] = _record(case, cell, mode, name, "rejected", check.detail, error=check.error, oracle=oracle_name)
            else:
                errors[name] = check.error
                to_time[name] = runner.train if mode == "train" else runner.forward
        if peak and to_time:
            to_time[peak.name] = peak
        timings = measure(to_time, rounds=args.rounds, pause=args.pause, block_seconds=args.block_seconds,
                          enter={name: runners[name].enter for name in to_time if name in runners})
        peak_here = peak.add(timings.pop(peak.name)) if peak and peak.name in timings else None
        for name, timing in timings.items():
            group[name] = _record(case, cell, mode, name, "ok", "", oracle=oracle_name, error=errors[name],
                                  ms=1e3 * timing.median, ms_min=1e3 * min(timing.seconds),
                                  ms_rounds=[1e3 * s for s in timing.seconds], spread=timing.spread, calls=timing.calls,
                                  peak_gflops_here=peak_here, other_load=timing.other_load)
        group = [group[name] for name in args.peers]
        report.add_ratios(group, peak_here)
        if peak_here:
            print(f"  GEMM peak alongside: {peak_here:.1f} GFLOP/s")
        _print_group(group)
        records += group
    return records


def run_v2_case(cell: str, case: Case, args) -> list:
    """One kernels-v2 case and cell (``kernels_v2``): each variant validated against its oracle (the NumPy
    reference with the same keywords), then the ones that agree timed in alternating blocks; the records."""
    records = []
    try:
        setup = kernels_v2.make_setup(cell, case, args.threads, getattr(args, "default_blas_threads", None))
    except Exception as exc:  # reported with the case, not fatal
        why = f"setup: {type(exc).__name__}: {exc}"
        print(f"{case.name} {case.title} ({case.shape}), {cell}: FAILED ({why})")
        return [_record(case, cell, mode, "rnnkit", "failed", why) for mode in case.modes if mode in args.modes]
    variants = [v for v in setup.variants if v.family in args.peers]
    labels = {v.name: kernels_v2.BASE_LABELS[case.kind] if v.name == "rnnkit" else IMPLEMENTATIONS[v.name].label
              for v in variants}
    with setup.context:
        for mode in (m for m in case.modes if m in args.modes):
            print(f"{case.name} {case.title} ({case.shape}), {cell}, {MODE_LABELS[mode]} — oracle: NumPy ref", flush=True)

            def record(v, status, reason="", mode=mode, **numbers):
                if v.flops is not None:
                    numbers["flops"] = v.flops
                return _record(case, cell, mode, v.name, status, reason, label=labels[v.name], **numbers)

            # forward + backward is checked on y as well as on the gradients (with lengths, wrong values at
            # the padding can leave the gradients right)
            checked = ["forward"] + (["train"] if mode == "train" else [])
            expected, why = {}, {}
            for key, oracle in setup.oracles.items():
                if any(v.oracle == key for v in variants):
                    try:
                        expected[key] = {m: _expected(oracle, m) for m in checked}
                    except Exception as exc:
                        why[key] = f"the oracle failed: {type(exc).__name__}: {exc}"
            group, to_time, before, enter, errors = {}, {}, {}, {}, {}
            for v in variants:
                if v.oracle not in expected:
                    group[v.name] = record(v, "failed", why.get(v.oracle, "no oracle"))
                    continue
                reason = missing_module(v.family) if v.family in IMPLEMENTATIONS else None
                try:
                    if reason:
                        raise Unavailable(reason)
                    runner = v.make()
                except Unavailable as exc:
                    group[v.name] = record(v, "unavailable", str(exc))
                    continue
                except Exception as exc:
                    group[v.name] = record(v, "failed", f"setup: {type(exc).__name__}: {exc}")
                    continue
                if v.before:
                    v.before()
                for m in checked:
                    check, failure = _validate(v.name, runner, m, expected[v.oracle][m], args)
                    if failure or not check.ok:
                        break
                if failure:
                    group[v.name] = record(v, "failed", failure)
                elif not check.ok:
                    group[v.name] = record(v, "rejected", check.detail, error=check.error, oracle="numpy")
                else:
                    errors[v.name] = check.error
                    to_time[v.name] = runner.train if mode == "train" else runner.forward
                    enter[v.name] = runner.enter
                    if v.before:
                        before[v.name] = v.before
            timings = measure(to_time, rounds=args.rounds, pause=args.pause, block_seconds=args.block_seconds,
                              enter=enter, before=before) if to_time else {}
            for v in variants:
                if v.name in timings:
                    timing = timings[v.name]
                    group[v.name] = record(v, "ok", "", oracle="numpy", error=errors[v.name], ms=1e3 * timing.median,
                                           ms_min=1e3 * min(timing.seconds), ms_rounds=[1e3 * t for t in timing.seconds],
                                           spread=timing.spread, calls=timing.calls, other_load=timing.other_load)
            group = [group[v.name] for v in variants]
            report.add_ratios(group, None)
            kernels_v2.finish(case, setup, group)
            _print_group(group)
            records += group
    return records


def _print_group(group: list) -> None:
    width = max([10] + [len(r["label"]) for r in group])
    for r in group:
        label = r["label"].ljust(width)
        if r["ms"] is None:
            what = {"rejected": "WRONG, not timed", "failed": "FAILED", "unavailable": "not available", "skipped": "skipped"}[r["status"]]
            print(f"  {label} {what}: {r['reason']}")
            continue
        peak = f"{r['percent_of_peak']:5.1f}% of it" if r["percent_of_peak"] is not None else ""
        ratio, speedup = "", r["rnnkit_speedup"]
        base = "rnnkit" if r.get("kind", "standard") == "standard" else kernels_v2.BASE_LABELS[r["kind"]]
        if r["impl"] != "rnnkit" and speedup:
            ratio = f"  {base} {speedup:.2f}× faster" if speedup >= 1 else f"  {base} {1 / speedup:.2f}× slower"
            if r.get("rnnkit_speedup_rounds"):  # the rounds' range of the ratio (its time / the base's)
                what = "" if speedup >= 1 else f"{speedup:.2f}×, "
                ratio += f" ({what}rounds {report.range_text(r['rnnkit_speedup_rounds'])})"
        print(f"  {label} {r['ms']:10.4f} ms {r['gflops']:8.1f} GFLOP/s {peak:>15}   ±{100 * r['spread']:.0f}%"
              f"  err {r['error']:.1e}{ratio}", flush=True)


def main(argv: list | None = None) -> int:
    import rnnkit

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    started = time.perf_counter()
    previous_threads = rnnkit.get_num_threads()
    blas_limit, blas_threads = _blas_threads(args.threads)
    peers = {}
    for name in ("torch", "keras", "onnx"):
        if name in args.peers:
            why = missing_module(name)
            peers[name] = {"version": None if why else _peer_version(name), "missing": why}
    args.default_blas_threads = kernels_v2.default_blas_threads()  # before the limit: the contention case's
    bandwidth = None
    try:
        rnnkit.set_num_threads(args.threads)
        with blas_limit:
            print(f"rnnkit {rnnkit.__version__} ({rnnkit.simd_isa()}), {args.threads} threads "
                  f"(NumPy BLAS: {blas_threads}), float32, {args.rounds} rounds, pause {args.pause} s")
            for name, peer in peers.items():
                print(f"  {IMPLEMENTATIONS[name].label}: {peer['version'] or peer['missing']}")
            peak = GemmPeak(args.peak_size) if args.peak_size > 0 else None
            if peak:
                gflops = peak.add(measure({peak.name: peak}, rounds=args.rounds, pause=args.pause,
                                          block_seconds=args.block_seconds)[peak.name])
                print(f"GEMM peak: NumPy float32 matmul {peak.n}×{peak.n}: {gflops:.1f} GFLOP/s", flush=True)
            gemm = gemm_comparison(args) if args.gemm else []
            records = []
            for cell in args.cell:
                for case in args.cases:
                    records += run_case(cell, case, args, peak)
            for case in args.v2_cases:
                if case.kind == "infer" and bandwidth is None and "rnnkit" in args.peers and v2_cells(case, args):
                    bandwidth = kernels_v2.machine_bandwidth(args)
                    print(f"Bandwidth (measured, NumPy copy on one thread): memory {bandwidth['memory_gbps']:.1f} GB/s, "
                          f"L3 {bandwidth['l3_gbps']:.1f} GB/s", flush=True)
                for cell in v2_cells(case, args):
                    records += run_v2_case(cell, case, args)
    finally:
        rnnkit.set_num_threads(previous_threads)
    peak_summary = peak.summary() if peak else None
    report.add_ratios(records, peak_summary["gflops"] if peak_summary else None)  # against the run's best peak
    goals = report.evaluate_goals(records, gemm)
    result = {
        "command": shlex.join(["python", "-m", "rnnkit", "bench", *argv]),
        "measurement": shlex.join(["python", "-m", "rnnkit", "bench", *_without_outputs(argv)]),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "rnnkit": rnnkit.info(),
        "machine": report.machine(),
        "peers": peers,
        "settings": {"threads": args.threads, "numpy_blas_threads": blas_threads, "rounds": args.rounds, "pause": args.pause,
                     "block_seconds": args.block_seconds, "quick": args.quick, "tolerance": args.tolerance,
                     "cells": args.cell, "cases": [c.name for c in args.cases], "modes": args.modes, "implementations": args.peers,
                     "v2_cells": args.v2_cells, "v2_cases": list(dict.fromkeys(c.name for c in args.v2_cases)),
                     "default_blas_threads": args.default_blas_threads},
        "gemm_peak": peak_summary,
        "bandwidth": bandwidth,
        "gemm": gemm,
        "results": records,
        "goals": goals,
        "seconds": time.perf_counter() - started,
    }
    report.print_summary(result)
    if args.json:
        report.write_json(args.json, result)
    if args.markdown:
        report.write_markdown(args.markdown, report.markdown_report(result))
    if args.plot:
        report.write_plot(args.plot, result)
    print(f"\nfinished in {result['seconds']:.0f} s")
    bad = [r for r in records if r["status"] in ("rejected", "failed")] + [g for g in gemm if g["status"] == "rejected"]
    if bad:
        print(f"\n{len(bad)} implementation(s) failed validation or crashed; see above", file=sys.stderr)
        return 1
    return 0
