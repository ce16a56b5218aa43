"""The benchmark harness (`python -m rnnkit bench`): a smoke run on tiny cases, its JSON, and the
validation that keeps a wrong implementation from being timed.  Speed is never asserted here."""

import json
import time

import numpy as np
import pytest
import rnnkit
from rnnkit.bench import adapters, cli, kernels_v2, main, report
from rnnkit.bench.problems import CASES, GATES, V2_CASES, V2_KINDS, Case, make_problem, ragged_lengths
from rnnkit.bench.runner import Runner, gradients_from_tuple
from rnnkit.bench.timing import check_outputs, measure, relative_error

TINY = ["--shape", "6,3,5,7", "--rounds", "2", "--pause", "0", "--block-seconds", "0.002", "--peak-size", "64"]


def run(tmp_path, *options):
    path = tmp_path / "bench.json"
    code = main([*TINY, "--json", str(path), *options])
    return code, json.loads(path.read_text())


def records_of(result, **where):
    return [r for r in result["results"] if all(r[k] == v for k, v in where.items())]


def test_smoke_run_times_every_implementation_and_writes_json(tmp_path):
    threads = rnnkit.get_num_threads()
    code, result = run(tmp_path, "--cell", "tanh,relu", "--peers", "rnnkit,numpy", "--scaling")
    assert code == 0
    assert rnnkit.get_num_threads() == threads, "the harness must restore rnnkit's thread count"
    assert result["command"].startswith("python -m rnnkit bench --shape 6,3,5,7")
    assert "--json" in result["command"]
    assert "--json" not in result["measurement"]
    assert "--scaling" in result["measurement"]
    assert result["settings"]["implementations"] == ["rnnkit", "rnnkit-1t", "numpy"]
    peak = result["gemm_peak"]
    assert peak["n"] == 64
    assert len(peak["measurements_gflops"]) == 1 + 2 * 2  # at the start, then alongside each cell and pass
    assert peak["gflops"] == pytest.approx(max(peak["measurements_gflops"]))
    assert {tuple(g["shape"]) for g in result["gemm"]} == {(18, 5, 7), (7, 18, 5), (7, 18, 7), (18, 7, 5)}
    assert all(g["status"] == "ok" and g["rnnkit_ms"] > 0 and g["ratio"] > 0 for g in result["gemm"])

    assert len(result["results"]) == 2 * 2 * 3  # cells x passes x implementations
    for r in result["results"]:
        assert r["status"] == "ok", r
        assert (r["T"], r["B"], r["I"], r["H"], r["G"]) == (6, 3, 5, 7, 1)
        per_pass = 2 * 6 * 3 * 1 * 7 * (5 + 7)
        assert r["flops"] == (per_pass if r["mode"] == "forward" else 3 * per_pass)
        assert r["error"] <= 1e-4
        assert r["ms"] > 0
        assert len(r["ms_rounds"]) == 2
        assert r["calls"] >= 1
        assert r["gflops"] == pytest.approx(r["flops"] / (r["ms"] * 1e-3) / 1e9)
        assert r["percent_of_peak"] == pytest.approx(100 * r["gflops"] / peak["gflops"])
        assert r["peak_gflops_here"] in peak["measurements_gflops"]
        rnnkit_ms = records_of(result, cell=r["cell"], mode=r["mode"], impl="rnnkit")[0]["ms"]
        assert r["rnnkit_speedup"] == pytest.approx(r["ms"] / rnnkit_ms)
    # The custom case is none of S1-S4, so no goal can be judged: each says so rather than passing.
    assert result["goals"]
    assert all(g["value"] is None and g["met"] is None for g in result["goals"])


def test_a_wrong_implementation_is_rejected_and_not_timed(tmp_path, monkeypatch):
    def broken(problem):
        good = adapters.rnnkit_vanilla(problem)

        def wrong_gradients(result):  # a plausible bug: dw_hh transposed
            grads = gradients_from_tuple(result)
            return {**grads, "dw_hh": grads["dw_hh"].T}

        return Runner(good.forward, lambda r: r[0] + 1e-3, good.train, wrong_gradients)

    monkeypatch.setitem(adapters.ADAPTERS["tanh"], "rnnkit", broken)
    code, result = run(tmp_path, "--peers", "rnnkit,numpy", "--no-gemm")
    assert code == 1
    forward, train = (records_of(result, impl="rnnkit", mode=m)[0] for m in ("forward", "train"))
    for record, array in ((forward, "y"), (train, "dw_hh")):
        assert record["status"] == "rejected"
        assert record["reason"].startswith(f"{array} differs from the oracle")
        assert record["ms"] is None
        assert record["gflops"] is None
        assert record["error"] > 1e-4
    # The reference is still timed, with no speed-up against a rnnkit that was not timed.
    for r in records_of(result, impl="numpy"):
        assert r["status"] == "ok"
        assert r["ms"] > 0
        assert r["rnnkit_speedup"] is None


def test_a_cell_missing_from_the_build_is_reported_not_fatal(tmp_path, monkeypatch, capsys):
    monkeypatch.delattr(rnnkit, "lstm_forward", raising=False)
    code, result = run(tmp_path, "--cell", "lstm", "--peers", "rnnkit,numpy", "--no-gemm", "--mode", "forward")
    assert code == 0
    (record,) = records_of(result, impl="rnnkit")
    assert record["status"] == "unavailable"
    assert record["ms"] is None
    assert record["reason"] == "rnnkit.lstm_forward not available in this build"
    assert "not available in this build" in capsys.readouterr().out


def test_goals_are_judged_on_full_size_cases_only():
    def record(case, mode, impl, ms, full_size=True, cell="tanh"):
        return {"case": case, "cell": cell, "mode": mode, "impl": impl, "ms": ms, "flops": 2e9, "full_size": full_size}

    records = [record("S1", "forward", "rnnkit", 1.0), record("S1", "forward", "torch", 12.0),
               record("S1", "forward", "numpy", 4.0), record("S1", "forward", "onnx", 0.5),
               record("S2", "train", "rnnkit", 10.0), record("S2", "train", "rnnkit-1t", 18.0),
               record("S3", "forward", "rnnkit", 1.0, full_size=False),
               # the gated cells' goals read their own cell's rows, not the vanilla ones
               record("S2", "train", "rnnkit", 40.0, cell="lstm"), record("S2", "train", "torch", 64.0, cell="lstm"),
               record("S2", "train", "rnnkit", 20.0, cell="gru"), record("S2", "train", "torch", 60.0, cell="gru"),
               record("S1", "forward", "rnnkit", 1.0, cell="gru"), record("S1", "forward", "torch", 3.0, cell="gru")]
    report.add_ratios(records, peak_gflops=400.0)
    gemm = [{"ratio": 0.9, "full_size": True, "cell": "tanh"}, {"ratio": 0.85, "full_size": True, "cell": "relu"},
            {"ratio": 0.7, "full_size": True, "cell": "lstm"}, {"ratio": 0.95, "full_size": True, "cell": "gru"},
            {"ratio": 0.1, "full_size": False, "cell": "tanh"}]
    goals = {g["goal"]: g for g in report.evaluate_goals(records, gemm)}

    def judged(text):
        return goals[text]["value"], goals[text]["met"]

    assert judged("S1 forward: ≥ 10× faster than torch") == (pytest.approx(12.0), True)
    assert judged("S1 forward: ≥ 5× faster than the NumPy reference") == (pytest.approx(4.0), False)
    assert judged("S1 forward: faster than every peer") == (pytest.approx(0.5), False)
    assert judged("S2 forward+backward: ≥ 55% of the GEMM peak") == (pytest.approx(50.0), False)  # 200 of 400
    assert judged("S2 forward+backward: N threads vs 1 thread ≥ 1.7×") == (pytest.approx(1.8), True)
    assert judged("S3 forward: ≥ 75% of the GEMM peak") == (None, None)  # not the full size
    assert judged("LSTM S2 forward+backward: ≥ 1.5× faster than torch") == (pytest.approx(1.6), True)
    assert judged("GRU S2 forward+backward: ≥ 2.5× faster than torch") == (pytest.approx(3.0), True)
    assert judged("GRU S1 forward: ≥ 10× faster than torch") == (pytest.approx(3.0), False)
    assert judged("LSTM S2 forward: ≥ 1.0× torch") == (None, None)  # not measured
    assert judged("GEMM: ≥ 80% of numpy's matmul on every vanilla-cell product shape (worst shape)") == (
        pytest.approx(85.0), True)
    assert judged("GEMM: ≥ 80% of numpy's matmul on every LSTM/GRU product shape (worst shape)") == (
        pytest.approx(70.0), False)


def test_check_outputs_refuses_what_differs():
    want = {"y": np.array([1.0, -2.0, 4.0], np.float32)}
    assert check_outputs({"y": want["y"] + 1e-5}, want).ok
    assert not check_outputs({"y": want["y"] + 1e-3}, want).ok
    assert not check_outputs({"y": np.array([1.0, np.nan, 4.0])}, want).ok
    wrong_shape = check_outputs({"y": want["y"][:2]}, want)
    assert not wrong_shape.ok
    assert "shape" in wrong_shape.detail
    nothing_shared = check_outputs({"dx": want["y"]}, want)
    assert not nothing_shared.ok
    assert "nothing to compare" in nothing_shared.detail
    assert relative_error(np.array([0.0, 3.0]), np.array([0.0, 2.0])) == pytest.approx(0.5)


def test_measure_alternates_blocks_and_counts_calls():
    calls = {"a": 0, "b": 0}
    entered = []

    def count(name):
        calls[name] += 1

    timings = measure({"a": lambda: count("a"), "b": lambda: count("b")}, rounds=3, pause=0, block_seconds=0.01,
                      enter={"a": lambda: entered.append("a")}, max_calls=5)
    assert set(timings) == {"a", "b"}
    for name, timing in timings.items():
        assert len(timing.seconds) == 3
        assert timing.calls == 5  # 0.01 s of calls that take microseconds, capped by max_calls
        # warm-up, 3 sizing calls, then per round one untimed call and the block
        assert calls[name] == 1 + 3 + 3 * (1 + timing.calls)
    assert entered == ["a"] * 4  # before the warm-up and before each round's block


@pytest.mark.parametrize("text", ["1,2,3", "0,1,1,1", "a,b,c,d"])
def test_bad_shape_is_a_usage_error(text, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--shape", text])
    assert exit_info.value.code == 2
    assert "--shape" in capsys.readouterr().err


def test_bad_cell_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["--cell", "tanh,lsmt"])
    assert "lsmt" in capsys.readouterr().err


def test_markdown_replaces_only_the_marked_region(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# Title\n\n{report.MARK_BEGIN}\nold table\n{report.MARK_END}\n\n## Where the time goes\nkept\n")
    report.write_markdown(str(path), f"{report.MARK_BEGIN}\nnew table\n{report.MARK_END}")
    text = path.read_text()
    assert "new table" in text
    assert "old table" not in text
    assert text.startswith("# Title")
    assert text.endswith("## Where the time goes\nkept\n")


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "bench.png"
    code, _ = run(tmp_path, "--peers", "rnnkit,numpy", "--no-gemm", "--mode", "forward", "--plot", str(plot))
    assert code == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("cell", ["tanh", "relu", "lstm", "gru"])
def test_torch_adapter_agrees_with_the_oracle(cell):
    """torch's adapter (weights, gate order, gradients) checked the way the harness checks it."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    problem = make_problem(cell, Case("tiny", "tiny", 4, 2, 3, 5), threads=threads)
    oracle_name = next(name for name in adapters.ORACLES if name != "torch" and
                       getattr(rnnkit.reference, "rnn_forward" if GATES[cell] == 1 else f"{cell}_forward", None))
    oracle = adapters.make_runner(oracle_name, cell, problem)
    runner = adapters.make_runner("torch", cell, problem)
    assert check_outputs({"y": runner.output(runner.forward())}, {"y": oracle.output(oracle.forward())}).ok
    got, want = runner.gradients(runner.train()), oracle.gradients(oracle.train())
    assert set(got) == set(want) == {"dx", "dw_ih", "dw_hh", "db_ih", "db_hh"}
    assert check_outputs(got, want).ok


@pytest.mark.parametrize("cell", ["tanh", "relu", "lstm", "gru"])
def test_onnx_adapter_agrees_with_the_oracle(cell):
    """ONNX Runtime's gate orders ([i|o|f|c], [z|r|h]) and linear_before_reset, checked on a tiny case."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    problem = make_problem(cell, Case("tiny", "tiny", 4, 2, 3, 5), threads=1)
    oracle = adapters.make_runner("numpy", cell, problem)
    runner = adapters.make_runner("onnx", cell, problem)
    assert runner.train is None
    assert check_outputs({"y": runner.output(runner.forward())}, {"y": oracle.output(oracle.forward())}).ok


# --------------------------------------------------------------------------------------------------
# The kernels-v2 cases (issue 11), at tiny sizes: --quick with its v2 cases replaced by these.

V2_TINY = (
    Case("ragged", "ragged batch", 6, 4, 5, 7, modes=("train",), kind="ragged", cells=("tanh", "gru", "lstm")),
    Case("contention", "after a matmul", 5, 1, 6, 8, modes=("forward",), kind="contention", cells=("tanh", "lstm")),
    Case("per-call", "per call", 1, 1, 6, 8, modes=("forward",), kind="per-call", cells=("tanh",)),
    Case("bidir", "bidirectional", 5, 2, 6, 8, modes=("forward",), kind="bidir", cells=("tanh", "lstm", "gru")),
    Case("infer", "small-batch inference", 4, 1, 8, 8, modes=("forward",), kind="infer", cells=("tanh", "gru")),
    Case("infer", "small-batch inference", 3, 4, 8, 8, modes=("forward",), kind="infer", cells=("lstm",)),
)
V2_OPTIONS = ["--quick", "--case", ",".join(V2_KINDS), "--rounds", "2", "--pause", "0", "--block-seconds", "0.002",
              "--no-gemm", "--peak-size", "0"]


def run_v2(tmp_path, monkeypatch, *options):
    monkeypatch.setattr(cli, "QUICK_V2_CASES", V2_TINY)
    monkeypatch.setattr(cli, "QUICK_V2_CELLS", None)  # each tiny case its own cells
    monkeypatch.setattr(kernels_v2, "CONTENTION_MATMUL", 32)
    path = tmp_path / "bench.json"
    code = main([*V2_OPTIONS, "--json", str(path), *options])
    return code, json.loads(path.read_text())


def test_quick_runs_the_full_method_on_fewer_full_size_cases():
    """--quick is a full run made smaller: the same cases at the same sizes (so that its ratios are a full
    run's), the same pause and untimed call at each switch, fewer and shorter rounds; none of its cases
    is a size of its own."""
    assert {c.kind for c in V2_CASES} == set(V2_KINDS)
    full, quick = cli.parse_args([]), cli.parse_args(["--quick"])
    assert [c.name for c in full.cases] == ["S1", "S2", "S3", "S4"]
    assert {c.kind for c in full.v2_cases} == set(V2_KINDS)
    assert [c.name for c in quick.cases] == ["S1", "S2"]
    assert set(quick.cases) <= set(CASES)
    assert set(quick.v2_cases) <= set(V2_CASES)
    assert {c.kind for c in quick.v2_cases} == set(V2_KINDS) - {"infer"}
    assert quick.pause == full.pause == 0.3  # idle BLAS workers spin for 0.1-0.3 s: the rest must outlast them
    assert 5 <= quick.rounds < full.rounds
    assert quick.block_seconds <= full.block_seconds
    for args in (full, quick):
        assert args.cell == ["tanh"]  # S1-S4: tanh; the v2 cases: their own cells (--quick: tanh)
        assert args.v2_cells is None
    assert all(cli.v2_cells(c, quick) == ["tanh"] for c in quick.v2_cases)
    assert cli.v2_cells(full.v2_cases[0], full) == list(full.v2_cases[0].cells)


def test_quick_validates_times_by_rounds_and_judges_the_goals(tmp_path, monkeypatch):
    """A --quick run goes through the full run's functions — the oracle check, measure's alternation — and,
    its cases being full-size, judges their goals, each with its per-round spread."""
    calls = {"validate": 0, "measure": 0}
    validate, timed = cli._validate, cli.measure

    def counting_validate(*args, **kwargs):
        calls["validate"] += 1
        return validate(*args, **kwargs)

    def counting_measure(*args, **kwargs):
        calls["measure"] += 1
        return timed(*args, **kwargs)

    monkeypatch.setattr(cli, "_validate", counting_validate)
    monkeypatch.setattr(cli, "measure", counting_measure)
    path = tmp_path / "bench.json"
    code = main(["--quick", "--case", "S1", "--peers", "rnnkit,numpy", "--rounds", "3", "--pause", "0",
                 "--block-seconds", "0.002", "--no-gemm", "--peak-size", "0", "--json", str(path)])
    assert code == 0
    result = json.loads(path.read_text())
    assert calls == {"validate": 1, "measure": 1}  # rnnkit checked against the oracle (numpy); one alternation
    (rnnkit_record,) = records_of(result, impl="rnnkit")
    (numpy_record,) = records_of(result, impl="numpy")
    assert rnnkit_record["full_size"]
    assert rnnkit_record["error"] <= 1e-4
    assert len(numpy_record["rnnkit_speedup_rounds"]) == 3
    assert numpy_record["rnnkit_speedup_rounds"] == pytest.approx(
        [a / b for a, b in zip(numpy_record["ms_rounds"], rnnkit_record["ms_rounds"])])
    assert rnnkit_record["other_load"] is None or rnnkit_record["other_load"] >= 0  # (None without /proc/stat)
    (goal,) = [g for g in result["goals"] if g["goal"].startswith("S1 forward: ≥ 5× faster than the NumPy")]
    assert goal["value"] == pytest.approx(numpy_record["rnnkit_speedup"])
    assert goal["rounds"] == pytest.approx(numpy_record["rnnkit_speedup_rounds"])
    assert goal["verdict"] in ("yes", "NO", "noisy")


def test_a_noisy_measurement_gets_no_verdict():
    assert report.verdict(None, 10.0) is None
    assert report.verdict(12.0, 10.0) == "yes"  # no rounds: judged on the value
    assert report.verdict(12.0, 10.0, rounds=[11.0, 12.0, 13.0]) == "yes"
    assert report.verdict(9.0, 10.0, rounds=[8.5, 9.0, 9.5]) == "NO"
    assert report.verdict(1.9, 2.0, at_most=True, rounds=[1.8, 1.9, 2.1]) == "yes"
    # another process took the cores in one round: (12 - 4) / 9 > NOISY_SPREAD, whichever side of the target
    assert report.verdict(9.0, 10.0, rounds=[4.0, 9.0, 12.0]) == "noisy"
    assert report.verdict(11.0, 10.0, rounds=[4.0, 11.0, 12.0]) == "noisy"
    edge = 1 + report.NOISY_SPREAD
    assert report.verdict(1.0, 0.5, rounds=[1.0, edge - 1e-9]) == "yes"
    assert report.verdict(1.0, 0.5, rounds=[1.0, edge + 1e-6]) == "noisy"

    def record(impl, rounds):
        ms = float(np.median(rounds))
        return {"case": "S1", "cell": "tanh", "mode": "forward", "impl": impl, "ms": ms, "ms_rounds": rounds,
                "flops": 2e6, "full_size": True}

    # per-round ratios 15, 15, 5: the median says "≥ 10× torch: yes", the spread says the run cannot tell
    records = [record("rnnkit", [1.0, 1.0, 3.0]), record("torch", [15.0, 15.0, 15.0]),
               record("numpy", [6.0, 6.2, 18.3])]
    report.add_ratios(records, None)
    assert records[1]["rnnkit_speedup_rounds"] == pytest.approx([15.0, 15.0, 5.0])
    goals = {g["goal"]: g for g in report.evaluate_goals(records, [])}
    torch_goal = goals["S1 forward: ≥ 10× faster than torch"]
    assert torch_goal["value"] == pytest.approx(15.0)
    assert torch_goal["verdict"] == "noisy"
    assert torch_goal["met"] is None
    numpy_goal = goals["S1 forward: ≥ 5× faster than the NumPy reference"]  # 6, 6.2, 6.1: steady
    assert numpy_goal["verdict"] == "yes"
    assert numpy_goal["met"] is True
    _, rows = report.goal_table([torch_goal, numpy_goal])
    assert rows[0][1:] == ["15.00×", "5.0–15.0×", "noisy (spread 67%)"]
    assert rows[1][3] == "yes"
    # steady rounds, but another process kept a core busy meanwhile: it can shift a ratio without
    # widening it (torch's threads suffer more than rnnkit's), so no verdict either
    for r in records:
        r["other_load"] = 0.9
    busy = {g["goal"]: g for g in report.evaluate_goals(records, [])}["S1 forward: ≥ 5× faster than the NumPy reference"]
    assert busy["verdict"] == "noisy"
    assert busy["why"] == "others busy: 0.90 cores"
    assert report.verdict(12.0, 10.0, rounds=[11.9, 12.1], load=report.BUSY_CORES / 2) == "yes"
    assert report.verdict(12.0, 10.0, rounds=[11.9, 12.1], load=2 * report.BUSY_CORES) == "noisy"
    assert report.range_text([0.93, 1.12], 100, "%") == "93–112%"
    assert report.round_ratios(records[1], {"ms_rounds": [1.0]}) is None  # different alternations: no pairing


def test_v2_case_selection_and_sizes():
    assert cli.parse_args(["--shape", "2,2,2,2"]).v2_cases == []
    assert [c.name for c in cli.parse_args(["--case", "S1,bidir"]).v2_cases] == ["bidir"]
    forward_only = cli.parse_args(["--mode", "forward"]).v2_cases
    assert forward_only
    assert all(c.kind != "ragged" for c in forward_only)  # ragged is forward+backward
    (ragged,) = [c for c in V2_CASES if c.kind == "ragged"]
    lengths = ragged_lengths(ragged)
    assert (ragged.steps, ragged.batch, ragged.hidden) == (100, 64, 256)
    assert lengths.shape == (64,)
    assert lengths.min() >= 25
    assert lengths.max() <= 100
    assert np.array_equal(lengths, ragged_lengths(ragged))  # a fixed seed
    infer = [(c.batch, c.hidden, c.steps) for c in V2_CASES if c.kind == "infer"]
    assert {b for b, _, _ in infer} == {1, 4}
    assert {h for _, h, _ in infer} == {256, 512, 1024, 2048}


def test_v2_cases_validate_time_and_report(tmp_path, monkeypatch):
    code, result = run_v2(tmp_path, monkeypatch, "--peers", "rnnkit,numpy,torch,onnx")
    assert code == 0
    records = [r for r in result["results"] if r["status"] != "unavailable"]  # torch / onnxruntime may be missing
    assert {r["kind"] for r in records} == set(V2_KINDS)
    for r in records:
        assert r["status"] == "ok", r
        assert r["oracle"] == "numpy"
        assert r["error"] <= 1e-4
        assert r["ms"] > 0
        assert len(r["ms_rounds"]) == 2
        assert r["calls"] >= 1
        assert not r["full_size"]
    impls = {(r["kind"], r["cell"], r["impl"]) for r in records}
    for cell in ("tanh", "gru", "lstm"):
        assert {("ragged", cell, "rnnkit"), ("ragged", cell, "rnnkit-padded"), ("bidir", cell, "rnnkit"),
                ("bidir", cell, "rnnkit-1dir"), ("infer", cell, "rnnkit")} <= impls
    assert {("contention", "tanh", "rnnkit"), ("contention", "tanh", "rnnkit-after-matmul"), ("per-call", "tanh", "rnnkit"),
            ("per-call", "tanh", "rnnkit-inference"), ("per-call", "tanh", "rnnkit-plan"),
            ("per-call", "tanh", "numpy-step")} <= impls
    ragged = records_of(result, kind="ragged", cell="tanh", impl="rnnkit")[0]
    assert ragged["mode"] == "train"
    assert ragged["label"] == "rnnkit lengths"
    assert ragged["extra"]["tokens_padded"] == 6 * 4
    assert 4 <= ragged["extra"]["tokens_real"] < 6 * 4  # lengths in [ceil(6/4), 6], not all full here
    (infer_b1,) = records_of(result, kind="infer", cell="tanh", impl="rnnkit")
    assert infer_b1["w_hh_gbps"] == pytest.approx(8 * 8 * 4 * 4 / (infer_b1["ms"] * 1e-3) / 1e9)
    assert "w_hh_gbps" not in records_of(result, kind="infer", cell="lstm", impl="rnnkit")[0]  # B = 4
    assert result["bandwidth"]["memory_gbps"] > 0
    assert result["bandwidth"]["l3_gbps"] > 0
    contention = records_of(result, kind="contention", cell="tanh", impl="rnnkit-after-matmul")[0]
    assert contention["extra"]["blas_threads"] == result["settings"]["default_blas_threads"]
    titles = [t[0] for t in report.v2_tables(result)]
    assert titles == ["Ragged batch", "Contention", "Per call", "Bidirectional", "Small-batch inference"]
    markdown = report.markdown_report(result)
    assert all(f"**{title}**" in markdown for title in titles)
    v2_goals = [g for g in result["goals"] if g["goal"].startswith(("Ragged", "Contention", "Per call", "Bidir", "Small"))]
    assert len(v2_goals) == 6 + 3 + 2 + 3 + 3
    assert all(g["value"] is None for g in v2_goals)  # tiny cases: nothing judged


def test_v2_plot_has_a_panel_for_the_v2_cases(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "bench.png"
    code, _ = run_v2(tmp_path, monkeypatch, "--peers", "rnnkit,numpy", "--case", "bidir,per-call", "--plot", str(plot))
    assert code == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _ignore_lengths(functional):
    def broken(p, backend, **keywords):  # a plausible bug: lengths dropped on the way to the kernel
        if backend == "rnnkit":
            keywords.pop("lengths", None)
        return functional(p, backend, **keywords)
    return broken


def _swap_directions(layer_runner):
    def broken(problems, threads):  # the reverse direction's weights used for the forward one
        return layer_runner(problems[::-1], threads)
    return broken


def _offset_plan(plan_runner):
    def broken(p, threads):
        good = plan_runner(p, threads)
        return Runner(good.forward, lambda r: r[0] + 1e-3, enter=good.enter)
    return broken


@pytest.mark.parametrize(("case", "name", "breaks", "rejected", "kept"), [
    ("ragged", "functional", _ignore_lengths, "rnnkit", "rnnkit-padded"),
    ("bidir", "layer_runner", _swap_directions, "rnnkit", "rnnkit-1dir"),
    ("per-call", "plan_runner", _offset_plan, "rnnkit-plan", "rnnkit"),
    ("infer", "plan_runner", _offset_plan, "rnnkit", None),
])
def test_a_wrong_v2_variant_is_rejected_and_not_timed(tmp_path, monkeypatch, case, name, breaks, rejected, kept):
    monkeypatch.setattr(kernels_v2, name, breaks(getattr(kernels_v2, name)))
    code, result = run_v2(tmp_path, monkeypatch, "--peers", "rnnkit,numpy", "--case", case, "--cell", "tanh")
    assert code == 1
    bad = records_of(result, kind=case, impl=rejected)
    assert bad  # (with --cell tanh both infer shapes run tanh)
    for r in bad:
        assert r["status"] == "rejected"
        assert r["ms"] is None
        assert r["error"] > 1e-4
        assert "differs from the oracle" in r["reason"]
    if kept:
        assert records_of(result, kind=case, impl=kept)[0]["status"] == "ok"


def test_a_wrong_contention_run_is_rejected(tmp_path, monkeypatch):
    def broken(problem):
        good = adapters.rnnkit_vanilla(problem)
        return Runner(good.forward, lambda r: r[0][::-1], good.train, gradients_from_tuple)  # time reversed

    monkeypatch.setitem(adapters.ADAPTERS["tanh"], "rnnkit", broken)
    code, result = run_v2(tmp_path, monkeypatch, "--peers", "rnnkit", "--case", "contention", "--cell", "tanh")
    assert code == 1
    assert {r["impl"]: r["status"] for r in result["results"]} == {"rnnkit": "rejected", "rnnkit-after-matmul": "rejected"}


def test_measure_times_only_the_call_after_before():
    calls = []
    timings = measure({"a": lambda: calls.append("a")}, rounds=2, pause=0, block_seconds=0.05,
                      before={"a": lambda: (calls.append("before"), time.sleep(0.01))})
    assert timings["a"].calls == 5  # sized by the call and its before together: 0.05 s / ~0.01 s
    assert timings["a"].median < 0.005  # the 10 ms sleeps are not timed
    assert calls[:2] == ["before", "a"]
    assert calls.count("before") == calls.count("a")


def test_v2_goals():
    def record(kind, cell, impl, ms, shape="s", extra=None, case=None):
        return {"case": case or kind, "kind": kind, "cell": cell, "mode": "forward", "impl": impl, "ms": ms,
                "flops": 1e6, "full_size": True, "shape": shape, "extra": extra or {}}

    tokens = {"tokens_real": 50, "tokens_padded": 100}
    records = [record("ragged", "tanh", "rnnkit", 6.0, extra=tokens), record("ragged", "tanh", "rnnkit-padded", 10.0),
               record("ragged", "tanh", "torch-packed", 24.0),
               record("contention", "lstm", "rnnkit", 1.0), record("contention", "lstm", "rnnkit-after-matmul", 2.5),
               record("per-call", "tanh", "rnnkit", 0.012), record("per-call", "tanh", "rnnkit-plan", 0.005),
               record("bidir", "gru", "rnnkit", 1.2), record("bidir", "gru", "rnnkit-1dir", 1.0),
               record("infer", "gru", "rnnkit", 1.0, "a"), record("infer", "gru", "onnx", 2.0, "a"),
               record("infer", "gru", "rnnkit", 1.0, "b"), record("infer", "gru", "onnx", 1.1, "b"),
               record("S2", "lstm", "rnnkit", 2.0, case="S2"), record("S2", "lstm", "torch", 1.8, case="S2"),
               record("S1", "gru", "rnnkit", 1.0, case="S1"), record("S1", "gru", "onnx", 1.6, case="S1")]
    for r in records[-4:]:
        r["kind"] = "standard"
    report.add_ratios(records, None)
    goals = {g["goal"]: g for g in report.evaluate_goals(records, [])}

    def judged(prefix):
        (g,) = [g for text, g in goals.items() if text.startswith(prefix)]
        return g["value"], g["met"]

    assert judged("Ragged tanh fwd+bwd: with lengths") == (pytest.approx(1.2), False)  # 6 / (0.5 × 10) > 1.15
    assert judged("Ragged tanh fwd+bwd: ≥ 3× faster than torch packed") == (pytest.approx(4.0), True)
    assert goals["Ragged lstm fwd+bwd: ≥ 2× faster than torch packed"]["value"] is None  # not measured
    assert judged("Contention lstm") == (pytest.approx(2.5), False)
    assert judged("Contention tanh") == (None, None)
    assert judged("Per call: T=1") == (pytest.approx(12.0), True)  # µs, at most 14.6
    assert judged("Per call: the same step through a Plan") == (pytest.approx(5.0), False)
    assert judged("Bidirectional gru") == (pytest.approx(1.2), True)
    assert judged("Small-batch inference gru") == (pytest.approx(1.1), False)
    assert goals["Small-batch inference gru (Plan): ≥ 1.2× ONNX Runtime on every shape (worst shape)"]["where"] == "b; worst of 2"
    assert judged("GRU S1 forward: ≥ 1.5× faster than ONNX Runtime") == (pytest.approx(1.6), True)
    assert judged("S1-S4, every cell and pass run") == (pytest.approx(0.9), False)
    assert goals["S1-S4, every cell and pass run: ≥ 1.0× the best peer (worst case)"]["where"] == "S2 lstm forward"
    _, rows = report.goal_table([goals["Per call: the same step through a Plan ≤ 4 µs (timed from Python: its "
                                            "overhead included)"]])
    assert rows == [[rows[0][0], "5.0 µs", "", "NO"]]  # (no rounds in these records: no range)
