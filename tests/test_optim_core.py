"""The optimizers' update in the compiled core (cpp/src/optim.hpp): one call updates every parameter,
bitwise equal to the NumPy formula of optim.Adam._update / SGD._update on every SIMD path and dtype;
the gradient norm agrees with NumPy's to rounding and does not depend on the path."""

import numpy as np
import pytest
import rnnkit
from rnnkit import _core, optim

SHAPES = [(37, 5), (3,), (8, 8), (1,), (0,), (129,), (2, 3, 4)]

OPTIMIZERS = {
    "adam": lambda p: optim.Adam(p, lr=1e-2),
    "adam-betas": lambda p: optim.Adam(p, lr=3e-3, betas=(0.5, 0.9), eps=1e-6),
    "adamw": lambda p: optim.Adam(p, lr=1e-2, weight_decay=0.1),
    "sgd": lambda p: optim.SGD(p, lr=0.1),
    "sgd-l2": lambda p: optim.SGD(p, lr=0.1, weight_decay=0.01),
    "momentum": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
    "nesterov": lambda p: optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
}


def gradients(rng, params, dtype):
    """Gradients over many magnitudes, down to float32's subnormals, so that every rounding shows."""
    return {k: (rng.standard_normal(v.shape) * 10.0 ** rng.integers(-40, 4, v.shape)).astype(dtype)
            for k, v in params.items()}


def run(make, params, grads_per_step, *, core, monkeypatch):
    monkeypatch.setattr(optim, "CORE_UPDATES", core)
    params = {k: v.copy() for k, v in params.items()}
    opt = make(params)
    for grads in grads_per_step:
        opt.step({k: g.copy() for k, g in grads.items()})
    return params, opt.state_dict()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_core_update_is_bitwise_the_numpy_formula(isa, name, dtype, monkeypatch):
    rng = np.random.default_rng(7)
    params = {f"p{i}": rng.standard_normal(s).astype(dtype) for i, s in enumerate(SHAPES)}
    steps = [gradients(rng, params, dtype) for _ in range(6)]
    ours, our_state = run(OPTIMIZERS[name], params, steps, core=True, monkeypatch=monkeypatch)
    numpy, numpy_state = run(OPTIMIZERS[name], params, steps, core=False, monkeypatch=monkeypatch)
    for k, before in params.items():
        assert ours[k].dtype == dtype
        np.testing.assert_array_equal(ours[k], numpy[k], err_msg=f"{name} {k} on {isa}")
        assert not np.array_equal(ours[k], before) or before.size == 0  # the step did something
    assert our_state.keys() == numpy_state.keys()
    for k in our_state["arrays"]:
        np.testing.assert_array_equal(our_state["arrays"][k], numpy_state["arrays"][k])


def test_the_core_is_what_step_calls(monkeypatch):
    """The fast path really runs: with the core's update replaced, step's result changes."""
    calls = []
    monkeypatch.setattr(optim._core, "adam_step", lambda *a: calls.append(len(a[0])))
    params = {"w": np.ones((4, 4)), "b": np.ones(4)}
    optim.Adam(params).step({"w": np.ones((4, 4)), "b": np.ones(4)})
    assert calls == [2]  # one call for both parameters
    np.testing.assert_array_equal(params["w"], 1.0)


def test_arrays_the_core_cannot_take_use_the_numpy_formula(monkeypatch):
    """A non-contiguous parameter, or a gradient of another dtype: the NumPy formula, same result."""
    rng = np.random.default_rng(1)
    base = rng.standard_normal((6, 8))
    for make_grad in (lambda: rng.standard_normal((6, 4)), lambda: rng.standard_normal((6, 4)).astype(np.float32)):
        grads = [make_grad() for _ in range(3)]
        results = []
        for core in (True, False):
            monkeypatch.setattr(optim, "CORE_UPDATES", core)
            storage = base.copy()
            params = {"w": storage[:, ::2]}  # a strided view: the core refuses it
            opt = optim.Adam(params, lr=0.1)
            for g in grads:
                opt.step({"w": g})
            results.append(storage)
        np.testing.assert_array_equal(results[0], results[1])
        assert not np.array_equal(results[0], base)


def test_a_model_trains_bitwise_the_same_with_and_without_the_core(monkeypatch):
    """(Without clipping: a clipped step scales by the norm, which the core adds in another order.)"""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((48, 6, 3))
    y = rng.integers(0, 3, 48)
    weights = []
    for core, optimizer in [(True, "adam"), (False, "adam"), (True, "sgd"), (False, "sgd")]:
        monkeypatch.setattr(optim, "CORE_UPDATES", core)
        model = rnnkit.ManyToOne(3, 8, 3, cell="gru", seed=0, dtype="float64")
        model.fit(x, y, epochs=2, batch_size=16, optimizer=optimizer, lr=0.01, clip=None, verbose=0)
        weights.append({k: v.copy() for k, v in model.params.items()})
    for a, b in [(weights[0], weights[1]), (weights[2], weights[3])]:
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_grad_norm_matches_numpy_and_not_the_path(dtype, monkeypatch):
    rng = np.random.default_rng(2)
    grads = {f"g{n}": rng.standard_normal(n).astype(dtype) for n in [1, 7, 8, 9, 15, 16, 17, 1000, 12345]}
    norms = {}
    for name in rnnkit.supported_isas():
        previous = rnnkit.simd_isa()
        rnnkit.set_simd_isa(name)
        try:
            norms[name] = optim.grad_norm(grads)
        finally:
            rnnkit.set_simd_isa(previous)
    assert len(set(norms.values())) == 1, norms  # a fixed order of additions on every path
    monkeypatch.setattr(optim, "CORE_UPDATES", False)
    expected = optim.grad_norm(grads)
    assert next(iter(norms.values())) == pytest.approx(expected, rel=1e-14)
    assert optim.grad_norm({}) == 0.0


def test_the_core_refuses_bad_arrays_before_changing_anything():
    p, g, m, v = (np.ones(4) for _ in range(4))
    scalars = (1.0, 0.9, 0.999, 1e-3, 0.1, 1e-8)
    with pytest.raises(ValueError, match="grads must hold 1 arrays"):
        _core.adam_step([p], [], [m], [v], *scalars)
    with pytest.raises(ValueError, match=r"means\[0\] must have 4 elements, got 3"):
        _core.adam_step([p], [g], [np.ones(3)], [v], *scalars)
    with pytest.raises(TypeError, match=r"grads\[0\] must have dtype float64, got float32"):
        _core.adam_step([p], [g.astype(np.float32)], [m], [v], *scalars)
    with pytest.raises(ValueError, match=r"params\[0\] must be C-contiguous"):
        _core.adam_step([np.ones(8)[::2]], [g], [m], [v], *scalars)
    frozen = np.ones(4)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] must be writable"):
        _core.adam_step([frozen], [g], [m], [v], *scalars)
    with pytest.raises(ValueError, match="must not overlap"):
        _core.adam_step([p], [g], [p], [v], *scalars)
    # A refusal of the second parameter leaves the first untouched as well.
    q = np.ones(4)
    with pytest.raises(TypeError, match=r"params\[1\] must be a numpy array"):
        _core.adam_step([q, [1.0]], [g, g], [m, m], [v, v], *scalars)
    np.testing.assert_array_equal(q, 1.0)
    with pytest.raises(TypeError, match="float32 or float64, got int64"):
        _core.sgd_step([np.ones(3, np.int64)], [np.ones(3, np.int64)], [], [], 0.1, 0.0, False, 0.0)
    with pytest.raises(ValueError, match="buffers must hold 1 arrays"):
        _core.sgd_step([p], [g], [], [True], 0.1, 0.9, False, 0.0)
