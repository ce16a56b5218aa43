// rnnkit._core: argument conversion, GIL release, no math.
//
// The user-facing validation (array-likes, dtype rules, messages) is python/rnnkit/functional.py.
// This layer re-checks the structure of every array it is handed — dtype, shape, strides, writability
// — so that no call, even a direct one to this private module, can make the kernels touch memory
// they do not own.  Outputs are allocated by the caller and filled in place.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <sstream>
#include <string>

#include "rnnkit/rnnkit.hpp"
#include "profile.hpp"
#include "team.hpp"

namespace py = pybind11;

namespace {

std::string shape_str(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

template <typename Real>
void check_array(const py::array& a, const char* name, std::initializer_list<int64_t> shape, bool writable) {
  // array_t's check compares dtypes with PyArray_EquivTypes: a byte-swapped float32 does not pass.
  if (!py::isinstance<py::array_t<Real>>(a))
    throw py::type_error(std::string(name) + " must have dtype " + std::string(py::str(py::dtype::of<Real>())) +
                         ", got " + std::string(py::str(a.dtype())));
  bool ok = a.ndim() == py::ssize_t(shape.size());
  int i = 0;
  for (int64_t d : shape) ok = ok && a.shape(i++) == d;
  if (!ok) {
    std::ostringstream s;
    s << name << " must have shape (";
    i = 0;
    for (int64_t d : shape) s << (i++ ? ", " : "") << d;
    s << (shape.size() == 1 ? ",)" : ")") << ", got " << shape_str(a);
    throw py::value_error(s.str());
  }
  if (writable && !a.writeable()) throw py::value_error(std::string(name) + " must be writable");
}

// A dense (C-contiguous) array, or None when allowed.
template <typename Real>
const Real* dense_in(const py::object& obj, const char* name, std::initializer_list<int64_t> shape, bool optional) {
  if (obj.is_none()) {
    if (optional) return nullptr;
    throw py::type_error(std::string(name) + " must be an array, got None");
  }
  if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(name) + " must be a numpy array");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  check_array<Real>(a, name, shape, false);
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + " must be C-contiguous");
  return static_cast<const Real*>(a.data());
}

template <typename Real>
Real* dense_out(const py::object& obj, const char* name, std::initializer_list<int64_t> shape) {
  if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(name) + " must be a numpy array");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  check_array<Real>(a, name, shape, true);
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + " must be C-contiguous");
  return static_cast<Real*>(a.mutable_data());
}

// A (T, B, F) sequence whose (T*B) rows are evenly spaced with contiguous features: a C-contiguous
// array, or a slice of the last axis of one (the reverse half of a bidirectional output).
template <typename Real>
struct Sequence {
  const Real* data = nullptr;
  Real* mutable_data = nullptr;
  int64_t ld = 0;
};

template <typename Real>
Sequence<Real> sequence(const py::object& obj, const char* name, int64_t T, int64_t B, int64_t F, bool optional,
                        bool writable) {
  Sequence<Real> s;
  if (obj.is_none()) {
    if (optional) return s;
    throw py::type_error(std::string(name) + " must be an array, got None");
  }
  if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(name) + " must be a numpy array");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  check_array<Real>(a, name, {T, B, F}, writable);
  const py::ssize_t item = py::ssize_t(sizeof(Real));
  const py::ssize_t s0 = a.strides(0), s1 = a.strides(1), s2 = a.strides(2);
  int64_t ld = F;
  // (An empty array is never read or written, and NumPy may give it zero strides.)
  bool ok = a.size() == 0 || F <= 1 || s2 == item;
  if (a.size() == 0) {
    // nothing to check
  } else if (B > 1) {
    ok = ok && s1 > 0 && s1 % item == 0 && (T <= 1 || s0 == B * s1);
    ld = s1 / item;
  } else if (T > 1) {
    ok = ok && s0 > 0 && s0 % item == 0;
    ld = s0 / item;
  }
  ok = ok && ld >= F;
  if (!ok)
    throw py::value_error(std::string(name) +
                          " must be C-contiguous or a slice of the last axis of a C-contiguous array");
  s.data = static_cast<const Real*>(a.data());
  if (writable) s.mutable_data = static_cast<Real*>(a.mutable_data());
  s.ld = ld;
  return s;
}

// Everything a pass reads or writes, as Python objects (None where absent).
struct PassArrays {
  rnnkit::Cell cell;
  std::string nonlinearity = "tanh";
  bool reverse = false, dx_accumulate = false;
  py::object x, h0, c0, w_ih, w_hh, b_ih, b_hh, y, h_n, c_n, gates, cells, hidden_n;
  py::object dy, dh_n, dc_n, dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh;
};

struct Dims {
  int64_t T, B, I, H, GH;
};

Dims dims_of(const PassArrays& p) {
  if (!py::isinstance<py::array>(p.x)) throw py::type_error("x must be a numpy array");
  if (!py::isinstance<py::array>(p.w_hh)) throw py::type_error("w_hh must be a numpy array");
  const auto x = py::reinterpret_borrow<py::array>(p.x);
  const auto w_hh = py::reinterpret_borrow<py::array>(p.w_hh);
  if (x.ndim() != 3) throw py::value_error("x must have 3 dimensions (T, B, I), got shape " + shape_str(x));
  if (w_hh.ndim() != 2) throw py::value_error("w_hh must have 2 dimensions (G*H, H), got shape " + shape_str(w_hh));
  const int64_t H = w_hh.shape(1);
  return {x.shape(0), x.shape(1), x.shape(2), H, rnnkit::gate_count(p.cell) * H};
}

template <typename Real>
void run_forward(const PassArrays& p) {
  const Dims d = dims_of(p);
  const bool lstm = p.cell == rnnkit::Cell::lstm, gru = p.cell == rnnkit::Cell::gru;
  rnnkit::ForwardArgs<Real> a;
  a.cell = p.cell;
  a.act = rnnkit::parse_activation(p.nonlinearity);
  a.steps = d.T, a.batch = d.B, a.input = d.I, a.hidden = d.H;
  a.reverse = p.reverse;
  const auto x = sequence<Real>(p.x, "x", d.T, d.B, d.I, false, false);
  a.x = x.data, a.ldx = x.ld;
  a.h0 = dense_in<Real>(p.h0, "h0", {d.B, d.H}, true);
  if (lstm) a.c0 = dense_in<Real>(p.c0, "c0", {d.B, d.H}, true);
  a.w_ih = dense_in<Real>(p.w_ih, "w_ih", {d.GH, d.I}, false);
  a.w_hh = dense_in<Real>(p.w_hh, "w_hh", {d.GH, d.H}, false);
  a.b_ih = dense_in<Real>(p.b_ih, "b_ih", {d.GH}, true);
  a.b_hh = dense_in<Real>(p.b_hh, "b_hh", {d.GH}, true);
  const auto y = sequence<Real>(p.y, "y", d.T, d.B, d.H, false, true);
  a.y = y.mutable_data, a.ldy = y.ld;
  a.h_n = dense_out<Real>(p.h_n, "h_n", {d.B, d.H});
  if (lstm) {
    a.c_n = dense_out<Real>(p.c_n, "c_n", {d.B, d.H});
    a.cells = dense_out<Real>(p.cells, "cells", {d.T, d.B, d.H});
  }
  if (lstm || gru) a.gates = dense_out<Real>(p.gates, "gates", {d.T, d.B, d.GH});
  if (gru) a.hidden_n = dense_out<Real>(p.hidden_n, "hidden_n", {d.T, d.B, d.H});
  py::gil_scoped_release release;
  rnnkit::sequence_forward(a);
}

template <typename Real>
void run_backward(const PassArrays& p) {
  const Dims d = dims_of(p);
  const bool lstm = p.cell == rnnkit::Cell::lstm, gru = p.cell == rnnkit::Cell::gru;
  rnnkit::BackwardArgs<Real> a;
  a.cell = p.cell;
  a.act = rnnkit::parse_activation(p.nonlinearity);
  a.steps = d.T, a.batch = d.B, a.input = d.I, a.hidden = d.H;
  a.reverse = p.reverse;
  a.dx_accumulate = p.dx_accumulate;
  const auto x = sequence<Real>(p.x, "x", d.T, d.B, d.I, false, false);
  a.x = x.data, a.ldx = x.ld;
  a.h0 = dense_in<Real>(p.h0, "h0", {d.B, d.H}, true);
  if (lstm) a.c0 = dense_in<Real>(p.c0, "c0", {d.B, d.H}, true);
  a.w_ih = dense_in<Real>(p.w_ih, "w_ih", {d.GH, d.I}, false);
  a.w_hh = dense_in<Real>(p.w_hh, "w_hh", {d.GH, d.H}, false);
  const auto y = sequence<Real>(p.y, "y", d.T, d.B, d.H, false, false);
  a.y = y.data, a.ldy = y.ld;
  if (lstm || gru) a.gates = dense_in<Real>(p.gates, "gates", {d.T, d.B, d.GH}, false);
  if (lstm) a.cells = dense_in<Real>(p.cells, "cells", {d.T, d.B, d.H}, false);
  if (gru) a.hidden_n = dense_in<Real>(p.hidden_n, "hidden_n", {d.T, d.B, d.H}, false);
  const auto dy = sequence<Real>(p.dy, "dy", d.T, d.B, d.H, true, false);
  a.dy = dy.data, a.lddy = dy.ld;
  a.dh_n = dense_in<Real>(p.dh_n, "dh_n", {d.B, d.H}, true);
  if (lstm) a.dc_n = dense_in<Real>(p.dc_n, "dc_n", {d.B, d.H}, true);
  const auto dx = sequence<Real>(p.dx, "dx", d.T, d.B, d.I, false, true);
  a.dx = dx.mutable_data, a.lddx = dx.ld;
  a.dh0 = dense_out<Real>(p.dh0, "dh0", {d.B, d.H});
  if (lstm) a.dc0 = dense_out<Real>(p.dc0, "dc0", {d.B, d.H});
  a.dw_ih = dense_out<Real>(p.dw_ih, "dw_ih", {d.GH, d.I});
  a.dw_hh = dense_out<Real>(p.dw_hh, "dw_hh", {d.GH, d.H});
  a.db_ih = dense_out<Real>(p.db_ih, "db_ih", {d.GH});
  a.db_hh = p.db_hh.is(p.db_ih) ? a.db_ih : dense_out<Real>(p.db_hh, "db_hh", {d.GH});
  py::gil_scoped_release release;
  rnnkit::sequence_backward(a);
}

bool is_float32(const py::array& a) { return py::isinstance<py::array_t<float>>(a); }
bool is_float64(const py::array& a) { return py::isinstance<py::array_t<double>>(a); }

[[noreturn]] void bad_dtype(const py::array& a, const char* name) {
  throw py::type_error(std::string(name) + " must have dtype float32 or float64, got " + std::string(py::str(a.dtype())));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "rnnkit's compiled kernels (private: use the rnnkit package)";
  m.attr("__version__") = RNNKIT_VERSION;

  m.def("simd_isa", &rnnkit::active_isa, "The SIMD path in use: 'avx512', 'avx2' or 'scalar'.");
  m.def("set_simd_isa", &rnnkit::set_active_isa, py::arg("name"),
        "Force a SIMD path for this process (as RNNKIT_ISA does at start-up).");
  m.def("supported_isas", &rnnkit::supported_isas, "SIMD paths this build and this CPU can run, best first.");
  m.def("compiled_isas", &rnnkit::compiled_isas, "SIMD paths compiled into this build, best first.");
  m.def("_select_isa", &rnnkit::select_isa, py::arg("requested"), py::arg("cpu_has_avx2"), py::arg("cpu_has_avx512"));
  m.def("set_num_threads", &rnnkit::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &rnnkit::get_num_threads);
  m.def("openmp_enabled", &rnnkit::openmp_enabled);
  m.attr("MAX_THREADS") = rnnkit::kMaxThreads;
  m.def("_set_profiling", &rnnkit::set_profiling, py::arg("on"),
        "Record where the time of each kernel call goes (thread 0's wall time by phase).");
  m.def("_last_profile", [] {
    py::dict d;
    for (const auto& [name, seconds] : rnnkit::last_profile()) d[py::str(name)] = seconds;
    return d;
  }, "Seconds per phase of the last profiled call, and its total.");
  m.def("_set_min_work_per_thread", &rnnkit::set_min_work_per_thread, py::arg("n"),
        "Multiply-adds each thread must get between two barriers before a call uses it (tests: 1).");
  m.def("_min_work_per_thread", &rnnkit::min_work_per_thread);
  m.def("_step_plan", [](int64_t batch, int64_t hidden, int gates, const std::string& dtype) {
    if (batch < 1 || hidden < 1 || gates < 1) throw py::value_error("batch, hidden and gates must be >= 1");
    if (dtype == "float32") return rnnkit::step_plan<float>(batch, hidden, gates);
    if (dtype == "float64") return rnnkit::step_plan<double>(batch, hidden, gates);
    throw py::type_error("dtype must be 'float32' or 'float64', got '" + dtype + "'");
  }, py::arg("batch"), py::arg("hidden"), py::arg("gates") = 1, py::arg("dtype") = "float32",
        "(threads, block groups, row groups): how the kernels would share a step of this size now.");
  m.def("_last_scratch_bytes", &rnnkit::last_scratch_bytes,
        "Bytes of scratch memory the last kernel call on this thread took (beyond its outputs).");

  // Each pass dispatches on x's dtype; every other array must match it (checked in run_*).
  auto forward = [](const PassArrays& p) {
    if (!py::isinstance<py::array>(p.x)) throw py::type_error("x must be a numpy array");
    const auto x = py::reinterpret_borrow<py::array>(p.x);
    if (is_float32(x)) run_forward<float>(p);
    else if (is_float64(x)) run_forward<double>(p);
    else bad_dtype(x, "x");
  };
  auto backward = [](const PassArrays& p) {
    if (!py::isinstance<py::array>(p.x)) throw py::type_error("x must be a numpy array");
    const auto x = py::reinterpret_borrow<py::array>(p.x);
    if (is_float32(x)) run_backward<float>(p);
    else if (is_float64(x)) run_backward<double>(p);
    else bad_dtype(x, "x");
  };
  using O = const py::object&;

  m.def(
      "rnn_forward",
      [forward](O x, O h0, O w_ih, O w_hh, O b_ih, O b_hh, O y, O h_n, const std::string& nonlinearity, bool reverse) {
        PassArrays p{rnnkit::Cell::vanilla};
        p.nonlinearity = nonlinearity, p.reverse = reverse;
        p.x = x, p.h0 = h0, p.w_ih = w_ih, p.w_hh = w_hh, p.b_ih = b_ih, p.b_hh = b_hh, p.y = y, p.h_n = h_n;
        forward(p);
      },
      py::arg("x"), py::arg("h0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"),
      py::arg("y"), py::arg("h_n"), py::arg("nonlinearity"), py::arg("reverse"),
      "Vanilla cell: fill y (T, B, H) and h_n (B, H) in place.");
  m.def(
      "rnn_backward",
      [backward](O x, O h0, O w_ih, O w_hh, O y, O dy, O dh_n, O dx, O dh0, O dw_ih, O dw_hh, O db,
                 const std::string& nonlinearity, bool reverse, bool dx_accumulate) {
        PassArrays p{rnnkit::Cell::vanilla};
        p.nonlinearity = nonlinearity, p.reverse = reverse, p.dx_accumulate = dx_accumulate;
        p.x = x, p.h0 = h0, p.w_ih = w_ih, p.w_hh = w_hh, p.y = y, p.dy = dy, p.dh_n = dh_n;
        p.dx = dx, p.dh0 = dh0, p.dw_ih = dw_ih, p.dw_hh = dw_hh, p.db_ih = db, p.db_hh = db;
        backward(p);
      },
      py::arg("x"), py::arg("h0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("y"), py::arg("dy"), py::arg("dh_n"),
      py::arg("dx"), py::arg("dh0"), py::arg("dw_ih"), py::arg("dw_hh"), py::arg("db"), py::arg("nonlinearity"),
      py::arg("reverse"), py::arg("dx_accumulate"),
      "Vanilla cell: fill dx, dh0, dw_ih, dw_hh, db in place (dx is added to when dx_accumulate).");
  m.def(
      "lstm_forward",
      [forward](O x, O h0, O c0, O w_ih, O w_hh, O b_ih, O b_hh, O y, O h_n, O c_n, O gates, O cells, bool reverse) {
        PassArrays p{rnnkit::Cell::lstm};
        p.reverse = reverse;
        p.x = x, p.h0 = h0, p.c0 = c0, p.w_ih = w_ih, p.w_hh = w_hh, p.b_ih = b_ih, p.b_hh = b_hh;
        p.y = y, p.h_n = h_n, p.c_n = c_n, p.gates = gates, p.cells = cells;
        forward(p);
      },
      py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"),
      py::arg("y"), py::arg("h_n"), py::arg("c_n"), py::arg("gates"), py::arg("cells"), py::arg("reverse"),
      "LSTM: fill y, h_n, c_n and the saved gates (T, B, 4H) and cells (T, B, H) in place.");
  m.def(
      "lstm_backward",
      [backward](O x, O h0, O c0, O w_ih, O w_hh, O y, O gates, O cells, O dy, O dh_n, O dc_n, O dx, O dh0, O dc0,
                 O dw_ih, O dw_hh, O db, bool reverse, bool dx_accumulate) {
        PassArrays p{rnnkit::Cell::lstm};
        p.reverse = reverse, p.dx_accumulate = dx_accumulate;
        p.x = x, p.h0 = h0, p.c0 = c0, p.w_ih = w_ih, p.w_hh = w_hh, p.y = y, p.gates = gates, p.cells = cells;
        p.dy = dy, p.dh_n = dh_n, p.dc_n = dc_n, p.dx = dx, p.dh0 = dh0, p.dc0 = dc0;
        p.dw_ih = dw_ih, p.dw_hh = dw_hh, p.db_ih = db, p.db_hh = db;
        backward(p);
      },
      py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("y"), py::arg("gates"),
      py::arg("cells"), py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"), py::arg("dx"), py::arg("dh0"), py::arg("dc0"),
      py::arg("dw_ih"), py::arg("dw_hh"), py::arg("db"), py::arg("reverse"), py::arg("dx_accumulate"),
      "LSTM: fill dx, dh0, dc0, dw_ih, dw_hh, db in place.");
  m.def(
      "gru_forward",
      [forward](O x, O h0, O w_ih, O w_hh, O b_ih, O b_hh, O y, O h_n, O gates, O hidden_n, bool reverse) {
        PassArrays p{rnnkit::Cell::gru};
        p.reverse = reverse;
        p.x = x, p.h0 = h0, p.w_ih = w_ih, p.w_hh = w_hh, p.b_ih = b_ih, p.b_hh = b_hh;
        p.y = y, p.h_n = h_n, p.gates = gates, p.hidden_n = hidden_n;
        forward(p);
      },
      py::arg("x"), py::arg("h0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("y"),
      py::arg("h_n"), py::arg("gates"), py::arg("hidden_n"), py::arg("reverse"),
      "GRU: fill y, h_n and the saved gates (T, B, 3H) and W_hn h + b_hn (T, B, H) in place.");
  m.def(
      "gru_backward",
      [backward](O x, O h0, O w_ih, O w_hh, O y, O gates, O hidden_n, O dy, O dh_n, O dx, O dh0, O dw_ih, O dw_hh,
                 O db_ih, O db_hh, bool reverse, bool dx_accumulate) {
        PassArrays p{rnnkit::Cell::gru};
        p.reverse = reverse, p.dx_accumulate = dx_accumulate;
        p.x = x, p.h0 = h0, p.w_ih = w_ih, p.w_hh = w_hh, p.y = y, p.gates = gates, p.hidden_n = hidden_n;
        p.dy = dy, p.dh_n = dh_n, p.dx = dx, p.dh0 = dh0, p.dw_ih = dw_ih, p.dw_hh = dw_hh;
        p.db_ih = db_ih, p.db_hh = db_hh;
        backward(p);
      },
      py::arg("x"), py::arg("h0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("y"), py::arg("gates"),
      py::arg("hidden_n"), py::arg("dy"), py::arg("dh_n"), py::arg("dx"), py::arg("dh0"), py::arg("dw_ih"),
      py::arg("dw_hh"), py::arg("db_ih"), py::arg("db_hh"), py::arg("reverse"), py::arg("dx_accumulate"),
      "GRU: fill dx, dh0, dw_ih, dw_hh, db_ih, db_hh in place.");

  m.def(
      "matmul",
      [](const py::array& a, const py::array& b) -> py::array {
        if (a.ndim() != 2 || b.ndim() != 2 || a.shape(1) != b.shape(0))
          throw py::value_error("matmul needs a (M, K) and b (K, N), got " + shape_str(a) + " and " + shape_str(b));
        auto run = [&](auto tag) -> py::array {
          using Real = decltype(tag);
          const int64_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
          const Real* pa = dense_in<Real>(a, "a", {M, K}, false);
          const Real* pb = dense_in<Real>(b, "b", {K, N}, false);
          py::array_t<Real> c({M, N});
          Real* pc = c.mutable_data();
          {
            py::gil_scoped_release release;
            rnnkit::matmul<Real>(M, N, K, pa, pb, pc);
          }
          return c;
        };
        if (is_float32(a)) return run(float{});
        if (is_float64(a)) return run(double{});
        bad_dtype(a, "a");
      },
      py::arg("a"), py::arg("b"), "c = a @ b with the kernels' GEMM (C-contiguous float32/float64), for benchmarks.");

  m.def(
      "vector_math",
      [](const std::string& name, const py::array& x) -> py::array {
        rnnkit::MathFunction f;
        if (name == "exp") f = rnnkit::MathFunction::exp;
        else if (name == "tanh") f = rnnkit::MathFunction::tanh;
        else if (name == "sigmoid") f = rnnkit::MathFunction::sigmoid;
        else throw py::value_error("function must be 'exp', 'tanh' or 'sigmoid', got '" + name + "'");
        auto run = [&](auto tag) -> py::array {
          using Real = decltype(tag);
          auto in = py::array_t<Real, py::array::c_style>::ensure(x);
          if (!in) throw py::type_error("x must be convertible to a contiguous array");
          py::array_t<Real> out(in.request().shape);
          const Real* src = in.data();
          Real* dst = out.mutable_data();
          const int64_t n = in.size();
          {
            py::gil_scoped_release release;
            rnnkit::vector_math<Real>(f, src, dst, n);
          }
          return out;
        };
        if (is_float32(x)) return run(float{});
        if (is_float64(x)) return run(double{});
        bad_dtype(x, "x");
      },
      py::arg("function"), py::arg("x"), "The kernels' vectorised exp/tanh/sigmoid, for tests.");
}
