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


def find(records: list, case: str, cell: str, mode: str, impl: str) -> dict | None:
    """The record of one implementation on one case, cell and pass."""
    for r in records:
        if (r["case"], r["cell"], r["mode"], r["impl"]) == (case, cell, mode, impl):
            return r
    return None


def add_ratios(records: list, peak_gflops: float | None) -> None:
    """GFLOP/s, % of the GEMM peak, and how many times faster rnnkit is than each row (its time / rnnkit's)."""
    for r in records:
        if r["ms"] is None:
            continue
        r["gflops"] = r["flops"] / (r["ms"] * 1e-3) / 1e9
        r["percent_of_peak"] = 100 * r["gflops"] / peak_gflops if peak_gflops else None
        base = find(records, r["case"], r["cell"], r["mode"], "rnnkit")
        r["rnnkit_speedup"] = r["ms"] / base["ms"] if base and base["ms"] else None


def evaluate_goals(records: list, gemm: list) -> list:
    """The issue's goals, judged only on the full-size cases (not --quick's or --shape's): each with the
    measured value and met True/False, or None where the run did not measure it."""
    records = [r for r in records if r["full_size"]]
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


def notes_list(records: list) -> list:
    """One line per implementation and cell that was not timed, and why (deduplicated)."""
    notes = []
    for r in records:
        if r["ms"] is None and r["status"] != "skipped":
            note = f"{IMPLEMENTATIONS[r['impl']].label}, {r['cell']}: {r['status']}: {r['reason']}"
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
        value = f"{g['value']:.0f}%" if g["unit"] == "%" else f"{g['value']:.2f}×"
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
    print(text_table(*result_table(result["results"]), left=4))
    print("\n(ms, median; in brackets how many times faster rnnkit is; for rnnkit 1T: the thread scaling)")
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
    lines += ["Times in ms (median); in brackets how many times faster rnnkit is "
              "(for \"rnnkit 1T\", rnnkit on 1 thread: the thread scaling). "
              "GFLOP/s counts 2·T·B·G·H·(I+H) per forward pass and three times that for forward+backward. "
              "n/a: not available in this build or not installed; WRONG: failed validation, not timed.", ""]
    lines += [markdown_table(*result_table(result["results"])), ""]
    notes = notes_list(result["results"])
    if notes:
        lines += ["Not timed:", ""] + [f"- {note}" for note in notes] + [""]
    if result.get("gemm"):
        lines += ["All-timestep products: rnnkit's GEMM (`rnnkit._core.matmul`) against NumPy's matmul.", "",
                  markdown_table(*gemm_table(result["gemm"])), ""]
    lines += ["Goals (issue 4: the vanilla tanh cell; issue 5: LSTM and GRU; the GEMM goals over the products above):", "", markdown_table(*goal_table(result["goals"])), "", MARK_END]
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
    """Grouped bars of GFLOP/s per case, cell and pass, one colour per implementation; the GEMM peak dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in result["results"] if r["ms"] is not None]
    groups = []
    for r in records:
        key = (r["case"], r["cell"], r["mode"])
        if key not in groups:
            groups.append(key)
    impls = [i for i in ORDER if any(r["impl"] == i for r in records)]
    width = 0.8 / max(len(impls), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(groups) + 2), 4.5))
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
