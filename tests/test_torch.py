"""A torch module's weights give torch's numbers: outputs and every gradient, for nn.RNN (tanh,
relu), nn.LSTM and nn.GRU (skipped without torch)."""

import numpy as np
import pytest
import rnnkit
from helpers import CELLS, assert_close, backward, gradient_names, upstream

torch = pytest.importorskip("torch")


def torch_module(cell, inputs, hidden, dtype):
    torch.manual_seed(0)
    if cell == "lstm":
        module = torch.nn.LSTM(inputs, hidden)
    elif cell == "gru":
        module = torch.nn.GRU(inputs, hidden)
    else:
        module = torch.nn.RNN(inputs, hidden, nonlinearity=cell)
    return module.to(torch.float64 if dtype == np.float64 else torch.float32)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("with_state", [True, False], ids=["state", "no-state"])
def test_matches_torch(isa, dtype, cell, with_state):
    steps, batch, inputs, hidden = 7, 4, 10, 19
    module = torch_module(cell, inputs, hidden, dtype)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps, batch, inputs)).astype(dtype)
    states = {name: rng.standard_normal((batch, hidden)).astype(dtype) for name in (["h0", "c0"] if cell == "lstm" else ["h0"])}
    grads = upstream(cell, steps, batch, hidden, dtype)

    xt = torch.tensor(x, requires_grad=True)
    st = {k: torch.tensor(v[None], requires_grad=True) for k, v in states.items()}
    if cell == "lstm":
        yt, (hnt, cnt) = module(xt, (st["h0"], st["c0"]) if with_state else None)
        final = [hnt[0], cnt[0]]
    else:
        yt, hnt = module(xt, st["h0"] if with_state else None)
        final = [hnt[0]]
    loss = (yt * torch.tensor(grads["dy"])).sum() + (final[0] * torch.tensor(grads["dh_n"])).sum()
    if cell == "lstm":
        loss = loss + (final[1] * torch.tensor(grads["dc_n"])).sum()
    loss.backward()

    w = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    weights = (w["weight_ih_l0"], w["weight_hh_l0"], w["bias_ih_l0"], w["bias_hh_l0"])
    given = states if with_state else {k: None for k in states}
    if cell == "lstm":
        *outputs, cache = rnnkit.lstm_forward(x, given["h0"], given["c0"], *weights)
    elif cell == "gru":
        *outputs, cache = rnnkit.gru_forward(x, given["h0"], *weights)
    else:
        *outputs, cache = rnnkit.rnn_forward(x, given["h0"], *weights, nonlinearity=cell)
    assert_close(outputs[0], yt.detach().numpy(), dtype, "y")
    for name, got, want in zip(["h_n", "c_n"], outputs[1:], final):
        assert_close(got, want.detach().numpy(), dtype, name)

    got = dict(zip(gradient_names(cell), backward(rnnkit, cell, cache, grads)))
    assert_close(got["dx"], xt.grad.numpy(), dtype, "dx")
    if with_state:
        for name in states:
            assert_close(got["d" + name], st[name].grad[0].numpy(), dtype, "d" + name)
    params = {name: p.grad.numpy() for name, p in module.named_parameters()}
    for ours, theirs in [("dw_ih", "weight_ih_l0"), ("dw_hh", "weight_hh_l0"), ("db_ih", "bias_ih_l0"),
                         ("db_hh", "bias_hh_l0")]:
        assert_close(got[ours], params[theirs], dtype, ours)


def test_torch_tensors_are_accepted_as_inputs():
    module = torch.nn.RNN(3, 4)
    sd = module.state_dict()
    x = torch.randn(2, 1, 3)
    y, h_n, _ = rnnkit.rnn_forward(x, None, sd["weight_ih_l0"], sd["weight_hh_l0"], sd["bias_ih_l0"], sd["bias_hh_l0"])
    with torch.no_grad():
        expected, _ = module(x)
    assert_close(y, expected.numpy(), np.float32, "y")
