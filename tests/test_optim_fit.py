"""Optimizer objects (weight decay, Nesterov), a second fit that continues the optimizer, and the
atomic Model.save."""

import os

import numpy as np
import pytest
import rnnkit
from rnnkit import ManyToOne, optim


def quadratic_grads(params):
    """The gradient of 0.5·sum((p - 1)^2 · scale): a fixed function of the parameters."""
    return {k: (p - 1) * np.linspace(0.5, 2, p.size).reshape(p.shape) for k, p in params.items()}


def run(opt, params, steps=6):
    for _ in range(steps):
        opt.step(quadratic_grads(params))
    return params


def test_sgd_weight_decay_and_nesterov_follow_torchs_equations():
    rng = np.random.default_rng(0)
    start = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    lr, momentum, wd = 0.1, 0.9, 0.05
    params = {k: v.copy() for k, v in start.items()}
    run(optim.SGD(params, lr, momentum, nesterov=True, weight_decay=wd), params)
    want = {k: v.copy() for k, v in start.items()}
    buf = {}
    for _ in range(6):
        for k, g in quadratic_grads(want).items():
            g = g + wd * want[k]
            buf[k] = g.copy() if k not in buf else momentum * buf[k] + g
            want[k] -= lr * (g + momentum * buf[k])
    for k in start:
        np.testing.assert_allclose(params[k], want[k], rtol=1e-14, atol=1e-14)
    with pytest.raises(ValueError, match="nesterov=True needs a momentum > 0"):
        optim.SGD(lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        optim.SGD(lr=0.1, weight_decay=-1)


def test_adam_with_weight_decay_is_adamw():
    rng = np.random.default_rng(1)
    start = {"a": rng.standard_normal((4, 2))}
    lr, wd, (b1, b2), eps = 0.01, 0.1, (0.9, 0.999), 1e-8
    params = {"a": start["a"].copy()}
    run(optim.Adam(params, lr=lr, weight_decay=wd), params)
    p, m, v = start["a"].copy(), 0, 0
    for t in range(1, 7):
        g = quadratic_grads({"a": p})["a"]
        p = p * (1 - lr * wd)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        p = p - lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps)
    np.testing.assert_allclose(params["a"], p, rtol=1e-13)
    plain = {"a": start["a"].copy()}
    run(optim.Adam(plain, lr=lr), plain)
    assert not np.allclose(plain["a"], params["a"])  # the decay is applied


def test_optimizers_match_torch_optim():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    start = rng.standard_normal((3, 5))
    cases = [(lambda p: optim.SGD(p, 0.05, 0.9, nesterov=True, weight_decay=0.01),
              lambda t: torch.optim.SGD([t], lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
             (lambda p: optim.Adam(p, lr=0.02, weight_decay=0.1),
              lambda t: torch.optim.AdamW([t], lr=0.02, weight_decay=0.1))]
    for ours, theirs in cases:
        params = {"w": start.copy()}
        run(ours(params), params, steps=10)
        t = torch.tensor(start.copy(), requires_grad=True)
        opt = theirs(t)
        for _ in range(10):
            opt.zero_grad()
            t.grad = torch.from_numpy(quadratic_grads({"w": t.detach().numpy()})["w"])
            opt.step()
        np.testing.assert_allclose(params["w"], t.detach().numpy(), rtol=1e-12, atol=1e-14)


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6, 3))
    return X, (X[:, :, 0].sum(axis=1) > 0).astype(int)


def test_a_second_fit_continues_the_optimizer_bitwise_as_one_longer_fit():
    X, y = data()
    for optimizer in ("adam", optim.SGD(lr=0.05, momentum=0.9, nesterov=True), optim.Adam(lr=5e-3, weight_decay=0.01)):
        make = (lambda: optimizer) if isinstance(optimizer, str) else \
            (lambda: type(optimizer)(**{k: v for k, v in vars(optimizer).items() if not k.startswith("_")
                                        and k not in ("params", "steps")}))
        once = ManyToOne(3, 5, 2, cell="gru", dtype="float64", seed=0)
        once.fit(X, y, epochs=3, optimizer=make(), verbose=0)
        twice = ManyToOne(3, 5, 2, cell="gru", dtype="float64", seed=0)
        opt = make()
        twice.fit(X, y, epochs=1, optimizer=opt, verbose=0)
        twice.fit(X, y, epochs=2, optimizer=opt, verbose=0)
        for name, value in once.params.items():
            np.testing.assert_array_equal(twice.params[name], value, err_msg=f"{optimizer!r}: {name}")
        if not isinstance(opt, str):
            assert twice.optimizer_ is opt
    model = ManyToOne(3, 5, 2, seed=0)
    model.fit(X, y, epochs=1, verbose=0)
    first = model.optimizer_
    model.fit(X, y, epochs=1, lr=1e-2, verbose=0)  # the same name: continued, at the new lr
    assert model.optimizer_ is first and first.steps == 4 and first.lr == 1e-2
    model.fit(X, y, epochs=1, optimizer="sgd", verbose=0)  # another optimizer: a fresh one
    assert isinstance(model.optimizer_, optim.SGD)
    with pytest.raises(ValueError, match=r"lr=0.1 was given beside an optimizer object"):
        model.fit(X, y, epochs=1, optimizer=optim.Adam(), lr=0.1, verbose=0)


def test_save_is_atomic_a_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    X, y = data()
    model = ManyToOne(3, 5, 2, seed=0)
    path = tmp_path / "model.npz"
    model.save(path)
    before = path.read_bytes()
    model.fit(X, y, epochs=1, verbose=0)

    def crash(file, **arrays):
        file.write(b"half a file")
        raise KeyboardInterrupt  # (as a kill at that instant would)

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the previous model, whole
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left behind
    rnnkit.Model.load(path)
    model.save(path)
    np.testing.assert_array_equal(rnnkit.Model.load(path).params["rnn.weight_hh_l0"], model.params["rnn.weight_hh_l0"])
