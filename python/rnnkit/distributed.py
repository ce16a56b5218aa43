"""Synchronous data-parallel training over MPI: ``model.fit(X, Y, comm=MPI.COMM_WORLD)``.

Launch the same script on every rank (``mpiexec -n 4 python train.py``, ``srun python train.py``);
every rank passes the same X and Y (it loads the same file), and::

    from mpi4py import MPI
    history = model.fit(X, Y, epochs=10, batch_size=256, comm=MPI.COMM_WORLD).history_
    if MPI.COMM_WORLD.rank == 0:
        model.save("model.npz")            # any single process can Model.load it

trains the model every rank holds to the losses single-process ``fit`` reaches on the same data
(float64: to rounding, ~1e-15 relative per step), each rank computing on 1/size of every batch:

- Rank 0's parameters and random state are broadcast first, so all ranks start alike (even with
  ``seed=None``) and draw the same permutation each epoch: the global batches are single-process
  fit's.  Each rank takes its contiguous share of every global batch (shares differ by at most one
  sample; the last batch may be smaller).
- After each backward pass, a rank writes its gradients times (its samples / the batch's samples),
  and its loss times the same weight, into one contiguous buffer: one ``Allreduce`` (sum) per step
  then gives every rank the global batch's gradient and loss as one process computes them, up to
  rounding (every loss is a mean over samples, and every sample carries the same number of terms).
- Gradient clipping, the non-finite check and the optimizer step all read the all-reduced buffer,
  so every rank takes the same decisions and the same step.  A CRC-32 of the parameters is compared
  across ranks after every epoch; a difference raises RuntimeError on every rank.
- Validation data is split across ranks too; its loss and score are reduced to the global values.
  Only rank 0 shows progress.  history gains "comm_time": seconds per epoch in the gradient
  all-reduce on this rank (which includes waiting for slower ranks).

Failures: before training, every rank checks its arguments and data and all ranks learn the
outcome together (one allgather): bad input on one rank raises its own error there and an error of
the same type naming that rank on the others, and data or settings that differ between ranks (X and
Y CRC-32 compared) raise the same ValueError on every rank, instead of a deadlock.  An exception on
one rank during training (anything the others cannot see coming) prints its traceback and calls
``comm.Abort(1)``: the launcher then ends every rank, exit status non-zero.

Threads: each rank's kernels get the cores it owns — the node's cores shared among the ranks on that
node, or the cores the launcher bound it to (``threads_per_rank``) — unless ``rnnkit.set_num_threads``
was called, OMP_NUM_THREADS is set, or ``rnnkit.distributed.fit(..., num_threads=n)`` says otherwise; NumPy's BLAS runs
on one thread beside the C++ kernels (with threadpoolctl).

This module imports mpi4py only when one of its functions is called with a communicator.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import time
import traceback
import zlib

import numpy as np

from . import _core, runtime
from ._model import Model, diverged, r2_from_residual
from ._validation import check_num_threads
from .optim import Schedule, clip_grad_norm, grad_norm

__all__ = ["fit", "shard", "threads_per_rank"]

# Model.fit's keyword arguments and defaults: the one place they are written down.
_FIT_OPTIONS = {name: p.default for name, p in inspect.signature(Model.fit).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("comm", "y")}


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("rnnkit.distributed needs mpi4py and an MPI library: pip install 'rnnkit[mpi]', or "
                          "mpi4py built against the cluster's MPI (see the README)") from exc
    return MPI


def _check_comm(comm):
    MPI = _mpi()
    if not isinstance(comm, MPI.Intracomm) or comm == MPI.COMM_NULL:
        raise TypeError(f"comm must be an mpi4py intracommunicator such as MPI.COMM_WORLD, got {comm!r}")
    return MPI


def shard(count: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s contiguous share of ``count`` items split over ``size`` ranks (shares differ by
    at most one; with fewer items than ranks, some shares are empty)."""
    return slice(count * rank // size, count * (rank + 1) // size)


def _share_of_cores(cpus_by_rank: list, rank: int) -> int:
    """The threads for node-local rank ``rank`` given every local rank's CPU set: the CPUs of the
    ranks whose sets overlap its own, divided among them.  Unbound ranks (all sets equal) split the
    node; ranks bound to their own cores keep theirs."""
    mine = set(cpus_by_rank[rank])
    sharing = [set(cpus) for cpus in cpus_by_rank if mine & set(cpus)] or [mine]
    return max(1, len(set().union(*sharing)) // len(sharing))


def _own_cpus() -> list:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS: no affinity masks
        return list(range(os.cpu_count() or 1))


def threads_per_rank(comm) -> int:
    """The kernel threads this rank of ``comm`` owns: its node's cores divided by the ranks of ``comm``
    on that node (or the cores the launcher bound it to).  Collective: every rank must call it."""
    MPI = _check_comm(comm)
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return _share_of_cores(node.allgather(_own_cpus()), node.Get_rank())
    finally:
        node.Free()


@contextlib.contextmanager
def _threads(n, backend):
    """The kernels on n threads (None: as they are) for the duration; BLAS on as many with the NumPy
    backend (the C++ backend keeps it at one: Model.fit does that)."""
    previous = _core.get_num_threads()
    if n is not None:
        _core.set_num_threads(n)
    try:
        if backend == "numpy":
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:
                limits = contextlib.nullcontext()
            else:
                limits = threadpool_limits(_core.get_num_threads(), user_api="blas")
            with limits:
                yield
        else:
            yield
    finally:
        _core.set_num_threads(previous)


def _on_all_ranks(exc: BaseException) -> BaseException:
    """Mark an error that every rank raises at the same point (from all-reduced values): no abort."""
    exc.rnnkit_all_ranks = True
    return exc


def _params_crc(params: dict) -> int:
    crc = 0
    for array in params.values():
        crc = zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"), crc)
    return crc


def _weights_crc(weights) -> int:
    """A CRC-32 of a weighted fit's weights (the sample weights' totals and the class weights)."""
    arrays = {"totals": weights.totals} if weights.table is None else {"totals": weights.totals, "table": weights.table}
    return _params_crc(arrays)


def fit(model, X, Y, *, comm, num_threads=None, **options) -> dict:
    """``model.fit(X, Y, comm=comm, **options)``, data-parallel over the ranks of ``comm``.

    ``options`` are Model.fit's (epochs, batch_size, lr, optimizer, clip, validation_data, verbose,
    schedule, callbacks, validation_split, shuffle, class_weight, sample_weight), the same on every
    rank.  Every rank runs the schedule and the callbacks, which must be of the same types on every
    rank (compared before training, as the data are); a ModelCheckpoint then writes on each rank (each
    write is atomic: one path for all is safe, or put the rank in it).  A ``model.stop_training`` set
    on any rank stops every rank (one small all-reduce after each batch when a callback has
    on_batch_end, and after each epoch).  ``num_threads`` sets this rank's kernel threads during fit (default: see
    ``threads_per_rank``, unless ``rnnkit.set_num_threads`` was called or OMP_NUM_THREADS is set).
    Returns the model, as Model.fit does; ``model.history_`` is identical on every rank except the
    timings, and adds "comm_time".
    """
    _check_comm(comm)
    trainer = _Trainer(model, comm)
    owned = threads_per_rank(comm)  # collective: before anything that can fail on one rank only
    try:
        if not isinstance(model, Model):
            raise TypeError(f"model must be an rnnkit model (OneToOne, ..., Seq2Seq), got {type(model).__name__}")
        unknown = sorted(set(options) - set(_FIT_OPTIONS))
        if unknown:
            raise TypeError(f"fit got unexpected keyword arguments {unknown}; it takes {sorted(_FIT_OPTIONS)}")
        if num_threads is not None:
            threads = check_num_threads(num_threads)
            if not 1 <= threads <= _core.MAX_THREADS:
                raise ValueError(f"num_threads must be between 1 and {_core.MAX_THREADS}, got {num_threads}")
        elif runtime._num_threads_set or os.environ.get("OMP_NUM_THREADS"):
            threads = None  # the user's choice stands
        else:
            threads = owned
        with _threads(threads, model.backend):
            return model._fit(X, Y, train=trainer.train, **{**_FIT_OPTIONS, **options})
    except BaseException as exc:
        if not trainer.checked:  # failed before the collective check: the other ranks wait in it
            trainer.check(error=exc)
        raise


class _RankSteps:
    """Model._train's work per batch on this rank (the interface of _model._LocalSteps): this rank's
    share of the batch, one Allreduce of every gradient and the loss, the same decisions and the same
    optimizer step on every rank."""

    def __init__(self, trainer, x, y, opt, clip, buffer, views, weights=None):
        self.trainer, self.x, self.y, self.opt, self.clip = trainer, x, y, opt, clip
        self.buffer, self.views, self.weights = buffer, views, weights
        self.communicating = 0.0  # seconds in the all-reduce this epoch

    def batch(self, idx, epoch: int, b: int, batches: int) -> float:
        t, MPI = self.trainer, _mpi()
        with np.errstate(over="ignore", invalid="ignore"):
            count = self.y.count(idx) if self.weights is None else float(self.weights.totals[idx].sum())
            t._local_gradient(self.x, self.y, idx[shard(len(idx), t.rank, t.size)], count, self.buffer,
                              self.views, self.weights)
            before = time.perf_counter()
            t.comm.Allreduce(MPI.IN_PLACE, self.buffer, op=MPI.SUM)
            self.communicating += time.perf_counter() - before
            loss = float(self.buffer[-1])
            norm = clip_grad_norm(self.views, self.clip) if self.clip is not None else grad_norm(self.views)
        if not (np.isfinite(loss) and np.isfinite(norm)):  # all-reduced values: every rank agrees
            raise _on_all_ranks(diverged(epoch, b, batches, loss, norm))
        self.opt.step(self.views)
        t.model.fitted = True
        return loss

    def validate(self, xv, yv) -> tuple:
        return self.trainer._validate(xv, yv)

    def end_epoch(self, epoch: int, history: dict) -> str:
        t = self.trainer
        t._check_identical(t.model.params, epoch)
        history["comm_time"].append(self.communicating)
        self.communicating = 0.0
        return f" ({t.size} ranks, all-reduce {history['comm_time'][-1]:.2f}s)"

    def stopping(self, flag: bool) -> bool:
        """Stop when a callback set model.stop_training on any rank (every rank then stops alike)."""
        return bool(self.trainer.comm.allreduce(bool(flag), op=_mpi().LOR))


class _Trainer:
    """One data-parallel fit: the collective check of the inputs, then the training loop."""

    def __init__(self, model, comm):
        self.model, self.comm = model, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.checked = False

    # -- before training: every rank checks, then all learn together whether any failed -------------

    def check(self, error=None, fingerprint=None) -> None:
        """Allgather each rank's error (or None) and fingerprint of its arguments; raise on every rank
        if any rank failed or the fingerprints differ.  The failing rank itself returns (it raises its
        own exception)."""
        report = None
        if error is not None:
            kind = "TypeError" if isinstance(error, TypeError) else \
                "ValueError" if isinstance(error, ValueError) else "RuntimeError"
            report = (kind, f"{type(error).__name__}: {error}")
        reports = self.comm.allgather((report, fingerprint))
        self.checked = True
        failed = [(rank, r) for rank, (r, _) in enumerate(reports) if r is not None]
        if failed:
            if error is not None:
                return
            rank, (kind, message) = failed[0]
            others = f" (and on {len(failed) - 1} other ranks)" if len(failed) > 1 else ""
            raise {"TypeError": TypeError, "ValueError": ValueError}.get(kind, RuntimeError)(
                f"fit failed on rank {rank} of {self.size}{others}: {message}")
        first = reports[0][1]
        for key, value in first.items():
            for rank, (_, theirs) in enumerate(reports[1:], start=1):
                if theirs[key] != value:
                    raise ValueError(f"every rank must call fit with the same {key}: rank {rank} has "
                                     f"{theirs[key]}, rank 0 has {value}")

    def _fingerprint(self, x, y, opt, epochs, batch_size, clip, validation, loop) -> dict:
        model = self.model
        init = {k: v for k, v in model._init_args().items() if k != "seed"}  # rank 0's weights are broadcast
        fingerprint = {
            "model": f"{type(model).__name__}({init})",
            "X": x.describe("X"),
            "Y": y.describe("Y"),
            "epochs": f"epochs={epochs}",
            "batch_size": f"batch_size={batch_size}",
            "clip": f"clip={clip!r}",
            "optimizer": f"{type(opt).__name__}(lr={opt.lr!r}"
                         + (f", momentum={opt.momentum!r})" if hasattr(opt, "momentum") else ")"),
            "validation_data": "no validation data" if validation is None else
            f"{validation[0].describe('X_val')} and {validation[1].describe('Y_val')}",
        }
        if loop is not None:  # (None: called as before, without fit's newer options)
            schedule = loop.schedule
            fingerprint.update({
                "shuffle": f"shuffle={loop.shuffle}",
                "sample weights": "no weights" if loop.weights is None else
                f"weights with CRC-32 {_weights_crc(loop.weights):#010x}",
                "schedule": repr(schedule) if schedule is None or isinstance(schedule, Schedule) else
                f"a {type(schedule).__qualname__} {getattr(schedule, '__qualname__', '')}",
                "callbacks": f"callbacks {[type(c).__qualname__ for c in loop.callbacks]}",
            })
        return fingerprint

    # -- training -----------------------------------------------------------------------------------

    def train(self, x, y, opt, history, epochs, batch_size, clip, validation, bucket, verbose, loop=None,
              checkpoint=None):
        """Model._train's contract, data-parallel (called by Model._fit once its checks passed);
        ``checkpoint`` a _model._Checkpoint with this communicator (rank 0 reads and writes it)."""
        error = fingerprint = None
        try:
            fingerprint = self._fingerprint(x, y, opt, epochs, batch_size, clip, validation, loop)
        except Exception as exc:
            error = exc
        self.check(error, fingerprint)
        if error is not None:
            raise error
        with self._abort_on_error():
            self._train(x, y, opt, history, epochs, batch_size, clip, validation, bucket,
                        verbose if self.rank == 0 else 0, loop, checkpoint)

    @contextlib.contextmanager
    def _abort_on_error(self):
        """An exception on one rank would leave the others blocked in the next collective for ever:
        report it and end the whole job, unless every rank raises it together."""
        try:
            yield
        except BaseException as exc:
            if self.size == 1 or getattr(exc, "rnnkit_all_ranks", False):
                raise
            sys.stdout.flush()
            print(f"rnnkit.distributed: rank {self.rank} of {self.size} failed during fit; aborting every rank "
                  f"(MPI_Abort)\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            self.comm.Abort(1)

    def _broadcast_start(self, params: dict, buffer: np.ndarray) -> None:
        """Rank 0's parameters and random state to every rank."""
        values = buffer[:-1]
        if self.rank == 0:
            np.concatenate([p.ravel() for p in params.values()], out=values)
        self.comm.Bcast(values, root=0)
        offset = 0
        for param in params.values():
            param[...] = values[offset:offset + param.size].reshape(param.shape)
            offset += param.size
        rng = self.model._rng.bit_generator
        rng.state = self.comm.bcast(rng.state if self.rank == 0 else None, root=0)

    def _train(self, x, y, opt, history, epochs, batch_size, clip, validation, bucket, verbose, loop=None,
               checkpoint=None):
        model = self.model
        params = model.params
        # One contiguous buffer: every gradient, then the loss; the views are the global gradients.
        buffer = np.empty(sum(p.size for p in params.values()) + 1, dtype=model.dtype)
        views, offset = {}, 0
        for name, param in params.items():
            views[name] = buffer[offset:offset + param.size].reshape(param.shape)
            offset += param.size
        self._broadcast_start(params, buffer)

        history["comm_time"] = []
        weights = None if loop is None else loop.weights
        model._train(x, y, opt, history, epochs, batch_size, clip, validation, bucket, verbose,
                     steps=_RankSteps(self, x, y, opt, clip, buffer, views, weights), loop=loop, checkpoint=checkpoint)

    def _local_gradient(self, x, y, idx, count, buffer, views, weights=None) -> None:
        """This rank's share ``idx`` of a global batch of ``count`` real targets (or with ``weights``,
        of total weight ``count``): its gradients and loss, weighted by its share of the batch's
        targets (or weight), into ``buffer`` (zeros for an empty share)."""
        model = self.model
        if len(idx) == 0:
            buffer.fill(0)
            return
        if weights is None:
            loss = model._batch_loss(x.take(idx), y.take(idx), train=True)
            weight = y.count(idx) / count
        else:  # Σ over ranks of (W_rank / W) · (Σ_rank w·loss / W_rank) = Σ w·loss / W
            yb = y.take(idx)
            loss = model._batch_loss(x.take(idx), yb, train=True, weights=weights.of(yb, idx))
            weight = float(weights.totals[idx].sum()) / count if count > 0 else 0.0
        grads = model._grads()
        for name, view in views.items():
            np.multiply(grads[name], weight, out=view)
        buffer[-1] = loss * weight

    def _validate(self, xv, yv):
        """The validation loss and score of the whole validation set, each rank computing a share."""
        MPI = _mpi()
        model = self.model
        part = shard(len(xv), self.rank, self.size)
        xs, ys = xv.subset(part), yv.subset(part)
        sums = np.zeros(4)  # Σ loss·targets, targets, Σ right labels (or squared residuals), labels scored
        if len(xs):
            sums[0], sums[1], right, truth = model._loss_and_score_parts(xs, ys)
            sums[2] = right
            sums[3] = truth if model.task == "classification" else truth.shape[0]
        self.comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        val_loss = float(sums[0] / max(sums[1], 1))
        if model.task == "classification":
            return val_loss, float(sums[2] / sums[3]) if sums[3] else float("nan")
        # R² as Model.score computes it: the total sum of squares needs no communication.
        return val_loss, r2_from_residual(float(sums[2]), model._real_targets(yv))

    def _check_identical(self, params: dict, epoch: int) -> None:
        crcs = self.comm.allgather(_params_crc(params))
        differ = [rank for rank, crc in enumerate(crcs) if crc != crcs[0]]
        if differ:
            raise _on_all_ranks(RuntimeError(
                f"the parameters differ between ranks after epoch {epoch + 1}: CRC-32 {crcs[0]:#010x} on rank 0, "
                + ", ".join(f"{crcs[r]:#010x} on rank {r}" for r in differ)
                + "; the ranks no longer train one model (were the parameters changed outside fit on some "
                  "ranks, or does this MPI's sum give different results on different ranks?)"))
