"""The MPI side of test_distributed.py: ``mpiexec -n N python distributed_worker.py SCENARIO OUT_DIR``.

Every rank runs the scenario; rank 0 writes OUT_DIR/result.json (and any model files), which the test
checks.  Importing this module (as the test does, for CASES and make_case) imports no MPI.
"""

import json
import os
import sys

import numpy as np
import rnnkit
from rnnkit import ManyToMany, ManyToOne, OneToMany, OneToOne, Seq2Seq

N, STEPS, FEATURES = 23, 4, 3  # 23 samples: batches of 8 leave a last one of 7; shares are uneven

# (model class, task, dtype, fit options): every topology, both tasks, both optimizers, clipping that
# bites (the tiny models' gradient norms start near 1), a batch smaller than the number of ranks.
CASES = [
    (OneToOne, "classification", "float64", {"batch_size": 8, "clip": 0.3}),
    (OneToMany, "regression", "float64", {"batch_size": 8, "optimizer": "sgd", "lr": 0.05}),
    (ManyToOne, "classification", "float64", {"batch_size": 8, "clip": 0.3}),
    (ManyToMany, "classification", "float64", {"batch_size": 5, "clip": None}),
    (Seq2Seq, "classification", "float64", {"batch_size": 8}),
    (ManyToOne, "regression", "float64", {"batch_size": 2, "optimizer": "sgd", "lr": 0.05, "clip": 0.2}),
    (ManyToOne, "classification", "float32", {"batch_size": 8}),
    # sequences of their own lengths (lists), token ids, an end token: each rank's share is weighted
    # by its real targets, not its samples
    (ManyToMany, "classification", "float64", {"batch_size": 5, "ragged": True}),
    (Seq2Seq, "classification", "float64", {"batch_size": 8, "ragged": True}),
]
EPOCHS = 3


def make_case(index):
    """(model, X, Y, fit options) for CASES[index]: the same on every rank and in the test."""
    model_cls, task, dtype, options = CASES[index]
    options = dict(options)
    if options.pop("ragged", False):
        return _ragged_case(index, model_cls, dtype, options)
    rng = np.random.default_rng(index)
    x = rng.standard_normal((N, FEATURES) if model_cls.x_ndim == 2 else (N, STEPS, FEATURES))
    flat = x.reshape(N, -1)
    if model_cls.sequence_targets:
        first = (flat[:, :2] > 0) @ [1, 2]
        y = np.stack([(first + t) % 3 for t in range(STEPS)], axis=1)  # (N, STEPS) labels
        if task == "regression":
            y = np.tanh(flat[:, :STEPS] + flat[:, 1:2])
    else:
        y = (flat[:, 0] + flat[:, 1] > 0).astype(int) if task == "classification" else np.tanh(flat[:, :2].sum(1))
    classes = 3 if model_cls.sequence_targets else 2
    model = model_cls(FEATURES, 6, classes if task == "classification" else 1,
                      cell="gru" if index % 2 else "lstm", task=task, dtype=dtype, seed=10 + index)
    fit = {"epochs": EPOCHS, "lr": 0.02, "verbose": 0, "validation_data": (x[:9], y[:9]), **options}
    return model, x, y, fit


def _ragged_case(index, model_cls, dtype, options):
    """Token ids in lists of lengths 1..STEPS+3; ManyToMany tags each token, Seq2Seq reverses the
    sequence and ends it with an end token."""
    rng = np.random.default_rng(index)
    vocab = 5
    x = [rng.integers(0, vocab, rng.integers(1, STEPS + 4)) for _ in range(N)]
    if model_cls is ManyToMany:
        y, classes, extra = [np.cumsum(s) % 3 for s in x], 3, {}
    else:
        y, classes, extra = [s[::-1] for s in x], vocab + 1, {"end_token": vocab, "bidirectional": True}
    model = model_cls(FEATURES, 6, classes, cell="gru" if index % 2 else "lstm", vocab_size=vocab, dtype=dtype,
                      seed=10 + index, **extra)
    fit = {"epochs": EPOCHS, "lr": 0.02, "verbose": 0, "validation_data": (x[:9], y[:9]), **options}
    return model, x, y, fit


def params_bytes(model):
    return b"".join(np.ascontiguousarray(p).tobytes() for p in model.params.values())


def outcome(call):
    """What call() did on this rank: "ok", or the exception's type and message."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the test checks which
        return [type(exc).__name__, str(exc)]
    return ["ok", ""]


def train(comm, out):
    """Every case, data-parallel: histories, whether the ranks end bitwise alike, the saved models."""
    results = []
    for index in range(len(CASES)):
        model, x, y, fit = make_case(index)
        seen = set()
        forward = model._forward  # (every forward of fit: its training shares and its validation share)

        def recording(*args, _forward=forward, _seen=seen, **kwargs):
            _seen.add(rnnkit.get_num_threads())
            return _forward(*args, **kwargs)

        model._forward = recording
        history = model.fit(x, y, comm=comm, **fit).history_
        every = comm.gather(params_bytes(model), root=0)
        if comm.rank == 0:
            model.save(os.path.join(out, f"case{index}.npz"))
            results.append({"history": history, "identical": all(b == every[0] for b in every),
                            "threads_in_fit": sorted(seen)})
    owned = rnnkit.distributed.threads_per_rank(comm)
    threads_after = comm.gather(rnnkit.get_num_threads(), root=0)
    return {"cases": results, "threads_per_rank": owned, "threads_after": threads_after}


class Recording:
    """An out-of-core array-like (h5py's interface: shape, dtype, indexing) that records every row read."""

    def __init__(self, array):
        self.array, self.rows = array, []
        self.shape, self.dtype = array.shape, array.dtype

    def __getitem__(self, idx):
        self.rows.extend(np.arange(self.shape[0])[idx].tolist())
        return self.array[idx]


def out_of_core(comm, out):
    """fit on a np.memmap the test wrote, behind Recording: which rows each rank read."""
    x = np.load(os.path.join(out, "x.npy"), mmap_mode="r")
    y = np.load(os.path.join(out, "y.npy"))
    data = Recording(x)
    model = ManyToOne(x.shape[2], 6, 3, cell="gru", dtype="float64", seed=5)
    model.fit(data, y, comm=comm, epochs=2, batch_size=16, lr=0.02, verbose=0, validation_split=0.25)
    rows = comm.gather(data.rows, root=0)
    every = comm.gather(params_bytes(model), root=0)
    if comm.rank == 0:
        model.save(os.path.join(out, "model.npz"))
        return {"rows": rows, "identical": all(b == every[0] for b in every), "history": model.history_}
    return {}


class _KillAfter:
    """SIGKILLs this process after ``n`` batches when ``armed`` (mpiexec then ends every rank)."""

    def __init__(self, n, armed):
        self.n, self.armed = n, armed

    def on_batch_end(self, batch, logs):
        self.n -= 1
        if self.n == 0 and self.armed:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


def checkpoint(comm, out):
    """fit(comm=..., checkpoint=out/run.ckpt).  RNNKIT_TEST_KILL_AT=n: rank 0 (the writer) kills itself
    after n batches; RNNKIT_TEST_HIDDEN: another model, whose fit the checkpoint must refuse."""
    from rnnkit.callbacks import EarlyStopping

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((40, 5, 3)), rng.integers(0, 3, 40)
    hidden = int(os.environ.get("RNNKIT_TEST_HIDDEN", "6"))
    model = ManyToOne(3, hidden, 3, cell="lstm", dropout=0.2, num_layers=2, dtype="float64", seed=4)
    kill = int(os.environ.get("RNNKIT_TEST_KILL_AT", "0"))
    stopper = EarlyStopping(monitor="loss", patience=50)
    callbacks = [stopper] + ([_KillAfter(kill, comm.rank == 0)] if kill else [])
    result = outcome(lambda: model.fit(x, y, comm=comm, epochs=4, batch_size=8, verbose=0, callbacks=callbacks,
                                       checkpoint=os.path.join(out, "run.ckpt"), checkpoint_every=2))
    outcomes = comm.gather(result, root=0)
    if result[0] != "ok":
        return {"outcomes": outcomes}
    every = comm.gather(params_bytes(model), root=0)
    if comm.rank == 0:
        model.save(os.path.join(out, "model.npz"))
        return {"outcomes": outcomes, "identical": all(b == every[0] for b in every), "loss": model.history_["loss"],
                "wait": stopper.wait}
    return {}


def errors(comm, out):
    """Bad input on one rank, data that differs between ranks, a NaN on one rank, tampering."""
    rank = comm.rank
    model, x, y, fit = make_case(2)
    bad_y = y.copy()
    if rank == 1:
        bad_y[3] = 7  # output_size is 2
    report = {
        "bad_label": outcome(lambda: model.fit(x, bad_y, comm=comm, **fit)),
        "fewer_samples": outcome(lambda: model.fit(x[:N - rank], y[:N - rank], comm=comm, **fit)),
        "batch_size": outcome(lambda: model.fit(x, y, comm=comm, **{**fit, "batch_size": 8 + rank})),
        "bad_epochs": outcome(lambda: model.fit(x, y, comm=comm, **{**fit, "epochs": 1 - rank})),
        "bad_threads": outcome(lambda: rnnkit.distributed.fit(model, x, y, comm=comm,
                                                              num_threads=None if rank == 0 else -1, **fit)),
    }

    # NaN gradients on rank 1 only, at epoch 2, batch 3: every rank stops there, alike.
    model, x, y, fit = make_case(2)
    calls = [0]
    grads = model._grads

    def poisoned():
        calls[0] += 1
        g = grads()
        if rank == 1 and calls[0] == 3 + 3:  # 3 batches per epoch
            for value in g.values():
                value[...] = np.nan
        return g

    model._grads = poisoned
    report["nan_on_one_rank"] = outcome(lambda: model.fit(x, y, comm=comm, **fit))
    every = comm.gather(params_bytes(model), root=0)
    report["identical_after_nan"] = None if every is None else all(b == every[0] for b in every)
    report["finite_after_nan"] = bool(all(np.isfinite(p).all() for p in model.params.values()))

    # A parameter changed outside fit's steps on rank 1: the checksum after the epoch sees it.
    model, x, y, fit = make_case(2)
    batch_loss = model._batch_loss

    def tampering(*args, **kwargs):
        if rank == 1:
            next(iter(model.params.values())).flat[0] += 1e-12
        return batch_loss(*args, **kwargs)

    model._batch_loss = tampering
    report["tampered"] = outcome(lambda: model.fit(x, y, comm=comm, **fit))

    # The communicator still works: a good fit after all that.
    model, x, y, fit = make_case(2)
    report["good_after"] = outcome(lambda: model.fit(x, y, comm=comm, **fit))
    gathered = comm.gather(report, root=0)
    return None if gathered is None else {"ranks": gathered}


def raises(comm, out):
    """Rank 1 raises in its third batch while rank 0 waits in the all-reduce: the job must end."""
    model, x, y, fit = make_case(2)
    calls = [0]
    batch_loss = model._batch_loss

    def failing(*args, **kwargs):
        calls[0] += 1
        if comm.rank == 1 and calls[0] == 3:
            raise RuntimeError("injected failure on rank 1")
        return batch_loss(*args, **kwargs)

    model._batch_loss = failing
    model.fit(x, y, comm=comm, **{**fit, "epochs": 1000})
    return {"finished": True}  # not reached


def main():
    import rnnkit.distributed  # noqa: F401 - threads_per_rank
    from mpi4py import MPI

    scenario, out = sys.argv[1], sys.argv[2]
    comm = MPI.COMM_WORLD
    result = {"train": train, "errors": errors, "raises": raises, "out_of_core": out_of_core,
              "checkpoint": checkpoint}[scenario](comm, out)
    if comm.rank == 0:
        result["size"] = comm.size
        with open(os.path.join(out, "result.json"), "w") as file:
            json.dump(result, file)


if __name__ == "__main__":
    main()
