"""A torch.nn.RNN's weights give torch's numbers: outputs and every gradient (skipped without torch)."""

import numpy as np
import pytest

import rnnkit
from helpers import assert_close, upstream_gradients

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("with_h0", [True, False], ids=["h0", "no-h0"])
def test_matches_torch_rnn(isa, dtype, nonlinearity, with_h0):
    steps, batch, inputs, hidden = 7, 4, 10, 19
    torch.manual_seed(0)
    module = torch.nn.RNN(inputs, hidden, nonlinearity=nonlinearity).to(torch.float64 if dtype == np.float64 else torch.float32)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps, batch, inputs)).astype(dtype)
    h0 = rng.standard_normal((batch, hidden)).astype(dtype) if with_h0 else None
    dy, dh_n = upstream_gradients(steps, batch, hidden, dtype)

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0[None], requires_grad=True) if with_h0 else None
    yt, hnt = module(xt, h0t)
    (yt * torch.tensor(dy)).sum().backward(retain_graph=True)
    (hnt[0] * torch.tensor(dh_n)).sum().backward()

    weights = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    y, h_n, cache = rnnkit.rnn_forward(x, h0, weights["weight_ih_l0"], weights["weight_hh_l0"],
                                       weights["bias_ih_l0"], weights["bias_hh_l0"], nonlinearity=nonlinearity)
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = rnnkit.rnn_backward(cache, dy, dh_n)

    assert_close(y, yt.detach().numpy(), dtype, "y")
    assert_close(h_n, hnt[0].detach().numpy(), dtype, "h_n")
    assert_close(dx, xt.grad.numpy(), dtype, "dx")
    if with_h0:
        assert_close(dh0, h0t.grad[0].numpy(), dtype, "dh0")
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    assert_close(dw_ih, grads["weight_ih_l0"], dtype, "dw_ih")
    assert_close(dw_hh, grads["weight_hh_l0"], dtype, "dw_hh")
    assert_close(db_ih, grads["bias_ih_l0"], dtype, "db_ih")
    assert_close(db_hh, grads["bias_hh_l0"], dtype, "db_hh")


def test_torch_tensors_are_accepted_as_inputs():
    module = torch.nn.RNN(3, 4)
    sd = module.state_dict()
    x = torch.randn(2, 1, 3)
    y, h_n, _ = rnnkit.rnn_forward(x, None, sd["weight_ih_l0"], sd["weight_hh_l0"], sd["bias_ih_l0"], sd["bias_hh_l0"])
    with torch.no_grad():
        expected, _ = module(x)
    assert_close(y, expected.numpy(), np.float32, "y")
