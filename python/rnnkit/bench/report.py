"""What the benchmark prints and writes: the tables (the goals' among them; ``goals`` judges them), the
machine, JSON, Markdown, a PNG."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess

import numpy as np

from .adapters import IMPLEMENTATIONS, ORDER
from .goals import (  # noqa: F401  (the goals' names are part of report's interface: cli and the tests use them)
    BIDIR_LIMIT,
    BUSY_CORES,
    CONTENTION_LIMIT,
    GEMM_GOAL,
    GOALS,
    INFER_VS_ORT,
    NOISY_SPREAD,
    PER_CALL_US,
    PLAN_STEP_US,
    RAGGED_SLACK,
    RAGGED_VS_PACKED,
    add_ratios,
    evaluate_goals,
    evaluate_v2_goals,
    find,
    kind_of,
    load_of,
    ragged_fraction,
    range_text,
    relative_spread,
    round_ratios,
    verdict,
)
from .problems import MODE_LABELS

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
    spread = range_text(record.get("rnnkit_speedup_rounds"))
    return f"{_ms(record['ms'])} ({record['rnnkit_speedup']:.1f}×{', ' + spread if spread else ''})"


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
        spread = range_text(record.get("rnnkit_speedup_rounds"))
        text += f" ({record['rnnkit_speedup']:.1f}×{', ' + spread if spread else ''})"
    return text


def _ratio(numerator: dict | None, denominator: dict | None, times: float = 1.0) -> str:
    """numerator's time / (times × denominator's), with the range of the per-round ratios."""
    if not numerator or not denominator or not numerator["ms"] or not denominator["ms"]:
        return ""
    rounds = round_ratios(numerator, denominator)
    spread = range_text([r / times for r in rounds]) if rounds else ""
    return f"{numerator['ms'] / (times * denominator['ms']):.2f}×" + (f" ({spread})" if spread else "")


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
                     _ms(g["numpy_ms"]), f"{g['numpy_gflops']:.1f}",
                     f"{100 * g['ratio']:.0f}%" + (f" ({range_text(g['ratio_rounds'], 100, '%')})"
                                                   if g.get("ratio_rounds") else "")])
    return header, rows


def goal_table(goals: list) -> tuple:
    """One row per goal: the measured value (the median), the range of its per-round values, and the
    verdict — yes, NO, or noisy when that range is wider than NOISY_SPREAD of the value."""
    header = ["goal", "measured", "rounds (min–max)", "met"]
    rows = []
    for g in goals:
        if g["value"] is None:
            rows.append([g["goal"], "not measured", "", "—"])
            continue
        unit = g["unit"]
        value = {"%": f"{g['value']:.0f}%", "µs": f"{g['value']:.1f} µs"}.get(unit, f"{g['value']:.2f}×")
        if g.get("where"):
            value += f" ({g['where']})"
        spread = range_text(g.get("rounds"), unit=" µs" if unit == "µs" else unit)
        judged = g.get("verdict") or ("yes" if g["met"] else "NO")
        if judged == "noisy" and g.get("why"):
            judged += f" ({g['why']})"
        rows.append([g["goal"], value, spread, judged])
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
    noisy = [g for g in measured if g.get("verdict") == "noisy"]
    if noisy:
        print(f"{len(noisy)} goal(s) read noisy: their per-round values spread over more than {NOISY_SPREAD:.0%} of "
              f"the median, or other processes kept more than {BUSY_CORES} cores busy while they were measured, so "
              f"this run cannot tell whether they are met; run again on a quiet machine")
    loads = [r["other_load"] for r in result["results"] if r.get("other_load") is not None]
    if loads:
        print(f"other processes kept {min(loads):.2f}-{max(loads):.2f} cores busy during the measurements")


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
