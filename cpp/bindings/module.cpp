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
Real* dense_out(py::array a, const char* name, std::initializer_list<int64_t> shape) {
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

template <typename Real>
void rnn_forward_impl(const py::array& x_arr, const py::object& h0, const py::object& w_ih, const py::object& w_hh,
                      const py::object& b_ih, const py::object& b_hh, const py::array& y, const py::array& h_n,
                      const std::string& nonlinearity, bool reverse) {
  if (x_arr.ndim() != 3) throw py::value_error("x must have 3 dimensions (T, B, I), got shape " + shape_str(x_arr));
  if (!py::isinstance<py::array>(w_hh)) throw py::type_error("w_hh must be a numpy array");
  const py::array w_hh_arr = py::reinterpret_borrow<py::array>(w_hh);
  if (w_hh_arr.ndim() != 2) throw py::value_error("w_hh must have 2 dimensions (H, H), got shape " + shape_str(w_hh_arr));
  rnnkit::RnnForwardArgs<Real> a;
  a.steps = x_arr.shape(0);
  a.batch = x_arr.shape(1);
  a.input = x_arr.shape(2);
  a.hidden = w_hh_arr.shape(0);
  const int64_t T = a.steps, B = a.batch, I = a.input, H = a.hidden;
  a.act = rnnkit::parse_activation(nonlinearity);
  a.reverse = reverse;
  const auto x = sequence<Real>(x_arr, "x", T, B, I, false, false);
  a.x = x.data;
  a.ldx = x.ld;
  a.h0 = dense_in<Real>(h0, "h0", {B, H}, true);
  a.w_ih = dense_in<Real>(w_ih, "w_ih", {H, I}, false);
  a.w_hh = dense_in<Real>(w_hh, "w_hh", {H, H}, false);
  a.b_ih = dense_in<Real>(b_ih, "b_ih", {H}, true);
  a.b_hh = dense_in<Real>(b_hh, "b_hh", {H}, true);
  const auto ys = sequence<Real>(y, "y", T, B, H, false, true);
  a.y = ys.mutable_data;
  a.ldy = ys.ld;
  a.h_n = dense_out<Real>(h_n, "h_n", {B, H});
  py::gil_scoped_release release;
  rnnkit::rnn_forward(a);
}

template <typename Real>
void rnn_backward_impl(const py::array& x_arr, const py::object& h0, const py::object& w_ih, const py::object& w_hh,
                       const py::array& y_arr, const py::object& dy, const py::object& dh_n, const py::array& dx,
                       const py::array& dh0, const py::array& dw_ih, const py::array& dw_hh, const py::array& db,
                       const std::string& nonlinearity, bool reverse, bool dx_accumulate) {
  if (x_arr.ndim() != 3) throw py::value_error("x must have 3 dimensions (T, B, I), got shape " + shape_str(x_arr));
  if (y_arr.ndim() != 3) throw py::value_error("y must have 3 dimensions (T, B, H), got shape " + shape_str(y_arr));
  rnnkit::RnnBackwardArgs<Real> a;
  a.steps = x_arr.shape(0);
  a.batch = x_arr.shape(1);
  a.input = x_arr.shape(2);
  a.hidden = y_arr.shape(2);
  const int64_t T = a.steps, B = a.batch, I = a.input, H = a.hidden;
  a.act = rnnkit::parse_activation(nonlinearity);
  a.reverse = reverse;
  a.dx_accumulate = dx_accumulate;
  const auto x = sequence<Real>(x_arr, "x", T, B, I, false, false);
  a.x = x.data;
  a.ldx = x.ld;
  a.h0 = dense_in<Real>(h0, "h0", {B, H}, true);
  a.w_ih = dense_in<Real>(w_ih, "w_ih", {H, I}, false);
  a.w_hh = dense_in<Real>(w_hh, "w_hh", {H, H}, false);
  const auto y = sequence<Real>(y_arr, "y", T, B, H, false, false);
  a.y = y.data;
  a.ldy = y.ld;
  const auto dys = sequence<Real>(dy, "dy", T, B, H, true, false);
  a.dy = dys.data;
  a.lddy = dys.ld;
  a.dh_n = dense_in<Real>(dh_n, "dh_n", {B, H}, true);
  const auto dxs = sequence<Real>(dx, "dx", T, B, I, false, true);
  a.dx = dxs.mutable_data;
  a.lddx = dxs.ld;
  a.dh0 = dense_out<Real>(dh0, "dh0", {B, H});
  a.dw_ih = dense_out<Real>(dw_ih, "dw_ih", {H, I});
  a.dw_hh = dense_out<Real>(dw_hh, "dw_hh", {H, H});
  a.db = dense_out<Real>(db, "db", {H});
  py::gil_scoped_release release;
  rnnkit::rnn_backward(a);
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

  m.def(
      "rnn_forward",
      [](const py::array& x, const py::object& h0, const py::object& w_ih, const py::object& w_hh,
         const py::object& b_ih, const py::object& b_hh, const py::array& y, const py::array& h_n,
         const std::string& nonlinearity, bool reverse) {
        if (is_float32(x)) rnn_forward_impl<float>(x, h0, w_ih, w_hh, b_ih, b_hh, y, h_n, nonlinearity, reverse);
        else if (is_float64(x)) rnn_forward_impl<double>(x, h0, w_ih, w_hh, b_ih, b_hh, y, h_n, nonlinearity, reverse);
        else bad_dtype(x, "x");
      },
      py::arg("x"), py::arg("h0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"),
      py::arg("y"), py::arg("h_n"), py::arg("nonlinearity"), py::arg("reverse"),
      "Fill y (T, B, H) and h_n (B, H) in place.");

  m.def(
      "rnn_backward",
      [](const py::array& x, const py::object& h0, const py::object& w_ih, const py::object& w_hh,
         const py::array& y, const py::object& dy, const py::object& dh_n, const py::array& dx,
         const py::array& dh0, const py::array& dw_ih, const py::array& dw_hh, const py::array& db,
         const std::string& nonlinearity, bool reverse, bool dx_accumulate) {
        if (is_float32(x))
          rnn_backward_impl<float>(x, h0, w_ih, w_hh, y, dy, dh_n, dx, dh0, dw_ih, dw_hh, db, nonlinearity, reverse,
                                   dx_accumulate);
        else if (is_float64(x))
          rnn_backward_impl<double>(x, h0, w_ih, w_hh, y, dy, dh_n, dx, dh0, dw_ih, dw_hh, db, nonlinearity, reverse,
                                    dx_accumulate);
        else bad_dtype(x, "x");
      },
      py::arg("x"), py::arg("h0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("y"), py::arg("dy"), py::arg("dh_n"),
      py::arg("dx"), py::arg("dh0"), py::arg("dw_ih"), py::arg("dw_hh"), py::arg("db"), py::arg("nonlinearity"),
      py::arg("reverse"), py::arg("dx_accumulate"),
      "Fill dx, dh0, dw_ih, dw_hh, db in place (dx is added to when dx_accumulate).");

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
