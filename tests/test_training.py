"""Losses, optimizers and gradient clipping: the values and gradients torch gives (where it is
installed), finite differences and the stability of the cross-entropy."""

import numpy as np
import pytest
from helpers import numeric_gradient
from rnnkit.losses import mse, softmax, softmax_cross_entropy
from rnnkit.optim import SGD, Adam, clip_grad_norm, make_optimizer


def test_cross_entropy_value_and_gradient():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 4, 5))
    labels = rng.integers(0, 5, (3, 4))
    loss, grad = softmax_cross_entropy(logits, labels)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(log_probs, labels[..., None], -1).mean()
    assert loss == pytest.approx(expected, rel=1e-12)
    numeric = numeric_gradient(lambda: softmax_cross_entropy(logits, labels)[0], logits)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]], np.float32)
    loss, grad = softmax_cross_entropy(logits, np.array([1, 2]))
    # row 0: label 1 is 1e4 below the best -> loss 1e4; row 1: two tied best logits -> log 2
    assert loss == pytest.approx((1e4 + np.log(2)) / 2, rel=1e-6)
    assert np.isfinite(grad).all()
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad[1], [0, 0.25, -0.25], atol=1e-7)
    np.testing.assert_allclose(softmax(logits).sum(-1), 1, rtol=1e-6)


def test_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((6, 7)) * 5
    labels = rng.integers(0, 7, 6)
    t = torch.tensor(logits, requires_grad=True)
    want = torch.nn.functional.cross_entropy(t, torch.tensor(labels))
    want.backward()
    loss, grad = softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(want.item(), rel=1e-12)
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_cross_entropy_errors():
    with pytest.raises(ValueError, match=r"labels has shape \(3,\); expected \(2,\)"):
        softmax_cross_entropy(np.zeros((2, 4)), np.zeros(3, int))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\), got values from 0 to 4"):
        softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 4]))
    with pytest.raises(TypeError, match="labels must be integers"):
        softmax_cross_entropy(np.zeros((2, 4)), np.array([0.0, 1.0]))


def test_mse_value_and_gradient():
    rng = np.random.default_rng(0)
    predictions, targets = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    loss, grad = mse(predictions, targets)
    assert loss == pytest.approx(np.mean((predictions - targets) ** 2), rel=1e-12)
    numeric = numeric_gradient(lambda: mse(predictions, targets)[0], predictions)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match=r"targets has shape \(4,\); expected \(4, 3\)"):
        mse(predictions, targets[:, 0])


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_optimizers_follow_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    torch_params = [torch.tensor(params[k].copy(), requires_grad=True) for k in ("w", "b")]
    if name == "sgd":
        ours, theirs = SGD(params, lr=0.1, momentum=0.9), torch.optim.SGD(torch_params, lr=0.1, momentum=0.9)
    else:
        ours, theirs = Adam(params, lr=0.05), torch.optim.Adam(torch_params, lr=0.05)
    for _ in range(5):
        grads = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
        for p, k in zip(torch_params, ("w", "b")):
            p.grad = torch.tensor(grads[k])
        ours.step(grads)
        theirs.step()
    for p, k in zip(torch_params, ("w", "b")):
        np.testing.assert_allclose(params[k], p.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_optimizers_update_in_place_and_check_grads():
    w = np.ones(3, np.float32)
    opt = make_optimizer("sgd", {"w": w}, 0.5)
    opt.step({"w": np.ones(3, np.float32)})
    np.testing.assert_array_equal(w, 0.5)
    assert w.dtype == np.float32
    with pytest.raises(ValueError, match=r"grads has no gradient for \['w'\]"):
        opt.step({})
    with pytest.raises(ValueError, match=r"optimizer must be one of 'adam', 'sgd' or an optimizer object .*, got 'rmsprop'"):
        make_optimizer("rmsprop", {"w": w}, 0.1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        Adam({"w": w}, lr=0)


def test_clip_grad_norm_matches_torch_rule():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    total = clip_grad_norm(grads, 1.0)
    assert total == pytest.approx(5.0)
    scale = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(grads["a"], [3 * scale, 0])
    np.testing.assert_allclose(grads["b"], [[4 * scale]])
    small = {"a": np.array([0.3, 0.4])}
    assert clip_grad_norm(small, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(small["a"], [0.3, 0.4])
