"""The C++ kernels (rnnkit.rnn_forward & co.) and the NumPy reference against torch's packed sequences
(pack_padded_sequence with enforce_sorted=False), float64: one direction of one layer, and the reverse
half of a bidirectional torch layer for reverse=True; rows of length 0 (which torch refuses) are checked
on their own, as in test_reference_lengths.py.  Then the RNN layer (2 layers, bidirectional) against
torch.nn.RNN / LSTM / GRU with the same weights."""

import numpy as np
import pytest
import rnnkit
from rnnkit import reference
from helpers import CELLS, assert_close, backward, forward, make_problem, upstream

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

F64 = np.float64
WEIGHTS = ("w_ih", "w_hh", "b_ih", "b_hh")
TORCH_NAMES = {"w_ih": "weight_ih_l0", "w_hh": "weight_hh_l0", "b_ih": "bias_ih_l0", "b_hh": "bias_hh_l0"}

# (T, B, I, H) -> lengths cases; "odd" has H = 37 (a tail on every SIMD width) and more rows.
SHAPES = {"small": (5, 4, 3, 6), "odd": (9, 7, 5, 37)}
LENGTHS = {
    "small": {
        "all-T": [5, 5, 5, 5],
        "all-equal": [3, 3, 3, 3],
        "unsorted-with-0-and-T": [2, 5, 0, 3],
        "unsorted": [1, 4, 5, 2],
        "ones-and-zero": [1, 0, 1, 1],
    },
    "odd": {
        "all-T": [9] * 7,
        "all-equal": [4] * 7,
        "unsorted-with-0-and-T": [3, 9, 0, 7, 1, 0, 9],
        "unsorted": [2, 8, 5, 9, 1, 6, 4],
        "ones-and-zero": [1, 1, 0, 1, 1, 1, 1],
    },
}
CASES = [(shape, name) for shape in SHAPES for name in LENGTHS[shape]]


def states_of(cell):
    return ("h0", "c0") if cell == "lstm" else ("h0",)


def torch_module(cell, inputs, hidden, **kwargs):
    kwargs = {"bias": True, "dtype": torch.float64, **kwargs}
    if cell == "lstm":
        return torch.nn.LSTM(inputs, hidden, **kwargs)
    if cell == "gru":
        return torch.nn.GRU(inputs, hidden, **kwargs)
    return torch.nn.RNN(inputs, hidden, nonlinearity=cell, **kwargs)


def torch_packed(cell, problem, lengths, reverse, grads):
    """torch on the rows of positive length: (outputs, gradients, rows) as NumPy; outputs (y, h_n[, c_n]),
    gradients (dx, dh0[, dc0], dw_ih, dw_hh, db_ih, db_hh), the per-row ones for those rows only."""
    steps, _, inputs = problem["x"].shape
    hidden = problem["w_hh"].shape[1]
    rows = np.flatnonzero(np.asarray(lengths) > 0)
    torch.manual_seed(0)
    module = torch_module(cell, inputs, hidden, num_layers=1, bidirectional=reverse)
    suffix = "_reverse" if reverse else ""  # the forward half of a bidirectional layer keeps torch's weights
    with torch.no_grad():
        for ours, theirs in TORCH_NAMES.items():
            getattr(module, theirs + suffix).copy_(torch.from_numpy(problem[ours]))
    direction, directions = (1, 2) if reverse else (0, 1)
    x = torch.tensor(problem["x"][:, rows], requires_grad=True)
    states = []
    for name in states_of(cell):
        full = torch.zeros(directions, rows.size, hidden, dtype=torch.float64)
        full[direction] = torch.from_numpy(problem[name][rows])
        states.append(full.requires_grad_(True))
    packed = pack_padded_sequence(x, torch.tensor(np.asarray(lengths)[rows]), enforce_sorted=False)
    out, final = module(packed, tuple(states) if cell == "lstm" else states[0])
    y = pad_packed_sequence(out, total_length=steps)[0][..., direction * hidden:(direction + 1) * hidden]
    finals = final if cell == "lstm" else (final,)
    outputs = (y, *(state[direction] for state in finals))
    loss = (y * torch.from_numpy(grads["dy"][:, rows])).sum()  # this direction's half only
    for out_state, name in zip(outputs[1:], ("dh_n", "dc_n")):
        loss = loss + (out_state * torch.from_numpy(grads[name][rows])).sum()
    loss.backward()
    gradients = [x.grad, *(state.grad[direction] for state in states),
                 *(getattr(module, TORCH_NAMES[w] + suffix).grad for w in WEIGHTS)]
    return [o.detach().numpy() for o in outputs], [g.numpy() for g in gradients], rows


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize(("shape", "case"), CASES, ids=[f"{s}-{c}" for s, c in CASES])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("api", [rnnkit, reference], ids=["kernels", "reference"])
def test_kernels_match_torch_packed_sequences(api, cell, shape, case, reverse):
    steps, batch, inputs, hidden = SHAPES[shape]
    lengths = LENGTHS[shape][case]
    problem = make_problem(cell, steps, batch, inputs, hidden, F64, seed=11, scale=2.0)
    grads = upstream(cell, steps, batch, hidden, F64, seed=12)
    want_outputs, want_grads, rows = torch_packed(cell, problem, lengths, reverse, grads)

    outputs, cache = forward(api, cell, {**problem, "lengths": lengths, "reverse": reverse})
    got_grads = backward(api, cell, cache, grads)
    states = states_of(cell)
    what = f"{cell} {shape} {case} reverse={reverse}"

    assert_close(outputs[0][:, rows], want_outputs[0], F64, f"{what} y")
    for k, name in enumerate(states):
        assert_close(outputs[1 + k][rows], want_outputs[1 + k], F64, f"{what} {name[0]}_n")
    assert_close(got_grads[0][:, rows], want_grads[0], F64, f"{what} dx")
    for k, name in enumerate(states):
        assert_close(got_grads[1 + k][rows], want_grads[1 + k], F64, f"{what} d{name}")
    for k, name in enumerate(WEIGHTS):
        j = 1 + len(states) + k
        assert_close(got_grads[j], want_grads[j], F64, f"{what} d{name}")

    # rows of length 0: nothing runs, the states and their gradients pass through, y and dx are 0
    empty = np.flatnonzero(np.asarray(lengths) == 0)
    assert not outputs[0][:, empty].any(), f"{what}: y of an empty row is not 0"
    assert not got_grads[0][:, empty].any(), f"{what}: dx of an empty row is not 0"
    for k, name in enumerate(states):
        np.testing.assert_array_equal(outputs[1 + k][empty], problem[name][empty], err_msg=f"{what} {name[0]}_n")
        np.testing.assert_array_equal(got_grads[1 + k][empty], grads["d" + name[0] + "_n"][empty],
                                      err_msg=f"{what} d{name}")

    # padding: y = 0 and dx = 0
    padded = np.arange(steps)[:, None] >= np.asarray(lengths)[None, :]
    assert not outputs[0][padded].any(), f"{what}: y at padding is not 0"
    assert not got_grads[0][padded].any(), f"{what}: dx at padding is not 0"


@pytest.mark.parametrize("cell", CELLS)
def test_kernels_ignore_dy_at_padding_like_torch(cell):
    """NaN in dy at padded positions (torch never sees them) changes nothing in the kernels' gradients."""
    steps, batch, inputs, hidden = SHAPES["odd"]
    lengths = LENGTHS["odd"]["unsorted-with-0-and-T"]
    problem = make_problem(cell, steps, batch, inputs, hidden, F64, seed=3)
    grads = upstream(cell, steps, batch, hidden, F64, seed=4)
    padded = np.arange(steps)[:, None] >= np.asarray(lengths)[None, :]
    dirty = {**grads, "dy": grads["dy"].copy()}
    dirty["dy"][padded] = np.nan
    for reverse in (False, True):
        _, want_grads, rows = torch_packed(cell, problem, lengths, reverse, grads)
        _, cache = forward(rnnkit, cell, {**problem, "lengths": lengths, "reverse": reverse})
        got = backward(rnnkit, cell, cache, dirty)
        assert_close(got[0][:, rows], want_grads[0], F64, f"{cell} reverse={reverse} dx")
        for k in range(1, len(got)):
            g = got[k][rows] if k <= len(states_of(cell)) else got[k]
            assert_close(g, want_grads[k], F64, f"{cell} reverse={reverse} gradient {k}")


# ---- the RNN layer against torch.nn -------------------------------------------------------------------

@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch-first"])
@pytest.mark.parametrize("with_state", [True, False], ids=["h0", "no-h0"])
@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_two_layer_rnn_matches_torch(cell, with_state, batch_first):
    steps, batch, inputs, hidden = 6, 5, 4, 19
    layers, directions = 2, 2
    torch.manual_seed(1)
    module = torch_module(cell, inputs, hidden, num_layers=layers, bidirectional=True, batch_first=batch_first)
    with torch.no_grad():  # weights large enough that the recurrence matters
        for p in module.parameters():
            p.mul_(2.0)
    layer = rnnkit.RNN(inputs, hidden, cell=cell, num_layers=layers, bidirectional=True, batch_first=batch_first,
                       dtype="float64", seed=0)
    layer.load_state_dict(module.state_dict())

    rng = np.random.default_rng(21)
    x_shape = (batch, steps, inputs) if batch_first else (steps, batch, inputs)
    y_shape = (batch, steps, directions * hidden) if batch_first else (steps, batch, directions * hidden)
    x = rng.standard_normal(x_shape)
    num_states = 2 if cell == "lstm" else 1
    h0 = [rng.standard_normal((layers * directions, batch, hidden)) for _ in range(num_states)]
    dy = rng.standard_normal(y_shape)
    dh_n = [rng.standard_normal((layers * directions, batch, hidden)) for _ in range(num_states)]

    tx = torch.tensor(x, requires_grad=True)
    th0 = [torch.tensor(h, requires_grad=True) for h in h0]
    if with_state:
        out, final = module(tx, tuple(th0) if cell == "lstm" else th0[0])
    else:
        out, final = module(tx)
    finals = final if cell == "lstm" else (final,)
    loss = (out * torch.from_numpy(dy)).sum()
    for f, d in zip(finals, dh_n):
        loss = loss + (f * torch.from_numpy(d)).sum()
    loss.backward()

    ours_h0 = (tuple(h0) if cell == "lstm" else h0[0]) if with_state else None
    y, h_n = layer.forward(x, ours_h0)
    dx, dh0 = layer.backward(dy, tuple(dh_n) if cell == "lstm" else dh_n[0])
    h_n = h_n if cell == "lstm" else (h_n,)
    dh0 = dh0 if cell == "lstm" else (dh0,)

    what = f"{cell} batch_first={batch_first} h0={with_state}"
    assert_close(y, out.detach().numpy(), F64, f"{what} y")
    for k in range(num_states):
        assert_close(h_n[k], finals[k].detach().numpy(), F64, f"{what} state_n[{k}]")
    assert_close(dx, tx.grad.numpy(), F64, f"{what} dx")
    if with_state:
        for k in range(num_states):
            assert_close(dh0[k], th0[k].grad.numpy(), F64, f"{what} dstate0[{k}]")
    names = [name for name, _ in module.named_parameters()]
    assert sorted(layer.grads) == sorted(names)
    for name, param in module.named_parameters():
        assert_close(layer.grads[name], param.grad.numpy(), F64, f"{what} grads[{name}]")
