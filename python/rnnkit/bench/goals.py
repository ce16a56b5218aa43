"""The speed goals of the issues and how a run is judged against them: the ratios (with their per-round
values, which give each ratio its spread), and a verdict — yes, NO, or "noisy" when the spread says the
run cannot tell (``NOISY_SPREAD``)."""

from __future__ import annotations

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

# A goal is judged on the median, but only when the measurement means something: its per-round values
# (each round's ratio of two implementations timed side by side, or each round's time) must lie within
# NOISY_SPREAD × the median of each other, (max - min) / median ≤ NOISY_SPREAD.  Wider, and the goal
# reads "noisy" instead of yes or NO: another process took the cores for part of the run.  On a quiet
# 2-core machine the spreads of 5-7 rounds are 2-30%; with a busy neighbour 50% to several times.
NOISY_SPREAD = 0.5
# ... and only when other processes left the cores alone: while one of them keeps more than BUSY_CORES
# cores busy (measured from /proc/stat during each alternation), a neighbour can slow one implementation
# far more than another (torch's threads more than rnnkit's, which cannot be stalled) and shift a ratio
# without widening its range — the goal reads "noisy" then too.
BUSY_CORES = 0.25


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


def round_ratios(numerator: dict | None, denominator: dict | None) -> list | None:
    """numerator's time / denominator's in each round, for two records timed in the same alternation
    (round r of each was measured within the same few seconds, so a slow spell of the machine moves
    both); None when either has no rounds or their counts differ."""
    a = (numerator or {}).get("ms_rounds")
    b = (denominator or {}).get("ms_rounds")
    if not a or not b or len(a) != len(b):
        return None
    return [x / y for x, y in zip(a, b)]


def relative_spread(rounds: list | None, value: float | None) -> float | None:
    """(max - min) of the per-round values over |value| (the median they are judged on)."""
    if not rounds or len(rounds) < 2 or not value:
        return None
    return (max(rounds) - min(rounds)) / abs(value)


def verdict(value: float | None, target: float, at_most: bool = False, rounds: list | None = None,
            load: float | None = None) -> str | None:
    """"yes" or "NO" by the value against the target; "noisy" when the per-round values spread over
    more than NOISY_SPREAD of the value, or other processes kept more than BUSY_CORES cores busy while
    it was measured (``load``): the run cannot tell; None when nothing was measured."""
    if value is None:
        return None
    return "noisy" if _why_noisy(value, rounds, load) else "yes" if (value <= target if at_most else value >= target) else "NO"


def _why_noisy(value, rounds, load) -> str:
    spread = relative_spread(rounds, value)
    if spread is not None and spread > NOISY_SPREAD:
        return f"spread {spread:.0%}"
    if load is not None and load > BUSY_CORES:
        return f"others busy: {load:.2f} cores"
    return ""


def load_of(*records) -> float | None:
    """The most cores other processes kept busy while any of these records was measured."""
    loads = [r["other_load"] for r in records if r and r.get("other_load") is not None]
    return max(loads) if loads else None


def range_text(rounds: list | None, scale: float = 1.0, unit: str = "×") -> str:
    """The per-round range as "7.9–9.1×" ("" without rounds)."""
    if not rounds:
        return ""
    low, high = scale * min(rounds), scale * max(rounds)
    digits = 0 if unit == "%" else 1 if max(abs(low), abs(high)) >= 10 else 2
    return f"{low:.{digits}f}–{high:.{digits}f}{unit}"


def add_ratios(records: list, peak_gflops: float | None) -> None:
    """GFLOP/s, % of the GEMM peak, and how many times faster rnnkit is than each row (its time / rnnkit's),
    with that ratio in every round (``rnnkit_speedup_rounds``: its spread)."""
    for r in records:
        if r["ms"] is None:
            continue
        r["gflops"] = r["flops"] / (r["ms"] * 1e-3) / 1e9
        r["percent_of_peak"] = 100 * r["gflops"] / peak_gflops if peak_gflops else None
        base = find(records, r["case"], r["cell"], r["mode"], "rnnkit", r.get("shape"))
        r["rnnkit_speedup"] = r["ms"] / base["ms"] if base and base["ms"] else None
        r["rnnkit_speedup_rounds"] = round_ratios(r, base) if base and base["ms"] and r is not base else None


def evaluate_goals(records: list, gemm: list) -> list:
    """The issue's goals, judged only on the full-size cases (not --quick's or --shape's): each with the
    measured value and met True/False, or None where the run did not measure it."""
    records = [r for r in records if r["full_size"]]
    v2_records = [r for r in records if kind_of(r) != "standard"]
    records = [r for r in records if kind_of(r) == "standard"]
    goals = []
    for text, cell, case, mode, metric, target in GOALS:
        value = rounds = None
        rnnkit = find(records, case, cell, mode, "rnnkit")
        if rnnkit and rnnkit["ms"]:
            if metric == "percent_of_peak":
                value = rnnkit["percent_of_peak"]
                if value is not None and rnnkit.get("ms_rounds"):
                    rounds = [value * rnnkit["ms"] / ms for ms in rnnkit["ms_rounds"]]
            elif metric == "scaling":
                single = find(records, case, cell, mode, "rnnkit-1t")
                value = single["rnnkit_speedup"] if single and single["ms"] else None
                rounds = round_ratios(single, rnnkit)
            elif metric == "best_peer":
                peers = [p for p in (find(records, case, cell, mode, i) for i in ("torch", "keras", "onnx"))
                         if p and p["ms"]]
                value = min(p["ms"] for p in peers) / rnnkit["ms"] if peers else None
                each = [round_ratios(p, rnnkit) for p in peers]
                rounds = [min(r) for r in zip(*each)] if peers and all(each) else None
            else:
                peer = find(records, case, cell, mode, metric.split(":")[1])
                value = peer["rnnkit_speedup"] if peer and peer["ms"] else None
                rounds = round_ratios(peer, rnnkit)
        unit = "%" if metric == "percent_of_peak" else "×"
        involved = [rnnkit] + [r for r in records if r["case"] == case and r["cell"] == cell and r["mode"] == mode]
        goals.append(_goal(text, value, target, unit, rounds=rounds, load=load_of(*involved) if rnnkit else None))
    # Issue 4's GEMM goal is over the vanilla cell's products; the gated cells' (wider) ones are
    # judged as well, separately.
    full = [g for g in gemm if g.get("ratio") is not None and g["full_size"]]
    for text, chosen in (("GEMM: ≥ 80% of numpy's matmul on every vanilla-cell product shape (worst shape)",
                          [g for g in full if g.get("cell", "tanh") in ("tanh", "relu")]),
                         ("GEMM: ≥ 80% of numpy's matmul on every LSTM/GRU product shape (worst shape)",
                          [g for g in full if g.get("cell", "tanh") in ("lstm", "gru")])):
        worst = min(chosen, key=lambda g: g["ratio"]) if chosen else None
        rounds = [100 * r for r in worst["ratio_rounds"]] if worst and worst.get("ratio_rounds") else None
        where = f"{worst['what']}; worst of {len(chosen)}" if worst and "what" in worst else None
        goals.append(_goal(text, None if worst is None else 100 * worst["ratio"], 100 * GEMM_GOAL, "%",
                           rounds=rounds, where=where, load=load_of(*chosen)))
    goals.append(_every_case_goal(records))
    return goals + evaluate_v2_goals(v2_records)


def _goal(text: str, value, target: float, unit: str = "×", at_most: bool = False, where: str | None = None,
          rounds: list | None = None, load: float | None = None) -> dict:
    """A judged goal: ``verdict`` yes / NO / noisy (see NOISY_SPREAD and BUSY_CORES; ``why`` says which);
    ``met`` True or False, None when not measured or noisy; ``rounds`` the per-round values the spread
    comes from; ``other_load`` the cores other processes kept busy meanwhile."""
    judged = verdict(value, target, at_most, rounds, load)
    return {"goal": text, "value": value, "target": target, "unit": unit, "at_most": at_most,
            "met": None if judged in (None, "noisy") else judged == "yes", "verdict": judged, "where": where,
            "rounds": rounds, "low": min(rounds) if rounds else None, "high": max(rounds) if rounds else None,
            "relative_spread": relative_spread(rounds, value), "other_load": load,
            "why": _why_noisy(value, rounds, load) if judged == "noisy" else ""}


def _every_case_goal(records: list) -> dict:
    """Issue 11: rnnkit still at least as fast as the best peer on every S1-S4 case, cell and pass run."""
    worst, where, rounds = None, None, None
    for r in records:
        if r["impl"] != "rnnkit" or not r["ms"] or r["case"] not in ("S1", "S2", "S3", "S4"):
            continue
        times = [p["ms"] for p in (find(records, r["case"], r["cell"], r["mode"], i) for i in ("torch", "keras", "onnx"))
                 if p and p["ms"]]
        if times and (worst is None or min(times) / r["ms"] < worst):
            worst, where = min(times) / r["ms"], f"{r['case']} {r['cell']} {MODE_LABELS[r['mode']]}"
            peers = [p for p in (find(records, r["case"], r["cell"], r["mode"], i) for i in ("torch", "keras", "onnx"))
                     if p and p["ms"]]
            each = [round_ratios(p, r) for p in peers]
            rounds = [min(x) for x in zip(*each)] if all(each) else None
    return _goal("S1-S4, every cell and pass run: ≥ 1.0× the best peer (worst case)", worst, 1.0, where=where,
                 rounds=rounds if worst is not None else None,
                 load=load_of(*[r for r in records if r["case"] in ("S1", "S2", "S3", "S4")]))


# Issue 11's goals on its own cases (kernels_v2).  Ragged: ≥ this many times faster than torch packed.
RAGGED_VS_PACKED = {"tanh": 3.0, "gru": 3.0, "lstm": 2.0}
RAGGED_SLACK = 1.15       # with lengths ≤ 1.15 × (real / padded tokens) × without
CONTENTION_LIMIT = 2.0    # after a matmul ≤ 2 × quiet
PER_CALL_US = 14.6        # rnn_forward, T=1: half the old 29.3 µs
PLAN_STEP_US = 4.0
BIDIR_LIMIT = 1.3         # both directions ≤ 1.3 × one direction
INFER_VS_ORT = 1.2


def _record_of(records, kind, cell, impl, shape=None):
    r = next((r for r in records if kind_of(r) == kind and r["cell"] == cell and r["impl"] == impl
              and shape in (None, r["shape"])), None)
    return r if r and r["ms"] else None


def _ms_of(records, kind, cell, impl, shape=None):
    r = _record_of(records, kind, cell, impl, shape)
    return r["ms"] if r else None


def ragged_fraction(record: dict) -> float | None:
    extra = record.get("extra") or {}
    return extra["tokens_real"] / extra["tokens_padded"] if extra.get("tokens_padded") else None


def evaluate_v2_goals(records: list) -> list:
    """The goals of issue 11's cases, from their (full-size) records; value None where not measured."""
    goals = []
    for cell in ("tanh", "gru", "lstm"):
        rows = [r for r in records if kind_of(r) == "ragged" and r["cell"] == cell]
        lengths, padded, packed = (_record_of(rows, "ragged", cell, i) for i in ("rnnkit", "rnnkit-padded", "torch-packed"))
        fraction = ragged_fraction(rows[0]) if rows else None
        value = lengths["ms"] / (fraction * padded["ms"]) if lengths and padded and fraction else None
        rounds = round_ratios(lengths, padded)
        goals.append(_goal(f"Ragged {cell} fwd+bwd: with lengths ≤ {RAGGED_SLACK}× (real / padded tokens) × without "
                           "(measured: with / (real / padded × without))", value, RAGGED_SLACK, at_most=True,
                           rounds=[r / fraction for r in rounds] if rounds and value is not None else None,
                           load=load_of(lengths, padded)))
        goals.append(_goal(f"Ragged {cell} fwd+bwd: ≥ {RAGGED_VS_PACKED[cell]:g}× faster than torch packed",
                           packed["ms"] / lengths["ms"] if lengths and packed else None, RAGGED_VS_PACKED[cell],
                           rounds=round_ratios(packed, lengths), load=load_of(packed, lengths)))
    for cell in ("tanh", "lstm", "gru"):
        quiet, after = (_record_of(records, "contention", cell, i) for i in ("rnnkit", "rnnkit-after-matmul"))
        goals.append(_goal(f"Contention {cell} S1 forward: after a 512² NumPy matmul ≤ {CONTENTION_LIMIT:g}× quiet",
                           after["ms"] / quiet["ms"] if quiet and after else None, CONTENTION_LIMIT, at_most=True,
                           rounds=round_ratios(after, quiet), load=load_of(after, quiet)))
    functional, plan = (_record_of(records, "per-call", "tanh", i) for i in ("rnnkit", "rnnkit-plan"))
    for text, r, target in ((f"Per call: T=1 B=1 H=128 tanh rnn_forward ≤ {PER_CALL_US} µs", functional, PER_CALL_US),
                            ((f"Per call: the same step through a Plan ≤ {PLAN_STEP_US:g} µs (timed from Python: its "
                              "overhead included)"), plan, PLAN_STEP_US)):
        goals.append(_goal(text, 1e3 * r["ms"] if r else None, target, "µs", at_most=True,
                           rounds=[1e3 * ms for ms in r["ms_rounds"]] if r and r.get("ms_rounds") else None,
                           load=load_of(r)))
    for cell in ("tanh", "lstm", "gru"):
        both, one = (_record_of(records, "bidir", cell, i) for i in ("rnnkit", "rnnkit-1dir"))
        goals.append(_goal(f"Bidirectional {cell} T=50 B=1 H=128 forward: ≤ {BIDIR_LIMIT}× one direction",
                           both["ms"] / one["ms"] if both and one else None, BIDIR_LIMIT, at_most=True,
                           rounds=round_ratios(both, one), load=load_of(both, one)))
    for cell in ("tanh", "lstm", "gru"):
        worst, where, shapes = None, None, 0
        for r in records:
            if kind_of(r) == "infer" and r["cell"] == cell and r["impl"] == "onnx" and r["ms"] and r["rnnkit_speedup"]:
                shapes += 1
                if worst is None or r["rnnkit_speedup"] < worst["rnnkit_speedup"]:
                    worst, where = r, r["shape"]
        where = f"{where}; worst of {shapes}" if where else None
        goals.append(_goal(f"Small-batch inference {cell} (Plan): ≥ {INFER_VS_ORT}× ONNX Runtime on every shape "
                           "(worst shape)", worst["rnnkit_speedup"] if worst else None, INFER_VS_ORT, where=where,
                           rounds=worst.get("rnnkit_speedup_rounds") if worst else None, load=load_of(worst)))
    return goals
