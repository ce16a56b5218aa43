"""The kernels-v2 cases (issue 11): what each one runs, and what it is checked against.

Each case kind builds a ``Setup`` for one cell: the oracles (NumPy reference runners, ``rnnkit.reference``
with the same lengths / reverse / training keywords) and the variants to validate and time, each
checked against one of the oracles.  The harness (``cli.run_v2_case``) validates and times them as it
does S1-S4 (``timing.measure``: alternating blocks, medians, spread); the tables are in ``report``.

- ragged: T=100 B=64 I=H=256, lengths uniform in [25, 100] (fixed seed), forward + backward.  rnnkit
  with lengths; rnnkit on the same padded batch without lengths; torch padded; torch packed
  (pack_padded_sequence(enforce_sorted=False), backward of sum(y·dy) on the unpacked output).  x is
  zero at the padding.  Oracles: the reference with lengths, and without (the padded batch); y and the
  gradients are both checked.
- contention: S1's forward, each call right after a NumPy 512×512 float32 matmul (OpenBLAS on its
  default threads, not the bench's limit), against the same forward with nothing before it.
- per-call: T=1 B=1 I=H=128 tanh: rnn_forward (default, training=True: the call whose old fixed cost
  was 29.3 µs), rnn_forward(training=False), Plan.forward (from Python), one NumPy step, torch RNNCell.
- bidir: T=50 B=1 I=H=128: a bidirectional rnnkit.RNN layer's forward (training=False), against one
  direction (bidirectional=False) and torch's bidirectional module.
- infer: B in {1, 4}, I=H in {256 .. 2048}, T in {25, 100}: Plan.forward (training=False) against
  ONNX Runtime; at B=1 also W_hh's effective bandwidth (bytes of W_hh × T / time).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import peers
from .adapters import ADAPTERS, _require, _set_threads
from .problems import GATES, Case, Problem, flops, make_problem, ragged_lengths
from .runner import Runner, Unavailable, gradients_from_tuple
from .timing import measure

CONTENTION_MATMUL = 512  # n of the n×n float32 NumPy matmul before each timed call


@dataclass
class Variant:
    name: str                      # its key in adapters.IMPLEMENTATIONS
    family: str                    # the --peers name that selects it (rnnkit, numpy, torch, onnx)
    oracle: str                    # the key of the Setup's oracle it must agree with
    make: Callable[[], Runner]     # may raise Unavailable
    before: Callable[[], Any] | None = None  # untimed, right before each timed call
    flops: float | None = None     # when it differs from the case's count


@dataclass
class Setup:
    oracles: dict                  # key -> Runner (the NumPy reference)
    variants: list
    context: Any = field(default_factory=contextlib.nullcontext)  # entered around the whole case
    extra: dict = field(default_factory=dict)                      # copied into every record


def _nothing() -> None:
    return None


# --------------------------------------------------------------------------------------------------
# Runners


def functional(p: Problem, backend: str, *, lengths=None, reverse: bool = False, training: bool = True,
               threads: int | None = None) -> Runner:
    """rnnkit's kernels (backend "rnnkit") or the reference ("numpy") with the v2 keywords; forward,
    and forward + backward of sum(y·dy) when training."""
    import rnnkit

    module, where = (rnnkit, "rnnkit") if backend == "rnnkit" else (rnnkit.reference, "rnnkit.reference")
    kind = "rnn" if p.cell in ("tanh", "relu") else p.cell
    forward_fn, backward_fn = _require(module, f"{kind}_forward", where), _require(module, f"{kind}_backward", where)
    states = (p.h0, p.c0) if p.cell == "lstm" else (p.h0,)
    keywords = {"lengths": lengths, "reverse": reverse, "training": training}
    if kind == "rnn":
        keywords["nonlinearity"] = p.nonlinearity

    def forward():
        return forward_fn(p.x, *states, p.w_ih, p.w_hh, p.b_ih, p.b_hh, **keywords)

    def train():
        return backward_fn(forward()[-1], p.dy, *([None] * len(states)))

    return Runner(forward, lambda r: r[0], train if training else None, gradients_from_tuple, _set_threads(threads))


def plan_runner(p: Problem, threads: int) -> Runner:
    """rnnkit.Plan (weights packed once, here, outside the timing); forward with training=False."""
    import rnnkit

    plan = _require(rnnkit, "Plan", "rnnkit")(p.cell, p.w_ih, p.w_hh, p.b_ih, p.b_hh)
    states = (p.h0, p.c0) if p.cell == "lstm" else (p.h0,)
    return Runner(lambda: plan.forward(p.x, *states), lambda r: r[0], enter=_set_threads(threads))


def layer_runner(problems: list, threads: int) -> Runner:
    """rnnkit.RNN, bidirectional when given two problems (the forward, then the reverse direction's
    weights and initial state), forward with training=False."""
    import rnnkit

    p = problems[0]
    layer = rnnkit.RNN(p.case.inputs, p.case.hidden, cell=p.cell, bidirectional=len(problems) == 2)
    weights = {}
    for suffix, q in zip(("", "_reverse"), problems):
        for name, value in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), (q.w_ih, q.w_hh, q.b_ih, q.b_hh)):
            weights[f"{name}_l0{suffix}"] = value
    layer.load_state_dict(weights)
    h0 = np.stack([q.h0 for q in problems])
    state = (h0, np.stack([q.c0 for q in problems])) if p.cell == "lstm" else h0
    return Runner(lambda: layer.forward(p.x, state, training=False), lambda r: np.asarray(r[0]),
                  enter=_set_threads(threads))


def bidirectional_reference(p: Problem, reverse: Problem) -> Runner:
    """The reference of a bidirectional layer: [forward direction | reverse direction] along H."""
    forward_runner = functional(p, "numpy", training=False)
    reverse_runner = functional(reverse, "numpy", reverse=True, training=False)

    def forward():
        return np.concatenate([forward_runner.forward()[0], reverse_runner.forward()[0]], axis=-1)

    return Runner(forward, lambda y: y)


def numpy_step(p: Problem) -> Runner:
    """One vanilla step in NumPy, as a careful user writes it: pre-transposed weights, one summed bias."""
    if p.cell not in ("tanh", "relu"):
        raise Unavailable(f"the NumPy step is written for tanh and relu, not {p.cell}")
    wt_ih, wt_hh = np.ascontiguousarray(p.w_ih.T), np.ascontiguousarray(p.w_hh.T)
    bias = p.b_ih + p.b_hh
    x0, h0 = p.x[0], p.h0
    if p.cell == "tanh":
        def forward():
            return np.tanh(x0 @ wt_ih + h0 @ wt_hh + bias)
    else:
        def forward():
            return np.maximum(x0 @ wt_ih + h0 @ wt_hh + bias, 0.0)
    return Runner(forward, lambda h: h[None])


def _blas_default(threads):
    """Around the contention case: NumPy's BLAS back at its default thread count (the bench limits it)."""
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def default_blas_threads():
    """NumPy's BLAS thread count before the bench limits it (threadpoolctl), else None."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return max(counts) if counts else None


# --------------------------------------------------------------------------------------------------
# The cases


def ragged(cell: str, case: Case, threads: int, **_) -> Setup:
    p = make_problem(cell, case, threads)
    lengths = ragged_lengths(case)
    real = np.arange(case.steps)[:, None] < lengths[None, :]  # (T, B): a real token
    p.x *= real[..., None]  # a padded batch; dy stays non-zero at the padding, which the runs with lengths
    #                         ignore and the padded runs do not: a run that drops lengths gets other gradients
    return Setup(
        oracles={"lengths": functional(p, "numpy", lengths=lengths), "padded": functional(p, "numpy")},
        variants=[
            Variant("rnnkit", "rnnkit", "lengths", lambda: functional(p, "rnnkit", lengths=lengths, threads=threads)),
            Variant("rnnkit-padded", "rnnkit", "padded", lambda: functional(p, "rnnkit", threads=threads)),
            Variant("torch-padded", "torch", "padded", lambda: peers.torch_adapter(p)),
            Variant("torch-packed", "torch", "lengths", lambda: peers.torch_packed_adapter(p, lengths)),
        ],
        extra={"tokens_real": int(lengths.sum()), "tokens_padded": case.steps * case.batch,
               "lengths_min": int(lengths.min()), "lengths_max": int(lengths.max())},
    )


def contention(cell: str, case: Case, threads: int, blas_threads=None, **_) -> Setup:
    p = make_problem(cell, case, threads)
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal((CONTENTION_MATMUL, CONTENTION_MATMUL)).astype(np.float32) for _ in range(2))
    c = np.empty_like(a)

    def matmul():
        np.matmul(a, b, out=c)

    def s1():
        return ADAPTERS[cell]["rnnkit"](p)

    return Setup(
        oracles={"reference": ADAPTERS[cell]["numpy"](p)},
        # both timed call by call (the quiet one with nothing before it), so the clock costs the same
        variants=[Variant("rnnkit", "rnnkit", "reference", s1, before=_nothing),
                  Variant("rnnkit-after-matmul", "rnnkit", "reference", s1, before=matmul)],
        context=_blas_default(blas_threads),
        extra={"matmul": CONTENTION_MATMUL, "blas_threads": blas_threads},
    )


def per_call(cell: str, case: Case, threads: int, **_) -> Setup:
    p = make_problem(cell, case, threads)
    return Setup(
        oracles={"reference": functional(p, "numpy")},
        variants=[
            Variant("rnnkit", "rnnkit", "reference", lambda: functional(p, "rnnkit", threads=threads)),
            Variant("rnnkit-inference", "rnnkit", "reference",
                    lambda: functional(p, "rnnkit", training=False, threads=threads)),
            Variant("rnnkit-plan", "rnnkit", "reference", lambda: plan_runner(p, threads)),
            Variant("numpy-step", "numpy", "reference", lambda: numpy_step(p)),
            Variant("torch-cell", "torch", "reference", lambda: peers.torch_cell_adapter(p)),
        ],
    )


def bidir(cell: str, case: Case, threads: int, **_) -> Setup:
    p = make_problem(cell, case, threads)
    reverse = dataclasses.replace(make_problem(cell, case, threads, seed=1), x=p.x)  # its own weights and h0
    return Setup(
        oracles={"both": bidirectional_reference(p, reverse), "one": functional(p, "numpy", training=False)},
        variants=[
            Variant("rnnkit", "rnnkit", "both", lambda: layer_runner([p, reverse], threads)),
            Variant("rnnkit-1dir", "rnnkit", "one", lambda: layer_runner([p], threads),
                    flops=flops(cell, case, "forward") / 2),
            Variant("torch-bidir", "torch", "both", lambda: peers.torch_bidirectional_adapter(p, reverse)),
        ],
    )


def infer(cell: str, case: Case, threads: int, **_) -> Setup:
    p = make_problem(cell, case, threads)
    return Setup(
        oracles={"reference": functional(p, "numpy", training=False)},
        variants=[Variant("rnnkit", "rnnkit", "reference", lambda: plan_runner(p, threads)),
                  Variant("onnx", "onnx", "reference", lambda: peers.onnx_adapter(p))],
        extra={"w_hh_bytes": GATES[cell] * case.hidden * case.hidden * p.w_hh.itemsize},
    )


SETUPS = {"ragged": ragged, "contention": contention, "per-call": per_call, "bidir": bidir, "infer": infer}

# Which cells a kind can run (--cell narrows these; without it each case runs its own ``cells``).
KIND_CELLS = {"ragged": ("tanh", "relu", "lstm", "gru"), "contention": ("tanh", "relu", "lstm", "gru"),
              "per-call": ("tanh", "relu"), "bidir": ("tanh", "relu", "lstm", "gru"), "infer": ("tanh", "relu", "lstm", "gru")}


def make_setup(cell: str, case: Case, threads: int, blas_threads=None) -> Setup:
    return SETUPS[case.kind](cell, case, threads, blas_threads=blas_threads)


def finish(case: Case, setup: Setup, group: list) -> None:
    """Numbers a case derives from its timings: the extra fields, and W_hh's bandwidth at B=1 (infer)."""
    for r in group:
        r["extra"] = dict(setup.extra)
        if case.kind == "infer" and case.batch == 1 and r["ms"]:
            r["w_hh_gbps"] = setup.extra["w_hh_bytes"] * case.steps / (r["ms"] * 1e-3) / 1e9


# --------------------------------------------------------------------------------------------------
# The machine's bandwidth, for the infer case's GB/s


def machine_bandwidth(args) -> dict:
    """NumPy copies (one thread; bytes read + bytes written per second): a large array for memory
    (256 MiB, --quick 64 MiB), a 4 MiB one — with its copy, 8 MiB, inside the L3 — copied repeatedly
    for the L3.  Timed like everything else (alternating blocks, medians)."""
    sizes = {"memory": (64 if args.quick else 256) << 20, "l3": 4 << 20}
    arrays = {name: np.ones(size // 4, np.float32) for name, size in sizes.items()}
    copies = {name: np.empty_like(a) for name, a in arrays.items()}
    functions = {name: (lambda name=name: np.copyto(copies[name], arrays[name])) for name in sizes}
    timings = measure(functions, rounds=args.rounds, pause=args.pause, block_seconds=args.block_seconds)
    result = {"method": "NumPy np.copyto of a float32 array on one thread; bytes read + bytes written per second"}
    for name, size in sizes.items():
        result[f"{name}_bytes"] = size
        result[f"{name}_gbps"] = 2 * size / timings[name].median / 1e9
        result[f"{name}_spread"] = timings[name].spread
    return result


# What "rnnkit" (the variant the others are compared with) is in each kind
BASE_LABELS = {"ragged": "rnnkit lengths", "contention": "quiet", "per-call": "rnn_forward",
               "bidir": "bidirectional", "infer": "rnnkit Plan"}
BASE_ABOUT = {
    "ragged": "rnnkit's kernels with lengths= (fwd+bwd)",
    "contention": "S1's forward with nothing before each call (timed call by call, as after matmul is)",
    "per-call": "rnnkit.rnn_forward with its defaults (training=True: the cache is built)",
    "bidir": "rnnkit.RNN(bidirectional=True).forward(training=False): both directions in one kernel call",
    "infer": "rnnkit.Plan(...).forward(x, h0[, c0]), training=False",
}
