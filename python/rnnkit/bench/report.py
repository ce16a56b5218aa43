"""What the benchmark prints and writes: the tables, the goals, the machine, JSON, Markdown, a PNG."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess

import numpy as np

from .adapters import IMPLEMENTATIONS, ORDER
from .problems import MODE_LABELS

PEERS_FOR_SPEEDUP = ("numpy", "torch", "keras", "onnx")

# The issues' speed goals.  (description, cell, case, mode, metric, target)
# metric: "speedup:<impl>" (its time / rnnkit's), "percent_of_peak", "scaling" (1 thread / N threads),
# "best_peer" (the fastest peer's time / rnnkit's).
GOALS = (
    # the vanilla cell (issue 4)
    ("S1 forward: ≥ 10× faster than torch", "tanh", "S1", "forward", "speedup:torch", 10.0),
    ("S1 forward: ≥ 5× faster than the NumPy reference", "tanh", "S1", "forward", "speedup:numpy", 5.0),
    ("S1 forward: faster than every peer", "tanh", "S1", "forward", "best_peer", 1.0),
    ("S2 forward: faster than every peer", "tanh", "S2", "forward", "best_peer", 1.0),
    ("S2 forward+backward: ≥ 2× faster than torch", "tanh", "S2", "train", "speedup:torch", 2.0),
    ("S2 forward+backward: ≥ 55% of the GEMM peak", "tanh", "S2", "train", "percent_of_peak", 55.0),
    ("S3 forward: ≥ 75% of the GEMM peak", "tanh", "S3", "forward", "percent_of_peak", 75.0),
    ("S3 forward: faster than every peer", "tanh", "S3", "forward", "best_peer", 1.0),
    ("S3 forward+backward: ≥ 60% of the GEMM peak", "tanh", "S3", "train", "percent_of_peak", 60.0),
    ("S2 forward: N threads vs 1 thread ≥ 1.7×", "tanh", "S2", "forward", "scaling", 1.7),
    ("S2 forward+backward: N threads vs 1 thread ≥ 1.7×", "tanh", "S2", "train", "scaling", 1.7),
    ("S3 forward: N threads vs 1 thread ≥ 1.7×", "tanh", "S3", "forward", "scaling", 1.7),
    ("S3 forward+backward: N threads vs 1 thread ≥ 1.7×", "tanh", "S3", "train", "scaling", 1.7),
    # the gated cells (issue 5)
    ("LSTM S1 forward: ≥ 10× faster than torch", "lstm", "S1", "forward", "speedup:torch", 10.0),
    ("GRU S1 forward: ≥ 10× faster than torch", "gru", "S1", "forward", "speedup:torch", 10.0),
    ("LSTM S2 forward: ≥ 1.0× torch", "lstm", "S2", "forward", "speedup:torch", 1.0),
    ("LSTM S2 forward+backward: ≥ 1.5× faster than torch", "lstm", "S2", "train", "speedup:torch", 1.5),
    ("GRU S2 forward+backward: ≥ 2.5× faster than torch", "gru", "S2", "train", "speedup:torch", 2.5),
    # kernels v2 (issue 11)
    ("LSTM S1 forward: ≥ 1.5× faster than ONNX Runtime", "lstm", "S1", "forward", "speedup:onnx", 1.5),
    ("GRU S1 forward: ≥ 1.5× faster than ONNX Runtime", "gru", "S1", "forward", "speedup:onnx", 1.5),
)
GEMM_GOAL = 0.8  # rnnkit's GEMM ≥ 80% of numpy's matmul on every all-timestep shape


# --------------------------------------------------------------------------------------------------
# The machine


def machine() -> dict:
    """CPU model, cores, caches and ISA flags (from lscpu where it exists), OS, Python, NumPy's BLAS."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    if hasattr(os, "sched_getaffinity"):
        info["cpus_available"] = len(os.sched_getaffinity(0))
    if shutil.which("lscpu"):
        try:
            text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"}).stdout
        except (OSError, subprocess.SubprocessError):
            text = ""
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        for key in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "L1d cache", "L2 cache",
                    "L3 cache", "Hypervisor vendor"):
            if key in fields:
                info[key.lower().replace("(s)", "s").replace(" ", "_")] = fields[key]
        flags = fields.get("Flags", "").split()
        info["simd_flags"] = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "amx_tile") if f in flags]
    info["numpy"] = np.__version__
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no dict mode
        pass
    return info


# --------------------------------------------------------------------------------------------------
# Derived numbers


def find(records: list, case: str, cell: str, mode: str, impl: str, shape: str | None = None) -> dict | None:
    """The record of one implementation on one case, cell and pass (and shape: the infer case has several)."""
    for r in records:
        if (r["case"], r["cell"], r["mode"], r["impl"]) == (case, cell, mode, impl) and shape in (None, r.get("shape")):
            return r
    return None


def kind_of(record: dict) -> str:
    return record.get("kind", "standard")


def add_ratios(records: list, peak_gflops: float | None) -> None:
    """GFLOP/s, % of the GEMM peak, and how many times faster rnnkit is than each row (its time / rnnkit's)."""
    for r in records:
        if r["ms"] is None:
            continue
        r["gflops"] = r["flops"] / (r["ms"] * 1e-3) / 1e9
        r["percent_of_peak"] = 100 * r["gflops"] / peak_gflops if peak_gflops else None
        base = find(records, r["case"], r["cell"], r["mode"], "rnnkit", r.get("shape"))
        r["rnnkit_speedup"] = r["ms"] / base["ms"] if base and base["ms"] else None


def evaluate_goals(records: list, gemm: list) -> list:
    """The issue's goals, judged only on the full-size cases (not --quick's or --shape's): each with the
    measured value and met True/False, or None where the run did not measure it."""
    records = [r for r in records if r["full_size"]]
    v2_records = [r for r in records if kind_of(r) != "standard"]
    records = [r for r in records if kind_of(r) == "standard"]
    goals = []
    for text, cell, case, mode, metric, target in GOALS:
        value = None
        rnnkit = find(records, case, cell, mode, "rnnkit")
        if rnnkit and rnnkit["ms"]:
            if metric == "percent_of_peak":
                value = rnnkit["percent_of_peak"]
            elif metric == "scaling":
                single = find(records, case, cell, mode, "rnnkit-1t")
                value = single["rnnkit_speedup"] if single and single["ms"] else None
            elif metric == "best_peer":
                peers = [find(records, case, cell, mode, p) for p in ("torch", "keras", "onnx")]
                times = [p["ms"] for p in peers if p and p["ms"]]
                value = min(times) / rnnkit["ms"] if times else None
            else:
                peer = find(records, case, cell, mode, metric.split(":")[1])
                value = peer["rnnkit_speedup"] if peer and peer["ms"] else None
        unit = "%" if metric == "percent_of_peak" else "×"
        goals.append({"goal": text, "value": value, "target": target, "unit": unit,
                      "met": None if value is None else value >= target})
    # Issue 4's GEMM goal is over the vanilla cell's products; the gated cells' (wider) ones are
    # judged as well, separately.
    full = [g for g in gemm if g.get("ratio") is not None and g["full_size"]]
    for text, chosen in (("GEMM: ≥ 80% of numpy's matmul on every vanilla-cell product shape (worst shape)",
                          [g for g in full if g.get("cell", "tanh") in ("tanh", "relu")]),
                         ("GEMM: ≥ 80% of numpy's matmul on every LSTM/GRU product shape (worst shape)",
                          [g for g in full if g.get("cell", "tanh") in ("lstm", "gru")])):
        value = min(g["ratio"] for g in chosen) if chosen else None
        goals.append({"goal": text, "value": None if value is None else 100 * value, "target": 100 * GEMM_GOAL,
                      "unit": "%", "met": None if value is None else value >= GEMM_GOAL})
    goals.append(_every_case_goal(records))
    return goals + evaluate_v2_goals(v2_records)


def _goal(text: str, value, target: float, unit: str = "×", at_most: bool = False, where: str | None = None) -> dict:
    met = None if value is None else (value <= target if at_most else value >= target)
    return {"goal": text, "value": value, "target": target, "unit": unit, "at_most": at_most, "met": met, "where": where}


def _every_case_goal(records: list) -> dict:
    """Issue 11: rnnkit still at least as fast as the best peer on every S1-S4 case, cell and pass run."""
    worst, where = None, None
    for r in records:
        if r["impl"] != "rnnkit" or not r["ms"] or r["case"] not in ("S1", "S2", "S3", "S4"):
            continue
        times = [p["ms"] for p in (find(records, r["case"], r["cell"], r["mode"], i) for i in ("torch", "keras", "onnx"))
                 if p and p["ms"]]
        if times and (worst is None or min(times) / r["ms"] < worst):
            worst, where = min(times) / r["ms"], f"{r['case']} {r['cell']} {MODE_LABELS[r['mode']]}"
    return _goal("S1-S4, every cell and pass run: ≥ 1.0× the best peer (worst case)", worst, 1.0, where=where)


# Issue 11's goals on its own cases (kernels_v2).  Ragged: ≥ this many times faster than torch packed.
RAGGED_VS_PACKED = {"tanh": 3.0, "gru": 3.0, "lstm": 2.0}
RAGGED_SLACK = 1.15       # with lengths ≤ 1.15 × (real / padded tokens) × without
CONTENTION_LIMIT = 2.0    # after a matmul ≤ 2 × quiet
PER_CALL_US = 14.6        # rnn_forward, T=1: half the old 29.3 µs
PLAN_STEP_US = 4.0
BIDIR_LIMIT = 1.3         # both directions ≤ 1.3 × one direction
INFER_VS_ORT = 1.2


def _ms_of(records, kind, cell, impl, shape=None):
    r = next((r for r in records if kind_of(r) == kind and r["cell"] == cell and r["impl"] == impl
              and shape in (None, r["shape"])), None)
    return r["ms"] if r and r["ms"] else None


def ragged_fraction(record: dict) -> float | None:
    extra = record.get("extra") or {}
    return extra["tokens_real"] / extra["tokens_padded"] if extra.get("tokens_padded") else None


def evaluate_v2_goals(records: list) -> list:
    """The goals of issue 11's cases, from their (full-size) records; value None where not measured."""
    goals = []
    for cell in ("tanh", "gru", "lstm"):
        rows = [r for r in records if kind_of(r) == "ragged" and r["cell"] == cell]
        lengths, padded, packed = (_ms_of(rows, "ragged", cell, i) for i in ("rnnkit", "rnnkit-padded", "torch-packed"))
        fraction = ragged_fraction(rows[0]) if rows else None
        goals.append(_goal(f"Ragged {cell} fwd+bwd: with lengths ≤ {RAGGED_SLACK}× (real / padded tokens) × without "
                           "(measured: with / (real / padded × without))",
                           lengths / (fraction * padded) if lengths and padded and fraction else None,
                           RAGGED_SLACK, at_most=True))
        goals.append(_goal(f"Ragged {cell} fwd+bwd: ≥ {RAGGED_VS_PACKED[cell]:g}× faster than torch packed",
                           packed / lengths if lengths and packed else None, RAGGED_VS_PACKED[cell]))
    for cell in ("tanh", "lstm", "gru"):
        quiet, after = (_ms_of(records, "contention", cell, i) for i in ("rnnkit", "rnnkit-after-matmul"))
        goals.append(_goal(f"Contention {cell} S1 forward: after a 512² NumPy matmul ≤ {CONTENTION_LIMIT:g}× quiet",
                           after / quiet if quiet and after else None, CONTENTION_LIMIT, at_most=True))
    functional, plan = (_ms_of(records, "per-call", "tanh", i) for i in ("rnnkit", "rnnkit-plan"))
    goals.append(_goal(f"Per call: T=1 B=1 H=128 tanh rnn_forward ≤ {PER_CALL_US} µs",
                       1e3 * functional if functional else None, PER_CALL_US, "µs", at_most=True))
    goals.append(_goal(f"Per call: the same step through a Plan ≤ {PLAN_STEP_US:g} µs (timed from Python: its overhead "
                       "included)", 1e3 * plan if plan else None, PLAN_STEP_US, "µs", at_most=True))
    for cell in ("tanh", "lstm", "gru"):
        both, one = (_ms_of(records, "bidir", cell, i) for i in ("rnnkit", "rnnkit-1dir"))
        goals.append(_goal(f"Bidirectional {cell} T=50 B=1 H=128 forward: ≤ {BIDIR_LIMIT}× one direction",
                           both / one if both and one else None, BIDIR_LIMIT, at_most=True))
    for cell in ("tanh", "lstm", "gru"):
        worst, where, shapes = None, None, 0
        for r in records:
            if kind_of(r) == "infer" and r["cell"] == cell and r["impl"] == "onnx" and r["ms"] and r["rnnkit_speedup"]:
                shapes += 1
                if worst is None or r["rnnkit_speedup"] < worst:
                    worst, where = r["rnnkit_speedup"], r["shape"]
        where = f"{where}; worst of {shapes}" if where else None
        goals.append(_goal(f"Small-batch inference {cell} (Plan): ≥ {INFER_VS_ORT}× ONNX Runtime on every shape "
                           "(worst shape)", worst, INFER_VS_ORT, where=where))
    return goals


# --------------------------------------------------------------------------------------------------
# Tables (the same rows print as aligned text and as Markdown)


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def _cell_text(record: dict | None) -> str:
    if record is None:
        return ""
    if record["ms"] is None:
        return {"unavailable": "n/a", "rejected": "WRONG", "failed": "failed", "skipped": "—"}.get(record["status"], record["status"])
    if record["impl"] == "rnnkit" or record["rnnkit_speedup"] is None:
        return _ms(record["ms"])
    return f"{_ms(record['ms'])} ({record['rnnkit_speedup']:.1f}×)"


def result_table(records: list) -> tuple:
    """(header, rows) of the results: one row per case, cell and pass; rnnkit first, then each peer's
    ms with, in brackets, how many times faster rnnkit is (for "rnnkit 1T": the thread scaling)."""
    records = [r for r in records if kind_of(r) == "standard"]
    impls = [i for i in ORDER if i != "rnnkit" and any(r["impl"] == i for r in records)]
    header = ["case", "shape", "cell", "pass", "rnnkit ms", "GFLOP/s", "% peak"] + [f"{IMPLEMENTATIONS[i].label} ms" for i in impls]
    rows = []
    groups = []
    for r in records:
        key = (r["case"], r["cell"], r["mode"])
        if key not in groups:
            groups.append(key)
    for case, cell, mode in groups:
        first = next(r for r in records if (r["case"], r["cell"], r["mode"]) == (case, cell, mode))
        rnnkit = find(records, case, cell, mode, "rnnkit")
        timed = rnnkit is not None and rnnkit["ms"] is not None
        row = [case, first["shape"], cell, MODE_LABELS[mode],
               _cell_text(rnnkit) if rnnkit else "",
               f"{rnnkit['gflops']:.1f}" if timed else "",
               f"{rnnkit['percent_of_peak']:.0f}%" if timed and rnnkit.get("percent_of_peak") is not None else ""]
        row += [_cell_text(find(records, case, cell, mode, i)) for i in impls]
        rows.append(row)
    return header, rows


# --------------------------------------------------------------------------------------------------
# The kernels-v2 cases: one table per kind


def _not_timed(record: dict | None) -> str | None:
    if record is None:
        return ""
    if record["ms"] is None:
        return {"unavailable": "n/a", "rejected": "WRONG", "failed": "failed", "skipped": "—"}.get(record["status"], record["status"])
    return None


def _time(record: dict | None, bracket: bool = False, scale: float = 1.0, spread: bool = False) -> str:
    """ms (scale 1e3: µs); with bracket, how many times faster the case's rnnkit variant is; with spread,
    the fastest round and the spread."""
    missing = _not_timed(record)
    if missing is not None:
        return missing
    text = _ms(scale * record["ms"])
    if spread:
        text += f" (min {_ms(scale * record['ms_min'])}, ±{100 * record['spread']:.0f}%)"
    if bracket and record["impl"] != "rnnkit" and record.get("rnnkit_speedup"):
        text += f" ({record['rnnkit_speedup']:.1f}×)"
    return text


def _ratio(numerator: dict | None, denominator: dict | None, times: float = 1.0) -> str:
    if not numerator or not denominator or not numerator["ms"] or not denominator["ms"]:
        return ""
    return f"{numerator['ms'] / (times * denominator['ms']):.2f}×"


def _groups(records: list, kind: str) -> list:
    """(shape, cell, mode, {impl: record}) of one kind, in the order run."""
    groups = {}
    for r in records:
        if kind_of(r) == kind:
            groups.setdefault((r["shape"], r["cell"], r["mode"]), {})[r["impl"]] = r
    return [(*key, by_impl) for key, by_impl in groups.items()]


def _present(records: list, kind: str, impl: str) -> bool:
    return any(kind_of(r) == kind and r["impl"] == impl for r in records)


def v2_tables(result: dict) -> list:
    """(title, caption, header, rows) for each kernels-v2 kind that ran."""
    records = result["results"]
    tables = []
    groups = _groups(records, "ragged")
    if groups:
        header = ["shape", "cell", "pass", "real / padded tokens", "rnnkit lengths ms", "rnnkit padded ms",
                  "torch padded ms", "torch packed ms", "with / (real / padded × without)"]
        rows = []
        for shape, cell, mode, g in groups:
            r = g.get("rnnkit")
            extra = (r or next(iter(g.values()))).get("extra") or {}
            fraction = ragged_fraction({"extra": extra})
            rows.append([shape, cell, MODE_LABELS[mode],
                         f"{extra.get('tokens_real')}/{extra.get('tokens_padded')} = {fraction:.2f}" if fraction else "",
                         _time(r), _time(g.get("rnnkit-padded")), _time(g.get("torch-padded"), True),
                         _time(g.get("torch-packed"), True),
                         _ratio(r, g.get("rnnkit-padded"), fraction) if fraction else ""])
        tables.append(("Ragged batch", f"lengths uniform in [T/4, T] from a fixed seed; x zero at the padding; "
                       f"goal: with / (real / padded × without) ≤ {RAGGED_SLACK}, ≥ 3× torch packed (LSTM 2×); "
                       "brackets: how many times faster rnnkit with lengths is", header, rows))
    groups = _groups(records, "contention")
    if groups:
        blas = next((r.get("extra", {}).get("blas_threads") for r in records if kind_of(r) == "contention"), None)
        header = ["shape", "cell", "quiet ms (min, spread)", "after matmul ms (min, spread)", "after / quiet"]
        rows = [[shape, cell, _time(g.get("rnnkit"), spread=True), _time(g.get("rnnkit-after-matmul"), spread=True),
                 _ratio(g.get("rnnkit-after-matmul"), g.get("rnnkit"))] for shape, cell, _, g in groups]
        tables.append(("Contention", f"S1's forward, each call timed right after a NumPy 512×512 float32 matmul "
                       f"(OpenBLAS on its default {blas or '?'} threads) and with nothing before it; medians; "
                       f"goal: after / quiet ≤ {CONTENTION_LIMIT:g}", header, rows))
    groups = _groups(records, "per-call")
    if groups:
        impls = [i for i in ("rnnkit", "rnnkit-inference", "rnnkit-plan", "numpy-step", "torch-cell")
                 if _present(records, "per-call", i)]
        header = ["shape", "cell"] + [f"{_label(records, 'per-call', i)} µs" for i in impls]
        rows = [[shape, cell] + [_time(g.get(i), scale=1e3) for i in impls] for shape, cell, _, g in groups]
        tables.append(("Per call", f"one step; rnn_forward with its defaults (training=True), then training=False; "
                       f"Plan.forward timed from Python (its overhead included); goals: rnn_forward ≤ {PER_CALL_US} µs, "
                       f"Plan ≤ {PLAN_STEP_US:g} µs", header, rows))
    groups = _groups(records, "bidir")
    if groups:
        header = ["shape", "cell", "bidirectional ms", "one direction ms", "bidir / one", "torch bidir ms"]
        rows = [[shape, cell, _time(g.get("rnnkit")), _time(g.get("rnnkit-1dir")),
                 _ratio(g.get("rnnkit"), g.get("rnnkit-1dir")), _time(g.get("torch-bidir"), True)]
                for shape, cell, _, g in groups]
        tables.append(("Bidirectional", f"rnnkit.RNN layer forward, training=False; goal: bidir / one ≤ {BIDIR_LIMIT}; "
                       "brackets: how many times faster rnnkit's bidirectional layer is", header, rows))
    groups = _groups(records, "infer")
    if groups:
        bw = result.get("bandwidth") or {}
        header = ["shape", "cell", "rnnkit Plan ms", "ONNX RT ms", "W_hh MiB", "rnnkit W_hh GB/s", "ORT W_hh GB/s"]
        rows = []
        for shape, cell, _, g in groups:
            extra = next(iter(g.values())).get("extra") or {}
            gbps = [f"{g[i]['w_hh_gbps']:.1f}" if g.get(i) and g[i].get("w_hh_gbps") else "" for i in ("rnnkit", "onnx")]
            rows.append([shape, cell, _time(g.get("rnnkit")), _time(g.get("onnx"), True),
                         f"{extra['w_hh_bytes'] / 2**20:.2f}" if extra.get("w_hh_bytes") else "", *gbps])
        machine_bw = (f"machine (measured, NumPy copy on one thread, read + write): memory {bw['memory_gbps']:.1f} GB/s "
                      f"({bw['memory_bytes'] >> 20} MiB), L3 {bw['l3_gbps']:.1f} GB/s ({bw['l3_bytes'] >> 20} MiB)"
                      if bw.get("memory_gbps") else "machine bandwidth not measured")
        tables.append(("Small-batch inference", f"Plan.forward(training=False) vs ONNX Runtime; brackets: how many "
                       f"times faster rnnkit is (goal ≥ {INFER_VS_ORT}); W_hh GB/s at B=1: bytes of W_hh × T / time; "
                       + machine_bw, header, rows))
    return tables


def _label(records: list, kind: str, impl: str) -> str:
    return next(r["label"] for r in records if kind_of(r) == kind and r["impl"] == impl)


def notes_list(records: list) -> list:
    """One line per implementation and cell that was not timed, and why (deduplicated)."""
    notes = []
    for r in records:
        if r["ms"] is None and r["status"] != "skipped":
            note = f"{IMPLEMENTATIONS[r['impl']].label}, {r['cell']}: {r['status']}: {r['reason']}"
            if kind_of(r) != "standard":
                note = f"{r['label']}, {r['case']} {r['cell']}: {r['status']}: {r['reason']}"
            if r["status"] == "rejected":
                note = f"{IMPLEMENTATIONS[r['impl']].label}, {r['case']} {r['cell']} {MODE_LABELS[r['mode']]}: {r['reason']}"
            if note not in notes:
                notes.append(note)
    return notes


def gemm_table(gemm: list) -> tuple:
    header = ["product", "M×K×N", "rnnkit ms", "rnnkit GFLOP/s", "numpy ms", "numpy GFLOP/s", "rnnkit / numpy"]
    rows = []
    for g in gemm:
        if g.get("rnnkit_ms") is None:
            continue
        rows.append([g["what"], "×".join(map(str, g["shape"])), _ms(g["rnnkit_ms"]), f"{g['rnnkit_gflops']:.1f}",
                     _ms(g["numpy_ms"]), f"{g['numpy_gflops']:.1f}", f"{100 * g['ratio']:.0f}%"])
    return header, rows


def goal_table(goals: list) -> tuple:
    header = ["goal", "measured", "met"]
    rows = []
    for g in goals:
        if g["value"] is None:
            rows.append([g["goal"], "not measured", "—"])
            continue
        value = {"%": f"{g['value']:.0f}%", "µs": f"{g['value']:.1f} µs"}.get(g["unit"], f"{g['value']:.2f}×")
        if g.get("where"):
            value += f" ({g['where']})"
        rows.append([g["goal"], value, "yes" if g["met"] else "NO"])
    return header, rows


def text_table(header: list, rows: list, left: int = 1) -> str:
    """Aligned columns: the first ``left`` ones to the left (labels), the others to the right (numbers)."""
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(x).ljust(w) if j < left else str(x).rjust(w) for j, (x, w) in enumerate(zip(line, widths)))
             for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def print_summary(result: dict) -> None:
    """The result, goal and GEMM tables as aligned text."""
    print()
    if any(kind_of(r) == "standard" for r in result["results"]):
        print(text_table(*result_table(result["results"]), left=4))
        print("\n(ms, median; in brackets how many times faster rnnkit is; for rnnkit 1T: the thread scaling)")
    for title, caption, header, rows in v2_tables(result):
        print(f"\n{title} ({caption}):")
        print(text_table(header, rows, left=3 if header[2] == "pass" else 2))
    if result["gemm"]:
        print()
        print(text_table(*gemm_table(result["gemm"]), left=2))
    goals = result["goals"]
    measured = [g for g in goals if g["value"] is not None]
    if measured:
        print()
        print(text_table(*goal_table(measured)))
    if len(measured) < len(goals):
        print(f"({len(goals) - len(measured)} of the {len(goals)} goals need cases or implementations this run left out)")


# --------------------------------------------------------------------------------------------------
# Files

MARK_BEGIN = "<!-- rnnkit-bench:begin -->"
MARK_END = "<!-- rnnkit-bench:end -->"


def markdown_report(result: dict) -> str:
    m = result["machine"]
    cpu = m.get("model_name", platform.processor() or "unknown CPU")
    settings = result["settings"]
    peers = "; ".join(peer["version"] or f"{name} not run: {peer['missing']}" for name, peer in result["peers"].items())
    lines = [
        MARK_BEGIN,
        f"Command: `{result['measurement']}` — {result['date']}, {settings['threads']} threads, float32, "
        f"medians of {settings['rounds']} alternating rounds (pause {settings['pause']} s).",
        "",
        f"Machine: {cpu}; {m.get('cpus')} CPUs ({m.get('cores_per_socket', '?')} cores per socket, "
        f"{m.get('threads_per_core', '?')} thread per core); L2 {m.get('l2_cache', '?')}, L3 {m.get('l3_cache', '?')}; "
        f"{' '.join(m.get('simd_flags', []))}; {m['platform']}; Python {m['python']}, NumPy {m['numpy']} "
        f"({m.get('numpy_blas', 'BLAS unknown')}).",
        "",
        f"rnnkit {result['rnnkit']['version']}, SIMD path {result['rnnkit']['simd_isa']}; peers: {peers}; "
        f"NumPy's BLAS threads: {settings['numpy_blas_threads']}.",
        "",
    ]
    lines += [f"- {IMPLEMENTATIONS[name].label}: {IMPLEMENTATIONS[name].about}" for name in settings["implementations"]]
    lines += [""]
    if result.get("gemm_peak"):
        p = result["gemm_peak"]
        others = p["measurements_gflops"]
        lines += [f"GEMM peak: NumPy float32 matmul {p['n']}×{p['n']}: **{p['gflops']:.0f} GFLOP/s** ({_ms(p['ms'])} ms), "
                  f"the best of {len(others)} measurements (at the start and alongside each case: "
                  f"{min(others):.0f}–{max(others):.0f} GFLOP/s); the \"% peak\" column is relative to it.", ""]
    if any(kind_of(r) == "standard" for r in result["results"]):
        lines += ["Times in ms (median); in brackets how many times faster rnnkit is "
                  "(for \"rnnkit 1T\", rnnkit on 1 thread: the thread scaling). "
                  "GFLOP/s counts 2·T·B·G·H·(I+H) per forward pass and three times that for forward+backward. "
                  "n/a: not available in this build or not installed; WRONG: failed validation, not timed.", "",
                  markdown_table(*result_table(result["results"])), ""]
    v2 = v2_tables(result)
    if v2:
        lines += ["Kernels-v2 cases (issue 11); each implementation validated against the NumPy reference with the "
                  "same lengths / reverse / training first. Implementations:", ""]
        seen = []
        for r in result["results"]:
            if kind_of(r) != "standard" and (r["kind"], r["impl"]) not in seen:
                seen.append((r["kind"], r["impl"]))
        from .kernels_v2 import BASE_ABOUT  # (kernels_v2 imports this package's adapters, not report)
        lines += [f"- {kind}, {_label(result['results'], kind, impl)}: "
                  f"{BASE_ABOUT[kind] if impl == 'rnnkit' else IMPLEMENTATIONS[impl].about}" for kind, impl in seen]
        lines += [""]
        for title, caption, header, rows in v2:
            lines += [f"**{title}** — {caption}.", "", markdown_table(header, rows), ""]
    notes = notes_list(result["results"])
    if notes:
        lines += ["Not timed:", ""] + [f"- {note}" for note in notes] + [""]
    if result.get("gemm"):
        lines += ["All-timestep products: rnnkit's GEMM (`rnnkit._core.matmul`) against NumPy's matmul.", "",
                  markdown_table(*gemm_table(result["gemm"])), ""]
    lines += ["Goals (issue 4: the vanilla tanh cell; issue 5: LSTM and GRU; the GEMM goals over the products above; "
              "issue 11: kernels v2):", "", markdown_table(*goal_table(result["goals"])), "", MARK_END]
    return "\n".join(lines)


def write_markdown(path: str, text: str) -> None:
    """Replace the marked region of an existing file (BENCHMARKS.md), or write the report alone."""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = f.read()
        if MARK_BEGIN in old and MARK_END in old:
            head, rest = old.split(MARK_BEGIN, 1)
            tail = rest.split(MARK_END, 1)[1]
            text = head + text + tail
    with open(path, "w", encoding="utf-8") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def write_json(path: str, result: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, default=float)
        f.write("\n")


def write_plot(path: str, result: dict) -> None:
    """Grouped bars of GFLOP/s per case, cell and pass, one colour per implementation; the GEMM peak dashed.
    With kernels-v2 cases, a second panel: each variant's time relative to its case's rnnkit variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in result["results"] if r["ms"] is not None and kind_of(r) == "standard"]
    v2 = [r for r in result["results"] if r["ms"] is not None and kind_of(r) != "standard"]
    groups = []
    for r in records:
        key = (r["case"], r["cell"], r["mode"])
        if key not in groups:
            groups.append(key)
    v2_groups = []
    for r in v2:
        key = (r["case"], r["shape"], r["cell"], r["mode"])
        if key not in v2_groups:
            v2_groups.append(key)
    panels = [p for p in ("standard", "v2") if (groups if p == "standard" else v2_groups)] or ["standard"]
    width_in = max(6.0, 1.3 * len(groups) + 2, 0.35 * len(v2_groups) + 3)
    fig, axes = plt.subplots(len(panels), 1, figsize=(width_in, 4.5 * len(panels) + (1.5 if v2_groups else 0)),
                             squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        if panel == "standard":
            _plot_standard(ax, result, records, groups)
        else:
            _plot_v2(ax, v2, v2_groups)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_standard(ax, result, records, groups) -> None:
    impls = [i for i in ORDER if any(r["impl"] == i for r in records)]
    width = 0.8 / max(len(impls), 1)
    for k, impl in enumerate(impls):
        heights = []
        for case, cell, mode in groups:
            r = find(records, case, cell, mode, impl)
            heights.append(r["gflops"] if r else 0.0)
        positions = [g + (k - (len(impls) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(positions, heights, width, label=IMPLEMENTATIONS[impl].label)
    if result.get("gemm_peak"):
        ax.axhline(result["gemm_peak"]["gflops"], color="black", linestyle="--", linewidth=1,
                   label=f"GEMM peak ({result['gemm_peak']['gflops']:.0f})")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{c} {cell}\n{'fwd' if m == 'forward' else 'fwd+bwd'}" for c, cell, m in groups])
    ax.set_ylabel("GFLOP/s (higher is better)")
    ax.set_title(f"rnnkit bench, float32, {result['settings']['threads']} threads — {result['machine'].get('model_name', '')}")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: bars reach the top


def _plot_v2(ax, records, groups) -> None:
    """Kernels-v2 cases: each variant's median time over its case's rnnkit variant's (log scale; 1 = rnnkit)."""
    import matplotlib.pyplot as plt

    impls = []
    for r in records:
        if r["impl"] not in impls:
            impls.append(r["impl"])
    colours = {impl: plt.get_cmap("tab20")(k % 20) for k, impl in enumerate(impls)}
    labelled = set()
    for g, (case, shape, cell, mode) in enumerate(groups):
        bars = [(impl, r) for impl in impls
                if (r := find(records, case, cell, mode, impl, shape)) is not None and r.get("rnnkit_speedup")]
        width = 0.8 / max(len(bars), 1)
        for k, (impl, r) in enumerate(bars):
            label = None
            if impl not in labelled:
                labelled.add(impl)
                label = "rnnkit (each case's own)" if impl == "rnnkit" else IMPLEMENTATIONS[impl].label
            ax.bar(g + (k - (len(bars) - 1) / 2) * width, r["rnnkit_speedup"], width, color=colours[impl], label=label)
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)))
    def short(case, shape, cell):  # the infer case's shapes differ; the others' are in the tables
        if case != "infer":
            return f"{case} {cell}"
        sizes = dict(part.split("=") for part in shape.split())
        return f"infer {cell} B={sizes['B']} H={sizes['H']} T={sizes['T']}"

    ax.set_xticklabels([short(case, shape, cell) for case, shape, cell, _ in groups], fontsize="x-small", rotation=90)
    ax.set_ylabel("time / rnnkit's (above 1: rnnkit faster)")
    ax.set_title("Kernels-v2 cases (issue 11)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
