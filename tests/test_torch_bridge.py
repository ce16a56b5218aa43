"""rnnkit.torch: drop-in torch.nn.RNN / LSTM / GRU on rnnkit's kernels, against torch's own modules
(skipped without torch).

Outputs and the gradients of the input, h0 / c0 and every parameter for every cell, 1-2 layers, both
directions, batch-first, unbatched and packed (unsorted) input; dropout (torch's draws); training
loops; pickling; replace_rnns; the errors; and that ``import rnnkit`` never imports torch."""

import io
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
rt = pytest.importorskip("rnnkit.torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

CELLS = ("tanh", "relu", "lstm", "gru")
DTYPES = {"f32": (torch.float32, 1e-5), "f64": (torch.float64, 1e-10)}
T, B, I, H = 5, 4, 3, 6
LENGTHS = [3, 5, 1, 4]  # unsorted, one full


def make(cell, *args, ours=True, **kwargs):
    """The rnnkit (ours=True) or torch module of ``cell``."""
    if cell in ("tanh", "relu"):
        kwargs["nonlinearity"] = cell
        cls = rt.RNN if ours else torch.nn.RNN
    else:
        cls = {"lstm": (rt.LSTM, torch.nn.LSTM), "gru": (rt.GRU, torch.nn.GRU)}[cell][0 if ours else 1]
    return cls(*args, **kwargs)


def pair(cell, *args, **kwargs):
    """A torch module and an rnnkit one with the same weights."""
    torch.manual_seed(0)
    theirs = make(cell, *args, ours=False, **kwargs)
    ours = make(cell, *args, **kwargs)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def finals(h_n):
    return list(h_n) if isinstance(h_n, tuple) else [h_n]


def run(module, layout, x, states, lengths):
    """Forward and backward of a fixed random loss over y and every final state; returns
    (y padded, finals, dx, dstates, {parameter: grad})."""
    x = x.detach().clone().requires_grad_(True)
    states = [s.detach().clone().requires_grad_(True) for s in states]
    hx = None if not states else (tuple(states) if len(states) == 2 else states[0])
    if layout == "packed":
        y, h_n = module(pack_padded_sequence(x, lengths, enforce_sorted=False), hx)
        y = pad_packed_sequence(y, total_length=x.shape[0])[0]
    else:
        y, h_n = module(x, hx)
    generator = torch.Generator().manual_seed(1)
    loss = (y * torch.randn(y.shape, generator=generator, dtype=y.dtype)).sum()
    for state in finals(h_n):
        loss = loss + (state * torch.randn(state.shape, generator=generator, dtype=y.dtype)).sum()
    loss.backward()
    grads = {name: p.grad for name, p in module.named_parameters()}
    return y, finals(h_n), x.grad, [s.grad for s in states], grads


def assert_close(got, want, tol, what):
    assert got is not None, what
    assert want is not None, what
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=tol, atol=tol, err_msg=what)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_h0", [True, False], ids=["h0", "no-h0"])
@pytest.mark.parametrize("layout", ["time-major", "batch-first", "unbatched", "packed"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_matches_torch(cell, layers, bidirectional, layout, with_h0, dtype):
    torch_dtype, tol = DTYPES[dtype]
    theirs, ours = pair(cell, I, H, layers, bidirectional=bidirectional, batch_first=layout == "batch-first",
                        dtype=torch_dtype)
    generator = torch.Generator().manual_seed(2)
    shape = {"time-major": (T, B, I), "packed": (T, B, I), "batch-first": (B, T, I), "unbatched": (T, I)}[layout]
    x = torch.randn(shape, generator=generator, dtype=torch_dtype)
    state_shape = (layers * (1 + bidirectional),) + (() if layout == "unbatched" else (B,)) + (H,)
    states = [torch.randn(state_shape, generator=generator, dtype=torch_dtype)
              for _ in range(2 if cell == "lstm" else 1)] if with_h0 else []
    want = run(theirs, layout, x, states, LENGTHS)
    got = run(ours, layout, x, states, LENGTHS)
    assert_close(got[0], want[0], tol, "y")
    for i, (g, w) in enumerate(zip(got[1], want[1])):
        assert_close(g, w, tol, f"state_n[{i}]")
    assert_close(got[2], want[2], tol, "dx")
    for i, (g, w) in enumerate(zip(got[3], want[3])):
        assert_close(g, w, tol, f"dstate0[{i}]")
    assert got[4].keys() == want[4].keys()
    for name in want[4]:
        assert_close(got[4][name], want[4][name], tol, name)


def test_packed_output_is_torchs_structure():
    theirs, ours = pair("gru", I, H, bidirectional=True)
    packed = pack_padded_sequence(torch.randn(T, B, I), LENGTHS, enforce_sorted=False)
    (y_t, h_t), (y_o, h_o) = theirs(packed), ours(packed)
    assert isinstance(y_o, type(y_t))
    for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
        assert torch.equal(getattr(y_o, field), getattr(y_t, field)), field
    torch.testing.assert_close(y_o.data, y_t.data)
    torch.testing.assert_close(h_o, h_t)  # the batch's own order, as torch
    sorted_packed = pack_padded_sequence(torch.randn(T, B, I), sorted(LENGTHS, reverse=True))
    torch.testing.assert_close(ours(sorted_packed)[0].data, theirs(sorted_packed)[0].data)


# ---- the module: constructor, parameters, state ---------------------------------------------------

def test_constructor_is_torchs():
    positional = (3, 4, 2, "relu", False, True, 0.25, True)
    theirs, ours = torch.nn.RNN(*positional), rt.RNN(*positional)
    for attr in ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first", "dropout",
                 "bidirectional", "mode"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert repr(ours) == repr(theirs)
    lstm = rt.LSTM(3, 4, 1, True, True, 0.0, False, 0, None, torch.float64)
    assert lstm.batch_first
    assert lstm.weight_hh_l0.dtype == torch.float64
    assert isinstance(rt.GRU(3, 4), torch.nn.GRU)
    assert isinstance(lstm, torch.nn.LSTM)


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"dropout": 1.5}, ValueError), ({"dropout": -0.1}, ValueError), ({"dropout": True}, ValueError),
    ({"hidden_size": 0}, ValueError), ({"input_size": 2.0}, TypeError), ({"bias": "yes"}, TypeError),
    ({"batch_first": 1}, TypeError), ({"num_layers": 0}, ValueError)])
def test_constructor_errors_are_torchs(kwargs, error):
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(error) as theirs:
        torch.nn.GRU(**args)
    with pytest.raises(error) as ours:
        rt.GRU(**args)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError, match="nonlinearity"):
        rt.RNN(3, 4, nonlinearity="sigmoid")


def test_dropout_with_one_layer_warns_as_torch():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        rt.LSTM(3, 4, dropout=0.5)


@pytest.mark.parametrize("cell", CELLS)
def test_parameters_state_dict_and_init(cell):
    theirs = make(cell, 3, 5, 2, bidirectional=True, ours=False)
    ours = make(cell, 3, 5, 2, bidirectional=True)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in theirs.named_parameters()]
    assert all(isinstance(p, torch.nn.Parameter) for p in ours.parameters())
    bound = 1 / np.sqrt(5)
    assert all(p.abs().max() <= bound for p in ours.parameters())
    assert max(p.abs().max() for p in ours.parameters()) > 0.9 * bound  # U(-bound, bound), not a smaller one
    theirs.load_state_dict(ours.state_dict())  # both ways, unchanged
    ours2 = make(cell, 3, 5, 2, bidirectional=True)
    ours2.load_state_dict(theirs.state_dict())
    for name, p in ours2.named_parameters():
        assert torch.equal(p, getattr(ours, name))
    assert [[w.shape for w in ws] for ws in ours.all_weights] == [[w.shape for w in ws] for ws in theirs.all_weights]
    assert len(ours._flat_weights) == len(theirs._flat_weights)
    ours.flatten_parameters()  # a no-op on the CPU, as torch's


def test_no_bias():
    theirs, ours = pair("lstm", I, H, 2, bias=False, dtype=torch.float64)
    x = torch.randn(T, B, I, dtype=torch.float64)
    got, want = run(ours, "time-major", x, [], None), run(theirs, "time-major", x, [], None)
    assert_close(got[0], want[0], 1e-10, "y")
    for name in want[4]:
        assert_close(got[4][name], want[4][name], 1e-10, name)


def test_after_module_double_and_functional_call():
    theirs, ours = pair("gru", I, H)
    theirs.double()
    ours.double()
    x = torch.randn(T, B, I, dtype=torch.float64)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])
    params = {name: torch.randn_like(p) for name, p in ours.named_parameters()}
    torch.testing.assert_close(torch.func.functional_call(ours, params, (x,))[0],
                               torch.func.functional_call(theirs, params, (x,))[0])
    # afterwards the module's own parameters again (the fast check of _update_flat_weights), and a
    # parameter replaced by assignment is the one used
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])
    replacement = torch.randn_like(ours.weight_hh_l0)
    ours.weight_hh_l0 = torch.nn.Parameter(replacement.clone())
    theirs.weight_hh_l0 = torch.nn.Parameter(replacement.clone())
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], theirs(x)[0])


# ---- autograd: what needs a gradient, and inference -------------------------------------------------

def test_inference_runs_without_autograd():
    theirs, ours = pair("lstm", I, H, 2, bidirectional=True)
    x = torch.randn(T, B, I)
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            y, (h, _) = ours(x)
            want, _ = theirs(x)
        assert y.grad_fn is None
        assert not y.requires_grad
        assert h.grad_fn is None
        torch.testing.assert_close(y, want)
    for p in ours.parameters():
        p.requires_grad_(False)
    y, _ = ours(x)
    assert y.grad_fn is None  # nothing requires grad


def test_gradients_respect_requires_grad():
    theirs, ours = pair("gru", I, H, 2)
    for module in (theirs, ours):
        for name, p in module.named_parameters():
            p.requires_grad_(name.endswith("l1"))
    x = torch.randn(T, B, I)  # no grad for x either
    for module in (theirs, ours):
        module(x)[0].sum().backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        if name.endswith("l1"):
            torch.testing.assert_close(p.grad, q.grad)
        else:
            assert p.grad is None, name


def test_unused_outputs_and_expanded_gradients():
    """Only h_n used (dy is None inside), y.sum() (an expanded, zero-stride dy)."""
    theirs, ours = pair("lstm", I, H, dtype=torch.float64)
    x = torch.randn(T, B, I, dtype=torch.float64)
    for loss in (lambda y, hc: hc[1].sum(), lambda y, hc: y.sum()):
        grads = []
        for module in (theirs, ours):
            module.zero_grad()
            loss(*module(x)).backward()
            grads.append([p.grad.clone() for p in module.parameters()])
        for g, w in zip(grads[1], grads[0]):
            torch.testing.assert_close(g, w)


def test_in_place_change_of_the_output_is_refused():
    ours = rt.GRU(I, H)
    y, _ = ours(torch.randn(T, B, I))
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_gradients_accumulate_as_torch():
    """Two backwards without zero_grad add up; the two bias gradients are separate tensors."""
    theirs, ours = pair("tanh", I, H, dtype=torch.float64)
    x = torch.randn(T, B, I, dtype=torch.float64)
    for module in (theirs, ours):
        for _ in range(3):
            module(x)[1].sum().backward()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
    assert ours.bias_ih_l0.grad.data_ptr() != ours.bias_hh_l0.grad.data_ptr()
    for module in (theirs, ours):  # the same graph twice (retain_graph), and torch's refusal of a third
        module.zero_grad()
        y, _ = module(x)
        y.sum().backward(retain_graph=True)
        y.sum().backward()
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            y.sum().backward()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


# ---- dropout -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.4, 1.0])
@pytest.mark.parametrize("layout", ["time-major", "packed"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dropout_draws_as_torch(cell, layout, p):
    """torch's own noise from torch's generator, in torch's layout: the very same draws (and gradients)."""
    theirs, ours = pair(cell, I, H, 3, dropout=p, bidirectional=True, dtype=torch.float64)
    x = torch.randn(T, B, I, dtype=torch.float64)
    results = []
    for module in (theirs, ours):
        torch.manual_seed(7)
        results.append(run(module, layout, x, [], LENGTHS))
    got, want = results[1], results[0]
    assert_close(got[0], want[0], 1e-10, "y")
    assert_close(got[2], want[2], 1e-10, "dx")
    for name in want[4]:
        assert_close(got[4][name], want[4][name], 1e-10, name)


def test_dropout_is_reproducible_statistical_and_off_in_eval():
    p = 0.3
    ours = rt.RNN(8, 64, 2, nonlinearity="relu", dropout=p)
    for parameter in ours.parameters():
        parameter.requires_grad_(False)
    with torch.no_grad():  # layer 1 passes on layer 0's (dropped) output: relu(mask * y0) = mask * y0
        ours.weight_ih_l1.copy_(torch.eye(64, 64))
        ours.weight_hh_l1.zero_()
        ours.bias_ih_l1.zero_()
        ours.bias_hh_l1.zero_()
    x = torch.randn(20, 16, 8)
    clean = ours.eval()(x)[0]
    ours.train()
    torch.manual_seed(3)
    first = ours(x)[0]
    torch.manual_seed(3)
    assert torch.equal(ours(x)[0], first)  # torch.manual_seed makes it reproducible
    dropped = first[clean > 0]
    kept = dropped != 0
    assert abs(1 - kept.float().mean().item() - p) < 0.02  # fraction dropped
    ratio = first[clean > 0][kept] / clean[clean > 0][kept]
    torch.testing.assert_close(ratio, torch.full_like(ratio, 1 / (1 - p)))  # inverted-dropout scaling
    ours.eval()
    assert torch.equal(ours(x)[0], ours(x)[0])
    torch.testing.assert_close(ours(x)[0], clean)


# ---- training loops, pickling, replace_rnns ---------------------------------------------------------

class Classifier(torch.nn.Module):
    def __init__(self, rnn, classes=3):
        super().__init__()
        self.rnn = rnn
        self.head = torch.nn.Linear(rnn.hidden_size * (2 if rnn.bidirectional else 1), classes)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y[:, -1])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_training_loop_trains_as_torch(cell):
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(48, T, I, generator=generator, dtype=torch.float64)
    labels = (data[:, :, 0].sum(1) > 0).long() + (data[:, :, 1].sum(1) > 0).long()  # learnable: 3 classes
    losses = []
    for ours in (False, True):
        torch.manual_seed(0)  # the same initial weights (torch's constructor), batches and dropout draws
        model = Classifier(make(cell, I, H, 2, batch_first=True, dropout=0.2, dtype=torch.float64, ours=ours))
        model.head.double()
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data, labels), batch_size=16,
                                             shuffle=True)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        history = []
        for _ in range(3):
            for xb, yb in loader:
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(xb), yb)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                history.append(loss.item())
        losses.append(history)
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-10)
    assert np.mean(losses[1][-3:]) < np.mean(losses[1][:3])  # and it learns


def test_torch_save_and_load(tmp_path):
    model = Classifier(rt.GRU(I, H, 2, batch_first=True, bidirectional=True))
    x = torch.randn(B, T, I)
    with torch.no_grad():
        want = model(x)
    path = tmp_path / "model.pt"
    torch.save(model, path)
    loaded = torch.load(path, weights_only=False)
    assert type(loaded.rnn) is rt.GRU
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), want)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = Classifier(torch.nn.GRU(I, H, 2, batch_first=True, bidirectional=True))  # torch's, from ours
    fresh.load_state_dict(torch.load(buffer))
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), want)
    loaded.rnn(x)[0].sum().backward()  # a loaded module trains
    assert loaded.rnn.weight_hh_l1_reverse.grad is not None


class Nested(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.ModuleDict({"words": torch.nn.LSTM(I, H, batch_first=True),
                                            "chars": torch.nn.Sequential(torch.nn.GRU(H, H, 2, batch_first=True))})
        self.decoder = torch.nn.RNN(H, H, nonlinearity="relu", batch_first=True)
        self.head = torch.nn.Linear(H, 2)

    def forward(self, x):
        y, _ = self.encoder["words"](x)
        y, _ = self.encoder["chars"][0](y)
        y, _ = self.decoder(y)
        return self.head(y)


def test_replace_rnns():
    model = Nested()
    x = torch.randn(B, T, I)
    want = model(x)
    parameters = list(model.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    replaced = rt.replace_rnns(model)
    assert list(replaced) == ["encoder.words", "encoder.chars.0", "decoder"]
    assert [type(m) for m in replaced.values()] == [rt.LSTM, rt.GRU, rt.RNN]
    assert replaced["decoder"] is model.decoder
    assert model.decoder.nonlinearity == "relu"
    assert list(model.parameters()) == parameters  # the same Parameter objects
    torch.testing.assert_close(model(x), want)
    model(x).sum().backward()
    optimizer.step()  # the optimizer built before still updates them
    assert rt.replace_rnns(model) == {}  # nothing left to replace
    root = torch.nn.GRU(I, H).eval().double()
    assert list(rt.replace_rnns(root)) == [""]
    assert type(root) is rt.GRU
    assert not root.training
    assert root.weight_hh_l0.dtype == torch.float64


def test_replace_rnns_refuses_what_rnnkit_cannot_run_before_changing_anything():
    model = torch.nn.Sequential(torch.nn.GRU(I, H), torch.nn.LSTM(I, H, proj_size=2))
    with pytest.raises(ValueError, match=r"^1 \(LSTM\): proj_size=2"):
        rt.replace_rnns(model)
    assert type(model[0]) is torch.nn.GRU
    half = torch.nn.Sequential(torch.nn.GRU(I, H).half())
    with pytest.raises(ValueError, match=r"0 \(GRU\): parameter weight_ih_l0 is torch.float16"):
        rt.replace_rnns(half)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        rt.replace_rnns([torch.nn.GRU(I, H)])

    class Custom(torch.nn.GRU):
        pass

    assert rt.replace_rnns(torch.nn.Sequential(Custom(I, H))) == {}  # subclasses keep their own forward


# ---- errors, and the inputs that must still work ----------------------------------------------------

def test_bad_input_gets_torchs_errors():
    theirs, ours = pair("gru", I, H)
    for bad in (torch.randn(T, B, I + 1), torch.randn(T, B, I, 1), torch.randn(T, B, I, dtype=torch.float64),
                torch.randint(0, 3, (T, B, I))):
        with pytest.raises((ValueError, RuntimeError)) as want:
            theirs(bad)
        with pytest.raises(want.type) as got:
            ours(bad)
        assert str(got.value) == str(want.value)
    for bad_h0 in (torch.randn(1, B + 1, H), torch.randn(2, B, H), torch.randn(B, H)):
        with pytest.raises(RuntimeError) as want:
            theirs(torch.randn(T, B, I), bad_h0)
        with pytest.raises(RuntimeError) as got:
            ours(torch.randn(T, B, I), bad_h0)
        assert str(got.value) == str(want.value)
    with pytest.raises(RuntimeError, match="hx has dtype torch.float64"):
        ours(torch.randn(T, B, I), torch.randn(1, B, H, dtype=torch.float64))
    lstm = rt.LSTM(I, H)
    with pytest.raises(RuntimeError, match=r"Expected hidden\[1\] size \(1, 4, 6\), got \[1, 4, 5\]"):
        lstm(torch.randn(T, B, I), (torch.randn(1, B, H), torch.randn(1, B, H - 1)))
    with pytest.raises(TypeError, match="tuple"):
        lstm(torch.randn(T, B, I), torch.randn(1, B, H))
    with pytest.raises(TypeError, match="input must be a Tensor"):
        ours(np.zeros((T, B, I), np.float32))


def test_devices_other_than_the_cpu_are_refused():
    for device in ("meta", "cuda", torch.device("cuda", 0)):
        with pytest.raises(ValueError, match="device: rnnkit.torch.GRU runs on the CPU only"):
            rt.GRU(I, H, device=device)
    with pytest.raises(ValueError, match="device"):
        rt.LSTM(I, H, 1, True, False, 0.0, False, 0, "meta")  # positional, as torch's
    rt.LSTM(I, H, device="cpu")
    ours = rt.GRU(I, H)
    with pytest.raises(RuntimeError, match="input is on device meta"):
        ours(torch.randn(T, B, I, device="meta"))
    with pytest.raises(RuntimeError, match="hx is on device meta"):
        ours(torch.randn(T, B, I), torch.randn(1, B, H, device="meta"))
    ours.to("meta")
    with pytest.raises(RuntimeError, match="parameter weight_ih_l0 is on device meta"):
        ours(torch.randn(T, B, I))


def test_unsupported_dtypes_and_proj_size_are_refused():
    with pytest.raises(ValueError, match="torch.float16"):
        rt.GRU(I, H, dtype=torch.float16)
    with pytest.raises(ValueError, match="bfloat16"):
        rt.LSTM(I, H, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="proj_size"):
        rt.LSTM(I, H, proj_size=2)
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):  # torch's own
        rt.GRU(I, H, proj_size=2)
    ours = rt.GRU(I, H).half()
    with pytest.raises(ValueError, match="parameter weight_ih_l0 has dtype torch.float16"):
        ours(torch.randn(T, B, I).half())


def test_non_contiguous_and_expanded_tensors_give_torchs_results():
    theirs, ours = pair("lstm", I, H, bidirectional=True, dtype=torch.float64)
    base = torch.randn(B, T, I, dtype=torch.float64)
    h0 = torch.randn(1, 1, H, dtype=torch.float64).expand(2, B, H)  # zero strides
    c0 = torch.randn(2, H, B, dtype=torch.float64).transpose(1, 2)
    inputs = [base.transpose(0, 1), torch.randn(1, 1, I, dtype=torch.float64).expand(T, B, I),
              torch.randn(T, B, 2 * I, dtype=torch.float64)[..., ::2]]
    for x in inputs:
        want, got = run(theirs, "time-major", x, [h0, c0], None), run(ours, "time-major", x, [h0, c0], None)
        assert_close(got[0], want[0], 1e-10, "y")
        assert_close(got[2], want[2], 1e-10, "dx")
        assert_close(got[3][0], want[3][0], 1e-10, "dh0")
        for name in want[4]:
            assert_close(got[4][name], want[4][name], 1e-10, name)
    weight = torch.randn(4 * H, 2 * H, dtype=torch.float64)[:, ::2]  # a non-contiguous parameter
    with torch.no_grad():
        theirs.weight_hh_l0.set_(weight.clone())
        ours.weight_hh_l0.set_(weight)
    torch.testing.assert_close(ours(base.transpose(0, 1))[0], theirs(base.transpose(0, 1))[0])


def test_not_twice_differentiable():
    ours = rt.GRU(I, H)
    x = torch.randn(T, B, I, requires_grad=True)
    y, _ = ours(x)
    (dx,) = torch.autograd.grad(y, x, torch.ones_like(y, requires_grad=True), create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        dx.sum().backward()


# ---- torch stays optional ------------------------------------------------------------------------------

def run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


def test_import_rnnkit_does_not_import_torch():
    done = run_python("import sys, rnnkit; assert 'torch' not in sys.modules, 'torch imported'; "
                      "assert 'rnnkit.torch' not in sys.modules")
    assert done.returncode == 0, done.stderr


def test_import_rnnkit_torch_without_torch_names_the_fix():
    done = run_python("import sys; sys.modules['torch'] = None\n"
                      "try:\n    import rnnkit.torch\nexcept ImportError as e:\n    print(e)\n")
    assert done.returncode == 0, done.stderr
    assert "pip install torch" in done.stdout


def test_the_module_name_shadows_nothing():
    assert rt.torch is sys.modules["torch"]
    assert rt.torch.nn.GRU is torch.nn.GRU
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import rnnkit
    assert rnnkit.torch is rt


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_a_weight_changed_in_place_before_backward_is_refused_as_torch(cell):
    """The kernels read the weights in place (no copy per call): a backward after an in-place change
    of one would use the new weights, so torch's version check refuses it, as for torch's module."""
    for ours in (False, True):
        module = make(cell, 3, 4, ours=ours)
        y, _ = module(torch.randn(5, 2, 3))
        with torch.no_grad():
            module.weight_hh_l0.add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_an_input_without_grad_skips_dx_and_changes_no_other_gradient(cell, layout):
    """x that needs no gradient (the usual training loop): the kernels skip dx's products; every
    parameter's gradient and dh0 are bitwise those of a backward that computes dx."""
    torch.manual_seed(0)
    module = make(cell, I, H, num_layers=2, bidirectional=True)
    x0 = torch.randn(T, B, I)
    grads = []
    for needs_x in (True, False):
        module.zero_grad()
        x = x0.clone().requires_grad_(needs_x)
        h0 = torch.zeros(4, B, H, requires_grad=True)
        hx = (h0, torch.zeros(4, B, H)) if cell == "lstm" else h0
        inp = pack_padded_sequence(x, LENGTHS, enforce_sorted=False) if layout == "packed" else x
        y, _ = module(inp, hx)
        (y.data if layout == "packed" else y).square().sum().backward()
        assert (x.grad is not None) == needs_x
        grads.append([p.grad.clone() for p in module.parameters()] + [h0.grad.clone()])
    for a, b in zip(*grads):
        assert torch.equal(a, b)
