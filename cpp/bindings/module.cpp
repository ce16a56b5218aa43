// rnnkit._core: argument conversion, GIL release, no math.
//
// The user-facing validation (array-likes, dtype rules, messages) is python/rnnkit/functional.py.
// This layer re-checks the structure of every array it is handed — dtype, shape, strides, writability
// — so that no call, even a direct one to this private module, can make the kernels touch memory
// they do not own.  Outputs are allocated by the caller and filled in place.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <sstream>
#include <tuple>
#include <type_traits>
#include <vector>
#include <string>

#include "cells.hpp"
#include "rnnkit/rnnkit.hpp"
#include "profile.hpp"
#include "team.hpp"
#include "pool.hpp"
#include "optim.hpp"

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

// The same for packed rows (sequence_forward's packed_rows): an (N, F) array, checked as the (N, 1, F)
// sequence it is a view of.  N < 0: a (T, B, F) sequence.
template <typename Real>
Sequence<Real> sequence_or_rows(const py::object& obj, const char* name, int64_t T, int64_t B, int64_t F, int64_t N,
                                bool optional, bool writable) {
  if (N < 0 || obj.is_none()) return sequence<Real>(obj, name, T, B, F, optional, writable);
  if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(name) + " must be a numpy array");
  check_array<Real>(py::reinterpret_borrow<py::array>(obj), name, {N, F}, writable);
  return sequence<Real>(obj.attr("reshape")(N, 1, F), name, N, 1, F, false, writable);
}

// ---- plans and saved passes, as Python objects --------------------------------------------------
struct CellName {
  rnnkit::Cell cell;
  rnnkit::Activation act;
};
// "tanh" and "relu" are the vanilla cell's two activations; every other cell goes by its traits' name.
CellName parse_cell(const std::string& name) {
  if (name == "tanh" || name == "relu") return {rnnkit::Cell::vanilla, rnnkit::parse_activation(name)};
  std::string known = "'tanh', 'relu'";
  for (int c = 1; c < rnnkit::kCellKinds; ++c) {
    if (name == rnnkit::kCellTraits[c].name) return {rnnkit::Cell(c), rnnkit::Activation::tanh};
    known += std::string(", '") + rnnkit::kCellTraits[c].name + "'";
  }
  throw py::value_error("cell must be one of " + known + ", got '" + name + "'");
}

struct PyPlan {
  std::string cell;
  bool lstm = false;
  int64_t input = 0, hidden = 0, gates = 1;
  std::shared_ptr<const rnnkit::Plan<float>> f32;
  std::shared_ptr<const rnnkit::Plan<double>> f64;
  py::object borrowed;  // a plan that borrows its weights: (w_ih, w_hh), kept alive with it
  std::string dtype() const { return f32 ? "float32" : "float64"; }
  template <typename Real> const std::shared_ptr<const rnnkit::Plan<Real>>& get() const;
};
template <> const std::shared_ptr<const rnnkit::Plan<float>>& PyPlan::get<float>() const { return f32; }
template <> const std::shared_ptr<const rnnkit::Plan<double>>& PyPlan::get<double>() const { return f64; }

struct PySaved {
  std::shared_ptr<const rnnkit::Saved<float>> f32;
  std::shared_ptr<const rnnkit::Saved<double>> f64;
  std::string cell;
  py::object x, y;  // the forward's arrays the saved pass refers to (kept alive)
  py::object borrowed;  // and its plan's borrowed weights
  template <typename Real> const std::shared_ptr<const rnnkit::Saved<Real>>& get() const;
};
template <> const std::shared_ptr<const rnnkit::Saved<float>>& PySaved::get<float>() const { return f32; }
template <> const std::shared_ptr<const rnnkit::Saved<double>>& PySaved::get<double>() const { return f64; }

template <typename Real>
PyPlan make_py_plan(const std::string& cell_name, const py::object& w_ih, const py::object& w_hh, const py::object& b_ih,
                    const py::object& b_hh, bool borrow = false) {
  const CellName c = parse_cell(cell_name);
  const int64_t G = rnnkit::traits(c.cell).gates;
  const auto w = py::reinterpret_borrow<py::array>(w_hh);
  if (w.ndim() != 2) throw py::value_error("w_hh must have 2 dimensions (G*H, H), got shape " + shape_str(w));
  const int64_t H = w.shape(1);
  if (!py::isinstance<py::array>(w_ih)) throw py::type_error("w_ih must be a numpy array");
  const auto wi = py::reinterpret_borrow<py::array>(w_ih);
  if (wi.ndim() != 2) throw py::value_error("w_ih must have 2 dimensions (G*H, I), got shape " + shape_str(wi));
  const int64_t I = wi.shape(1);
  PyPlan p;
  p.cell = cell_name, p.lstm = rnnkit::traits(c.cell).states == 2, p.input = I, p.hidden = H, p.gates = G;
  const Real* pw_ih = dense_in<Real>(w_ih, "w_ih", {G * H, I}, false);
  const Real* pw_hh = dense_in<Real>(w_hh, "w_hh", {G * H, H}, false);
  const Real* pb_ih = dense_in<Real>(b_ih, "b_ih", {G * H}, true);
  const Real* pb_hh = dense_in<Real>(b_hh, "b_hh", {G * H}, true);
  std::shared_ptr<const rnnkit::Plan<Real>> plan;
  {
    py::gil_scoped_release release;
    plan = rnnkit::make_plan<Real>(c.cell, c.act, I, H, pw_ih, pw_hh, pb_ih, pb_hh, borrow);
  }
  if constexpr (std::is_same_v<Real, float>) p.f32 = plan;
  else p.f64 = plan;
  if (borrow) p.borrowed = py::make_tuple(w_ih, w_hh);
  return p;
}

// lengths: None, or a C-contiguous int64 (B,) array with values in [0, T] (functional.py converts);
// T < 0: no upper bound (packed rows, whose T is the longest length).
const int64_t* lengths_in(const py::object& obj, int64_t T, int64_t B) {
  if (obj.is_none()) return nullptr;
  if (!py::isinstance<py::array_t<int64_t>>(obj)) throw py::type_error("lengths must be an int64 array");
  const auto a = py::reinterpret_borrow<py::array>(obj);
  if (a.ndim() != 1 || a.shape(0) != B)
    throw py::value_error("lengths must have shape (" + std::to_string(B) + ",), got " + shape_str(a));
  if (!(a.flags() & py::array::c_style)) throw py::value_error("lengths must be C-contiguous");
  const int64_t* p = static_cast<const int64_t*>(a.data());
  for (int64_t b = 0; b < B; ++b) {
    if (T < 0 && p[b] < 0)
      throw py::value_error("lengths[" + std::to_string(b) + "] = " + std::to_string(p[b]) + " is negative");
    if (T >= 0 && (p[b] < 0 || p[b] > T))
      throw py::value_error("lengths[" + std::to_string(b) + "] = " + std::to_string(p[b]) + " is not in [0, T = " +
                            std::to_string(T) + "]");
  }
  return p;
}

template <typename T>
std::vector<T> as_list(const py::object& obj, const char* name, size_t n) {
  const auto list = obj.cast<std::vector<T>>();
  if (list.size() != n)
    throw py::value_error(std::string(name) + " must have one entry per direction (" + std::to_string(n) + "), got " +
                          std::to_string(list.size()));
  return list;
}

std::string item_name(const char* name, size_t d, size_t count) {
  return count == 1 ? std::string(name) : std::string(name) + "[" + std::to_string(d) + "]";
}

template <typename Real>
py::object run_forward(const std::vector<const PyPlan*>& plans, const std::vector<bool>& reverse, const py::object& x_obj,
                       const py::list& h0, const py::list& c0, const py::object& lengths, bool training,
                       const py::list& y, const py::list& h_n, const py::list& c_n) {
  const size_t D = plans.size();
  const PyPlan& p0 = *plans[0];
  const auto x_arr = py::reinterpret_borrow<py::array>(x_obj);
  // x (T, B, I), or packed rows (N, I) — torch's PackedSequence data — with non-increasing lengths
  const bool packed_rows = x_arr.ndim() == 2;
  if (x_arr.ndim() != 3 && !packed_rows)
    throw py::value_error("x must have 3 dimensions (T, B, I), or 2 (N, I) for packed rows, got shape " +
                          shape_str(x_arr));
  int64_t T = 0, B = 0, N = -1;
  const int64_t I = p0.input, H = p0.hidden;
  if (packed_rows) {
    if (lengths.is_none()) throw py::value_error("packed rows x (N, I) need lengths");
    const auto l = py::reinterpret_borrow<py::array>(lengths);
    if (l.ndim() != 1) throw py::value_error("lengths must have shape (B,), got " + shape_str(l));
    B = l.shape(0);
    const int64_t* p = lengths_in(lengths, -1, B);
    N = 0;
    for (int64_t b = 0; b < B; ++b) {
      if (b > 0 && p[b] > p[b - 1])
        throw py::value_error("packed rows need lengths sorted longest first (torch's sorted order), got lengths[" +
                              std::to_string(b) + "] = " + std::to_string(p[b]) + " > lengths[" + std::to_string(b - 1) +
                              "] = " + std::to_string(p[b - 1]));
      N += p[b];
    }
    T = B > 0 ? p[0] : 0;
  } else {
    T = x_arr.shape(0), B = x_arr.shape(1);
  }
  for (const PyPlan* p : plans)
    if (p->cell != p0.cell || p->input != I || p->hidden != H || p->dtype() != p0.dtype())
      throw py::value_error("the directions' plans must have one cell, size and dtype");
  const auto x = sequence_or_rows<Real>(x_obj, "x", T, B, I, N, false, false);
  const int64_t* len = lengths_in(lengths, T, B);
  auto h0s = as_list<py::object>(h0, "h0", D), c0s = as_list<py::object>(c0, "c0", D);
  auto ys = as_list<py::object>(y, "y", D), hns = as_list<py::object>(h_n, "h_n", D), cns = as_list<py::object>(c_n, "c_n", D);
  std::vector<rnnkit::DirectionForward<Real>> dirs(D);
  for (size_t d = 0; d < D; ++d) {
    auto& dir = dirs[d];
    dir.plan = plans[d]->get<Real>();
    dir.reverse = reverse[d];
    dir.h0 = dense_in<Real>(h0s[d], item_name("h0", d, D).c_str(), {B, H}, true);
    if (p0.lstm) dir.c0 = dense_in<Real>(c0s[d], item_name("c0", d, D).c_str(), {B, H}, true);
    const auto yd = sequence_or_rows<Real>(ys[d], item_name("y", d, D).c_str(), T, B, H, N, false, true);
    dir.y = yd.mutable_data, dir.ldy = yd.ld;
    dir.h_n = dense_out<Real>(hns[d], item_name("h_n", d, D).c_str(), {B, H});
    if (p0.lstm) dir.c_n = dense_out<Real>(cns[d], item_name("c_n", d, D).c_str(), {B, H});
  }
  {
    py::gil_scoped_release release;
    rnnkit::sequence_forward<Real>(T, B, I, x.data, x.ld, len, training, dirs.data(), int(D), packed_rows);
  }
  if (!training) return py::none();
  py::list out;
  for (size_t d = 0; d < D; ++d) {
    PySaved s;
    if constexpr (std::is_same_v<Real, float>) s.f32 = dirs[d].saved;
    else s.f64 = dirs[d].saved;
    s.cell = p0.cell, s.x = x_obj, s.y = ys[d], s.borrowed = plans[d]->borrowed;
    out.append(py::cast(std::move(s)));
  }
  return std::move(out);
}

template <typename Real>
void run_backward(const std::vector<const PySaved*>& saved, const py::list& dy, const py::list& dh_n,
                  const py::list& dc_n, const py::object& dx_obj, const py::list& dh0, const py::list& dc0,
                  const py::list& dw_ih, const py::list& dw_hh, const py::list& db_ih, const py::list& db_hh,
                  bool dx_accumulate) {
  const size_t D = saved.size();
  const auto shape = rnnkit::saved_shape(*saved[0]->get<Real>());
  const int64_t T = shape.steps, B = shape.batch, I = shape.input, H = shape.hidden;
  const int64_t GH = rnnkit::traits(shape.cell).gates * H;
  const bool lstm = rnnkit::traits(shape.cell).states == 2;
  for (const PySaved* s : saved) {
    const auto other = rnnkit::saved_shape(*s->get<Real>());
    if (other.sequence != shape.sequence)
      throw py::value_error("the directions' saved passes must come from one forward call");
  }
  const int64_t N = shape.packed_rows;  // (-1: (T, B, .) arrays)
  const auto dx = sequence_or_rows<Real>(dx_obj, "dx", T, B, I, N, true, true);  // (None: no input gradient)
  auto dys = as_list<py::object>(dy, "dy", D), dhn = as_list<py::object>(dh_n, "dh_n", D);
  auto dcn = as_list<py::object>(dc_n, "dc_n", D), dh0s = as_list<py::object>(dh0, "dh0", D);
  auto dc0s = as_list<py::object>(dc0, "dc0", D), dwi = as_list<py::object>(dw_ih, "dw_ih", D);
  auto dwh = as_list<py::object>(dw_hh, "dw_hh", D), dbi = as_list<py::object>(db_ih, "db_ih", D);
  auto dbh = as_list<py::object>(db_hh, "db_hh", D);
  std::vector<rnnkit::DirectionBackward<Real>> dirs(D);
  for (size_t d = 0; d < D; ++d) {
    auto& o = dirs[d];
    o.saved = saved[d]->get<Real>();
    const auto dyd = sequence_or_rows<Real>(dys[d], item_name("dy", d, D).c_str(), T, B, H, N, true, false);
    o.dy = dyd.data, o.lddy = dyd.ld;
    o.dh_n = dense_in<Real>(dhn[d], item_name("dh_n", d, D).c_str(), {B, H}, true);
    if (lstm) o.dc_n = dense_in<Real>(dcn[d], item_name("dc_n", d, D).c_str(), {B, H}, true);
    o.dh0 = dense_out<Real>(dh0s[d], item_name("dh0", d, D).c_str(), {B, H});
    if (lstm) o.dc0 = dense_out<Real>(dc0s[d], item_name("dc0", d, D).c_str(), {B, H});
    o.dw_ih = dense_out<Real>(dwi[d], item_name("dw_ih", d, D).c_str(), {GH, I});
    o.dw_hh = dense_out<Real>(dwh[d], item_name("dw_hh", d, D).c_str(), {GH, H});
    o.db_ih = dense_out<Real>(dbi[d], item_name("db_ih", d, D).c_str(), {GH});
    o.db_hh = dbh[d].is(dbi[d]) ? o.db_ih : dense_out<Real>(dbh[d], item_name("db_hh", d, D).c_str(), {GH});
  }
  py::gil_scoped_release release;
  rnnkit::sequence_backward<Real>(dirs.data(), int(D), dx.mutable_data, dx.ld, dx_accumulate);
}

bool is_float32(const py::array& a) { return py::isinstance<py::array_t<float>>(a); }
bool is_float64(const py::array& a) { return py::isinstance<py::array_t<double>>(a); }

[[noreturn]] void bad_dtype(const py::array& a, const char* name) {
  throw py::type_error(std::string(name) + " must have dtype float32 or float64, got " + std::string(py::str(a.dtype())));
}

}  // namespace

// ---- streams: a stack of layers stepped one timestep at a time ----------------------------------
// The state lives here, (L, B, H) per state; step and feed run on the calling thread with the GIL
// released, under the stream's own mutex (one stream used from two threads at once is serialised,
// never torn).  Every argument is checked before anything changes: a refused call leaves the state
// as it was.
constexpr int64_t kStreamReleaseWork = int64_t(1) << 20;  // multiply-adds: about 50-100 us of one core

template <typename Real>
struct StreamImpl {
  std::shared_ptr<const rnnkit::StepStack<Real>> stack;
  int64_t B = 0, I = 0, H = 0, L = 0;
  int64_t work = 0;  // multiply-adds of one step of all rows
  bool lstm = false;
  rnnkit::Block<Real> h, c, scratch;  // h, c: (L, B, H); cache-line aligned (a step's threads write
                                      // neighbouring blocks of units)
  size_t states = 0;                  // elements of h (and c)
  int64_t O = 0;                    // a head's outputs (0: none)
  std::vector<Real> head_w, head_b, top;  // (O, H), (O,), one step's top h (B, H)
  bool labels = false;                    // step returns the head's argmax (B,) int64
  std::vector<Real> logits;               // (B, O) when labels
  int64_t V = 0;                          // an embedding's rows (0: none): the input is token ids
  std::vector<Real> table, embedded;      // (V, I), one step's embedded input (B, I)
  std::vector<Real*> h_ptr, c_ptr;
  std::mutex mutex;
};

struct PyStream {
  std::string cell, dtype;
  int64_t B = 0, I = 0, H = 0, L = 0, O = 0, V = 0;
  bool lstm = false, labels = false;
  std::unique_ptr<StreamImpl<float>> f32;
  std::unique_ptr<StreamImpl<double>> f64;
  template <typename Real> StreamImpl<Real>& get();
};
template <> StreamImpl<float>& PyStream::get<float>() { return *f32; }
template <> StreamImpl<double>& PyStream::get<double>() { return *f64; }

template <typename Real>
std::unique_ptr<StreamImpl<Real>> make_stream(const std::vector<const PyPlan*>& plans, int64_t B,
                                              const py::object& head_weight, const py::object& head_bias,
                                              bool labels, const py::object& embedding) {
  auto impl = std::make_unique<StreamImpl<Real>>();
  if (labels && head_weight.is_none()) throw py::value_error("labels=True needs a head (head_weight, head_bias)");
  if (!embedding.is_none()) {
    if (!py::isinstance<py::array>(embedding)) throw py::type_error("embedding must be a numpy array");
    const auto e = py::reinterpret_borrow<py::array>(embedding);
    if (e.ndim() != 2) throw py::value_error("embedding must have 2 dimensions (V, I), got shape " + shape_str(e));
    const int64_t V = e.shape(0), I = plans[0]->input;
    const Real* pe = dense_in<Real>(embedding, "embedding", {V, I}, false);
    impl->V = V;
    impl->table.assign(pe, pe + V * I);
    impl->embedded.assign(size_t(B * I), Real(0));
  }
  if (!head_weight.is_none()) {
    if (!py::isinstance<py::array>(head_weight)) throw py::type_error("head_weight must be a numpy array");
    const auto w = py::reinterpret_borrow<py::array>(head_weight);
    if (w.ndim() != 2) throw py::value_error("head_weight must have 2 dimensions (O, H), got shape " + shape_str(w));
    const int64_t O = w.shape(0), H = plans.back()->hidden;
    const Real* pw = dense_in<Real>(head_weight, "head_weight", {O, H}, false);
    const Real* pb = dense_in<Real>(head_bias, "head_bias", {O}, false);
    impl->O = O;
    impl->head_w.assign(pw, pw + O * H);
    impl->head_b.assign(pb, pb + O);
    impl->top.assign(size_t(B * H), Real(0));
    impl->labels = labels;
    if (labels) impl->logits.assign(size_t(B * O), Real(0));
  }
  std::vector<std::shared_ptr<const rnnkit::Plan<Real>>> ps;
  for (const PyPlan* p : plans) {
    ps.push_back(p->get<Real>());
    impl->work += B * p->gates * p->hidden * (p->input + p->hidden);
  }
  impl->B = B, impl->I = plans[0]->input, impl->H = plans[0]->hidden, impl->L = int64_t(plans.size());
  impl->lstm = plans[0]->lstm;
  {
    py::gil_scoped_release release;
    impl->stack = rnnkit::make_step_stack<Real>(ps);
  }
  const size_t n = size_t(impl->L * B * impl->H);
  impl->states = n;
  impl->h = rnnkit::take_buffer<Real>(int64_t(n));
  std::fill_n(impl->h.get(), n, Real(0));
  if (impl->lstm) {
    impl->c = rnnkit::take_buffer<Real>(int64_t(n));
    std::fill_n(impl->c.get(), n, Real(0));
  }
  const int64_t scratch = std::max<int64_t>(1, rnnkit::step_stack_scratch(*impl->stack, B));
  impl->scratch = rnnkit::take_buffer<Real>(scratch);
  std::fill_n(impl->scratch.get(), scratch, Real(0));
  for (int64_t l = 0; l < impl->L; ++l) {
    impl->h_ptr.push_back(impl->h.get() + l * B * impl->H);
    impl->c_ptr.push_back(impl->lstm ? impl->c.get() + l * B * impl->H : nullptr);
  }
  return impl;
}

// x for step: (B, I), or (I,) when B is 1; for feed: (T, B, I), or (T, I) when B is 1.  Returns the
// number of steps (1 for step) and whether the batch axis was left out.
// Token ids for a stream with an embedding: step (B,), or a scalar when B is 1; feed (T, B), or (T,)
// when B is 1 — any integer dtype (a list or a numpy integer too), each checked against [0, V).
// Returns the ids as int64 (C-contiguous), the number of steps and whether the batch axis was left out.
std::tuple<py::array_t<int64_t>, int64_t, bool> stream_ids(const PyStream& st, const py::object& obj, bool sequence) {
  const char* name = sequence ? "x_chunk" : "x_t";
  py::array a = py::array::ensure(obj);
  if (!a || (a.dtype().kind() != 'i' && a.dtype().kind() != 'u'))
    throw py::type_error(std::string(name) + " must hold integer token ids for a model with vocab_size=" + std::to_string(st.V) +
                         ", got " + (a ? "dtype " + std::string(py::str(a.dtype())) :
                                     std::string(py::str(py::type::handle_of(obj).attr("__name__")))));
  const int64_t base = sequence ? 1 : 0;
  const bool squeezed = st.B == 1 && a.ndim() == base;
  if (a.ndim() != base + (squeezed ? 0 : 1) || (!squeezed && a.shape(base) != st.B))
    throw py::value_error(std::string(name) + " has shape " + shape_str(a) + "; expected " +
                          (sequence ? "(T, B)" : "(B,)") + " token ids with B = " + std::to_string(st.B));
  auto ids = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
  const int64_t* p = ids.data();
  for (py::ssize_t i = 0; i < ids.size(); ++i)
    if (p[i] < 0 || p[i] >= st.V) {
      std::string where;
      py::ssize_t rest = i;
      std::vector<py::ssize_t> index(size_t(ids.ndim()));
      for (py::ssize_t d = ids.ndim(); d-- > 0;) index[size_t(d)] = rest % ids.shape(d), rest /= ids.shape(d);
      for (size_t d = 0; d < index.size(); ++d) where += (d ? ", " : "") + std::to_string(index[d]);
      throw py::value_error(std::string(name) + (index.empty() ? "" : "[" + where + "]") + " = " + std::to_string(p[i]) +
                            " is out of range; token ids must lie in [0, vocab_size) = [0, " + std::to_string(st.V) + ")");
    }
  const int64_t T = sequence ? int64_t(ids.shape(0)) : 1;
  return {ids, T, squeezed};
}

template <typename Real>
std::pair<int64_t, bool> stream_input(const PyStream& st, const py::object& obj, bool sequence) {
  const char* name = sequence ? "x_chunk" : "x_t";
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array, got " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  const auto a = py::reinterpret_borrow<py::array>(obj);
  if (!py::isinstance<py::array_t<Real>>(a) || a.dtype().kind() != 'f')
    throw py::type_error(std::string(name) + " has dtype " + std::string(py::str(a.dtype())) + "; this stream's dtype is " +
                         st.dtype);
  const int64_t base = sequence ? 1 : 0;
  const bool squeezed = st.B == 1 && a.ndim() == base + 1;
  bool ok = a.ndim() == base + (squeezed ? 1 : 2);
  if (ok) {
    const int64_t b = squeezed ? 1 : a.shape(base), i = a.shape(a.ndim() - 1);
    ok = b == st.B && i == st.I;
  }
  if (!ok) {  // (the message is built only here: a step is a few microseconds)
    const std::string want = sequence ? (st.B == 1 ? "(T, B, I) or (T, I)" : "(T, B, I)")
                                      : (st.B == 1 ? "(B, I) or (I,)" : "(B, I)");
    throw py::value_error(std::string(name) + " has shape " + shape_str(a) + "; expected " + want + " with B = " +
                          std::to_string(st.B) + ", I = " + std::to_string(st.I));
  }
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + " must be C-contiguous");
  return {sequence ? int64_t(a.shape(0)) : 1, squeezed};
}

template <typename Real>
void stream_step(StreamImpl<Real>& impl, const Real* x, Real* out);
template <typename Real>
int64_t argmax(const Real* row, int64_t n);
template <typename Real, class F>
void run_stream_call(StreamImpl<Real>& impl, int64_t work, F&& run);

template <typename Real>
py::array stream_run(PyStream& st, const py::object& obj, bool sequence) {
  StreamImpl<Real>& impl = st.get<Real>();
  int64_t T = 0;
  bool squeezed = false;
  const Real* x = nullptr;
  py::array_t<int64_t> ids;
  if (impl.V) {
    std::tie(ids, T, squeezed) = stream_ids(st, obj, sequence);
  } else {
    std::tie(T, squeezed) = stream_input<Real>(st, obj, sequence);
    x = static_cast<const Real*>(py::reinterpret_borrow<py::array>(obj).data());
  }
  const int64_t width = impl.labels ? 1 : impl.O ? impl.O : impl.H;  // labels, the head's outputs, or h
  std::vector<py::ssize_t> shape;
  if (sequence) shape.push_back(py::ssize_t(T));
  if (!squeezed) shape.push_back(py::ssize_t(st.B));
  if (!impl.labels) shape.push_back(py::ssize_t(width));
  py::array out = impl.labels ? py::array(py::array_t<int64_t>(shape)) : py::array(py::array_t<Real>(shape));
  const int64_t* id = impl.V ? ids.data() : nullptr;
  auto run = [&] {
    const int64_t B = impl.B, I = impl.I;
    for (int64_t t = 0; t < T; ++t) {
      const Real* x_t = x ? x + t * B * I : impl.embedded.data();
      for (int64_t b = 0; id && b < B; ++b)
        std::copy_n(impl.table.data() + id[t * B + b] * I, I, impl.embedded.data() + b * I);
      if (!impl.labels) {
        stream_step(impl, x_t, static_cast<Real*>(out.mutable_data()) + t * B * width);
        continue;
      }
      stream_step(impl, x_t, impl.logits.data());
      int64_t* labels = static_cast<int64_t*>(out.mutable_data()) + t * B;
      for (int64_t b = 0; b < B; ++b) labels[b] = argmax(impl.logits.data() + b * impl.O, impl.O);
    }
  };
  run_stream_call(impl, T * impl.work, run);
  return out;
}

// numpy's argmax: the first largest value, or the first NaN.
template <typename Real>
int64_t argmax(const Real* row, int64_t n) {
  int64_t best = 0;
  for (int64_t o = 0; o < n && row[best] == row[best]; ++o)
    if (row[o] > row[best] || row[o] != row[o]) best = o;
  return best;
}

// One step of every row: x (B, I) -> out (B, H), or (B, O) through the head: out = h W^T + bias.
template <typename Real>
void stream_step(StreamImpl<Real>& impl, const Real* x, Real* out) {
  rnnkit::step_stack<Real>(impl.stack, impl.B, x, impl.I, impl.h_ptr.data(), impl.c_ptr.data(),
                           impl.O ? impl.top.data() : out, impl.H, impl.scratch.get(),
                           rnnkit::step_stack_threads(*impl.stack, impl.B));
  for (int64_t b = 0; b < impl.B && impl.O; ++b)
    for (int64_t o = 0; o < impl.O; ++o) {
      Real sum = impl.head_b[size_t(o)];
      const Real* w = impl.head_w.data() + o * impl.H;
      const Real* h = impl.top.data() + b * impl.H;
      for (int64_t j = 0; j < impl.H; ++j) sum += h[j] * w[j];
      out[b * impl.O + o] = sum;
    }
}

// Run a call of `work` multiply-adds under the stream's lock.  A call of a few microseconds keeps the
// GIL: handing it to another thread and taking it back costs more than the call (8 threads stepping
// B=1 streams ran at half one thread's rate when every step released it).  Longer calls release it,
// so that other threads run meanwhile.  (Holding the GIL, a call only try-locks the stream: a thread
// that holds the lock without the GIL must get both back.)
template <typename Real, class F>
void run_stream_call(StreamImpl<Real>& impl, int64_t work, F&& run) {
  std::unique_lock<std::mutex> lock(impl.mutex, std::try_to_lock);
  if (work < kStreamReleaseWork && lock.owns_lock()) {
    run();
  } else {
    if (lock.owns_lock()) lock.unlock();
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> guard(impl.mutex);
    run();
  }
}

// Greedy generation through the head, each step's output the next step's input (the first input:
// zeros).  Labels (classification): the input is the previous label one-hot, the label the first
// largest output (numpy's argmax; a NaN counts as the largest); a row stops at end_token (>= 0): its
// later labels are -1, and generation ends when every row has stopped.  Values (regression): the
// input is the previous outputs.  Returns (steps, B) labels or (steps, B, O) values; the state goes on
// from the last step run.
template <typename Real>
py::array stream_generate(PyStream& st, int64_t steps, bool labels, int64_t end_token, const py::object& first_input,
                          const py::object& going_in) {
  StreamImpl<Real>& impl = st.get<Real>();
  if (!impl.O) throw py::value_error("generate needs a stream with a head (head_weight, head_bias)");
  if (impl.labels || impl.V) throw py::value_error("generate needs a stream without labels=True or an embedding");
  if (impl.I != impl.O)
    throw py::value_error("generate feeds each output back as the next input: the input size (" + std::to_string(impl.I) +
                          ") must equal the head's output size (" + std::to_string(impl.O) + ")");
  if (steps < 0) throw py::value_error("steps must be >= 0, got " + std::to_string(steps));
  if (labels && end_token >= impl.O)
    throw py::value_error("end_token = " + std::to_string(end_token) + " is not a label in [0, " + std::to_string(impl.O) + ")");
  const int64_t B = impl.B, O = impl.O;
  const Real* first = dense_in<Real>(first_input, "first_input", {B, O}, true);
  std::vector<char> going(size_t(B), 1);
  if (!going_in.is_none()) {
    if (!py::isinstance<py::array_t<bool>>(going_in) || py::reinterpret_borrow<py::array>(going_in).dtype().kind() != 'b')
      throw py::type_error("going must be a bool array (B,)");
    const auto g = py::reinterpret_borrow<py::array_t<bool>>(going_in);
    if (g.ndim() != 1 || g.shape(0) != B)
      throw py::value_error("going has shape " + shape_str(g) + "; expected (B,) with B = " + std::to_string(B));
    for (int64_t b = 0; b < B; ++b) going[size_t(b)] = g.at(b) ? 1 : 0;
  }
  py::array out = labels ? py::array(py::array_t<int64_t>({py::ssize_t(steps), py::ssize_t(B)}))
                         : py::array(py::array_t<Real>({py::ssize_t(steps), py::ssize_t(B), py::ssize_t(O)}));
  auto* label_out = labels ? static_cast<int64_t*>(out.mutable_data()) : nullptr;
  auto* value_out = labels ? nullptr : static_cast<Real*>(out.mutable_data());
  auto run = [&] {
    std::vector<Real> input(size_t(B * O), Real(0)), outputs(size_t(B * O));
    if (first) std::copy_n(first, B * O, input.data());
    int64_t left = std::count(going.begin(), going.end(), char(1));
    for (int64_t t = 0; t < steps; ++t) {
      if (labels && left == 0) {
        std::fill_n(label_out + t * B, (steps - t) * B, int64_t(-1));
        break;
      }
      stream_step(impl, input.data(), labels ? outputs.data() : value_out + t * B * O);
      if (!labels) {
        std::copy_n(value_out + t * B * O, B * O, input.data());
        continue;
      }
      std::fill(input.begin(), input.end(), Real(0));
      for (int64_t b = 0; b < B; ++b) {
        if (!going[size_t(b)]) {
          label_out[t * B + b] = -1;
          continue;
        }
        const int64_t best = argmax(outputs.data() + b * O, O);
        label_out[t * B + b] = best;
        input[size_t(b * O + best)] = Real(1);
        if (best == end_token) going[size_t(b)] = 0, --left;
      }
    }
  };
  run_stream_call(impl, steps * impl.work, run);
  return out;
}

template <typename Real>
py::object stream_state(PyStream& st) {
  StreamImpl<Real>& impl = st.get<Real>();
  py::array_t<Real> h({st.L, st.B, st.H});
  py::object c = py::none();
  Real* cp = nullptr;
  if (st.lstm) {
    py::array_t<Real> ca({st.L, st.B, st.H});
    cp = ca.mutable_data();
    c = ca;
  }
  Real* hp = h.mutable_data();
  {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(impl.mutex);
    std::copy_n(impl.h.get(), impl.states, hp);
    if (cp) std::copy_n(impl.c.get(), impl.states, cp);
  }
  if (st.lstm) return py::make_tuple(h, c);
  return std::move(h);
}

template <typename Real>
void stream_set_state(PyStream& st, const py::object& value) {
  StreamImpl<Real>& impl = st.get<Real>();
  std::vector<py::object> parts;
  if (st.lstm) {
    if (!py::isinstance<py::tuple>(value) && !py::isinstance<py::list>(value))
      throw py::type_error("state must be a pair (h, c) of (num_layers, B, H) arrays for an LSTM stream");
    const auto seq = py::reinterpret_borrow<py::sequence>(value);
    if (seq.size() != 2) throw py::type_error("state must be a pair (h, c) for an LSTM stream");
    parts = {seq[0], seq[1]};
  } else {
    parts = {value};
  }
  std::vector<const Real*> src;
  for (size_t i = 0; i < parts.size(); ++i) {
    const char* name = parts.size() == 1 ? "state" : (i == 0 ? "state[0] (h)" : "state[1] (c)");
    src.push_back(dense_in<Real>(parts[i], name, {st.L, st.B, st.H}, false));
  }
  py::gil_scoped_release release;
  std::lock_guard<std::mutex> lock(impl.mutex);
  std::copy_n(src[0], impl.states, impl.h.get());
  if (st.lstm) std::copy_n(src[1], impl.states, impl.c.get());
}

template <typename Real>
void stream_reset(PyStream& st, const py::object& rows) {
  StreamImpl<Real>& impl = st.get<Real>();
  std::vector<int64_t> picked;
  if (rows.is_none()) {
    for (int64_t b = 0; b < st.B; ++b) picked.push_back(b);
  } else {
    std::vector<int64_t> given;
    try {
      given = rows.cast<std::vector<int64_t>>();
    } catch (const py::cast_error&) {
      throw py::type_error("rows must be None or a list of row indices (ints)");
    }
    for (int64_t b : given) {
      if (b < -st.B || b >= st.B)
        throw py::value_error("rows holds " + std::to_string(b) + "; rows must lie in [0, B) = [0, " +
                              std::to_string(st.B) + ")");
      picked.push_back(b < 0 ? b + st.B : b);
    }
  }
  py::gil_scoped_release release;
  std::lock_guard<std::mutex> lock(impl.mutex);
  for (int64_t l = 0; l < st.L; ++l)
    for (int64_t b : picked) {
      std::fill_n(impl.h.get() + (l * st.B + b) * st.H, st.H, Real(0));
      if (st.lstm) std::fill_n(impl.c.get() + (l * st.B + b) * st.H, st.H, Real(0));
    }
}

// ---- the optimizers' updates (optim.hpp) ----------------------------------------------------------

// list[index] as a contiguous array of n Real elements (n < 0: any size), writable if asked.
template <typename Real>
Real* flat_array(const py::list& list, const char* name, size_t index, int64_t n, bool writable) {
  const std::string where = std::string(name) + "[" + std::to_string(index) + "]";
  py::object obj = list[index];
  if (!py::isinstance<py::array>(obj)) throw py::type_error(where + " must be a numpy array");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!py::isinstance<py::array_t<Real>>(a))
    throw py::type_error(where + " must have dtype " + std::string(py::str(py::dtype::of<Real>())) + ", got " +
                         std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style)) throw py::value_error(where + " must be C-contiguous");
  if (n >= 0 && a.size() != n)
    throw py::value_error(where + " must have " + std::to_string(n) + " elements, got " + std::to_string(a.size()));
  if (writable && !a.writeable()) throw py::value_error(where + " must be writable");
  return static_cast<Real*>(writable ? a.mutable_data() : const_cast<void*>(a.data()));
}

// The update's arrays of one parameter must not overlap (the loops read and write them as
// independent streams).
template <typename Real>
void check_disjoint(std::initializer_list<const Real*> ptrs, int64_t n, size_t index) {
  std::vector<const Real*> v;
  for (const Real* p : ptrs)
    if (p) v.push_back(p);
  for (size_t i = 0; i < v.size(); ++i)
    for (size_t j = i + 1; j < v.size(); ++j)
      if (n > 0 && v[i] < v[j] + n && v[j] < v[i] + n)
        throw py::value_error("the arrays of parameter " + std::to_string(index) +
                              " (parameter, gradient, optimizer state) must not overlap");
}

bool is_f32_list(const py::list& params) {
  if (params.size() == 0) return true;
  py::object first = params[0];
  if (!py::isinstance<py::array>(first)) throw py::type_error("params[0] must be a numpy array");
  py::array a = py::reinterpret_borrow<py::array>(first);
  if (py::isinstance<py::array_t<float>>(a)) return true;
  if (py::isinstance<py::array_t<double>>(a)) return false;
  throw py::type_error("params[0] must have dtype float32 or float64, got " + std::string(py::str(a.dtype())));
}

void check_lengths(const py::list& params, std::initializer_list<std::pair<const char*, const py::list*>> others) {
  for (auto [name, list] : others)
    if (list->size() != params.size())
      throw py::value_error(std::string(name) + " must hold " + std::to_string(params.size()) +
                            " arrays (one per parameter), got " + std::to_string(list->size()));
}

void adam_step(const py::list& params, const py::list& grads, const py::list& means, const py::list& squares,
               const rnnkit::AdamConstants& c) {
  check_lengths(params, {{"grads", &grads}, {"means", &means}, {"squares", &squares}});
  auto run = [&](auto tag) {
    using Real = decltype(tag);
    struct Job { int64_t n; Real *p, *m, *v; const Real* g; };
    std::vector<Job> jobs;
    for (size_t i = 0; i < params.size(); ++i) {
      Real* p = flat_array<Real>(params, "params", i, -1, true);
      const int64_t n = py::reinterpret_borrow<py::array>(params[i]).size();
      Job j{n, p, flat_array<Real>(means, "means", i, n, true), flat_array<Real>(squares, "squares", i, n, true),
            flat_array<Real>(grads, "grads", i, n, false)};
      check_disjoint<Real>({j.p, j.m, j.v, j.g}, n, i);
      jobs.push_back(j);
    }
    py::gil_scoped_release release;
    const auto& table = rnnkit::active_optim<Real>();
    for (const Job& j : jobs) table.adam(j.n, j.p, j.g, j.m, j.v, c);
  };
  if (is_f32_list(params)) run(float{});
  else run(double{});
}

void sgd_step(const py::list& params, const py::list& grads, const py::list& buffers, const std::vector<bool>& first,
              const rnnkit::SgdConstants& c) {
  check_lengths(params, {{"grads", &grads}});
  const bool moving = c.momentum != 0;
  if (moving) check_lengths(params, {{"buffers", &buffers}});
  if (moving && first.size() != params.size())
    throw py::value_error("first must hold one flag per parameter");
  auto run = [&](auto tag) {
    using Real = decltype(tag);
    struct Job { int64_t n; Real *p, *buf; const Real* g; bool first; };
    std::vector<Job> jobs;
    for (size_t i = 0; i < params.size(); ++i) {
      Real* p = flat_array<Real>(params, "params", i, -1, true);
      const int64_t n = py::reinterpret_borrow<py::array>(params[i]).size();
      Job j{n, p, moving ? flat_array<Real>(buffers, "buffers", i, n, true) : nullptr,
            flat_array<Real>(grads, "grads", i, n, false), moving && first[i]};
      check_disjoint<Real>({j.p, j.buf, j.g}, n, i);
      jobs.push_back(j);
    }
    py::gil_scoped_release release;
    const auto& table = rnnkit::active_optim<Real>();
    for (const Job& j : jobs) table.sgd(j.n, j.p, j.g, j.buf, j.first, c);
  };
  if (is_f32_list(params)) run(float{});
  else run(double{});
}

double sum_squares(const py::list& arrays) {
  double total = 0;
  for (size_t i = 0; i < arrays.size(); ++i) {
    py::object obj = arrays[i];
    if (!py::isinstance<py::array>(obj)) throw py::type_error("arrays[" + std::to_string(i) + "] must be a numpy array");
    py::array a = py::reinterpret_borrow<py::array>(obj);
    const int64_t n = a.size();
    if (py::isinstance<py::array_t<float>>(a)) {
      const float* x = flat_array<float>(arrays, "arrays", i, n, false);
      total += rnnkit::active_optim<float>().sum_squares(n, x);
    } else {
      const double* x = flat_array<double>(arrays, "arrays", i, n, false);
      total += rnnkit::active_optim<double>().sum_squares(n, x);
    }
  }
  return total;
}

PYBIND11_MODULE(_core, m) {
  m.doc() = "rnnkit's compiled kernels (private: use the rnnkit package)";
  m.attr("__version__") = RNNKIT_VERSION;

  // ---- the optimizers' updates ----
  m.def(
      "adam_step",
      [](const py::list& params, const py::list& grads, const py::list& means, const py::list& squares,
         double decay_factor, double beta1, double beta2, double step_size, double sqrt_correction2, double eps) {
        rnnkit::AdamConstants c{decay_factor != 1.0, decay_factor, beta1, 1 - beta1, beta2, 1 - beta2,
                                step_size, sqrt_correction2, eps};
        adam_step(params, grads, means, squares, c);
      },
      py::arg("params"), py::arg("grads"), py::arg("means"), py::arg("squares"), py::arg("decay_factor"),
      py::arg("beta1"), py::arg("beta2"), py::arg("step_size"), py::arg("sqrt_correction2"), py::arg("eps"),
      "One Adam(W) step of every parameter in place, in NumPy's order of operations (optim.Adam).");
  m.def(
      "sgd_step",
      [](const py::list& params, const py::list& grads, const py::list& buffers, const std::vector<bool>& first,
         double lr, double momentum, bool nesterov, double weight_decay) {
        rnnkit::SgdConstants c{lr, momentum, weight_decay, nesterov};
        sgd_step(params, grads, buffers, first, c);
      },
      py::arg("params"), py::arg("grads"), py::arg("buffers"), py::arg("first"), py::arg("lr"),
      py::arg("momentum"), py::arg("nesterov"), py::arg("weight_decay"),
      "One SGD step of every parameter in place, in NumPy's order of operations (optim.SGD).");
  m.def("sum_squares", &sum_squares, py::arg("arrays"),
        "The sum of the squares of every element of the arrays (float32/float64, C-contiguous), in double, "
        "in a fixed order.");
  m.def("simd_isa", &rnnkit::active_isa, "The SIMD path in use: 'avx512', 'avx2' or 'scalar'.");
  m.def("set_simd_isa", &rnnkit::set_active_isa, py::arg("name"),
        "Force a SIMD path for this process (as RNNKIT_ISA does at start-up).");
  m.def("supported_isas", &rnnkit::supported_isas, "SIMD paths this build and this CPU can run, best first.");
  m.def("compiled_isas", &rnnkit::compiled_isas, "SIMD paths compiled into this build, best first.");
  m.def("_select_isa", &rnnkit::select_isa, py::arg("requested"), py::arg("cpu_has_avx2"), py::arg("cpu_has_avx512"));
  m.def("set_num_threads", &rnnkit::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &rnnkit::get_num_threads);
  m.def("threads_enabled", &rnnkit::threads_enabled);
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
  m.def("_set_helper_delay_us", &rnnkit::set_helper_delay_us, py::arg("us"),
        "Tests: helpers sleep this long after joining a call, as descheduled ones would (0: off).");
  m.def("_use_openmp_threads", &rnnkit::use_openmp_threads, py::arg("library"),
        "Register this loaded OpenMP runtime (its path or soname) for the calls of threads that ask for its "
        "threads as helpers (_thread_uses_openmp); False if it is not loaded or is not one.  '': none.",
        py::call_guard<py::gil_scoped_release>());
  m.def("_openmp_threads", &rnnkit::openmp_threads, "The OpenMP runtime registered ('': none).");
  m.def("_thread_uses_openmp", &rnnkit::set_thread_uses_openmp, py::arg("on"),
        "Whether this thread's kernel calls take their helpers from the registered OpenMP runtime rather "
        "than rnnkit's pool; returns the previous setting.");
  m.def("_step_plan", [](int64_t batch, int64_t hidden, int gates, const std::string& dtype) {
    if (batch < 1 || hidden < 1 || gates < 1) throw py::value_error("batch, hidden and gates must be >= 1");
    if (dtype == "float32") return rnnkit::step_plan<float>(batch, hidden, gates);
    if (dtype == "float64") return rnnkit::step_plan<double>(batch, hidden, gates);
    throw py::type_error("dtype must be 'float32' or 'float64', got '" + dtype + "'");
  }, py::arg("batch"), py::arg("hidden"), py::arg("gates") = 1, py::arg("dtype") = "float32",
        "(threads, block groups, row groups): how the kernels would share a step of this size now.");
  m.def("_last_scratch_bytes", &rnnkit::last_scratch_bytes,
        "Bytes of scratch memory the last kernel call on this thread took (beyond its outputs).");

  py::class_<PyPlan>(m, "Plan",
                     "One cell's weights, copied and packed once for the kernels (a snapshot: changing the "
                     "arrays afterwards changes nothing).")
      .def(py::init([](const std::string& cell, const py::object& w_ih, const py::object& w_hh, const py::object& b_ih,
                       const py::object& b_hh) {
             if (!py::isinstance<py::array>(w_hh)) throw py::type_error("w_hh must be a numpy array");
             const auto w = py::reinterpret_borrow<py::array>(w_hh);
             if (is_float32(w)) return make_py_plan<float>(cell, w_ih, w_hh, b_ih, b_hh);
             if (is_float64(w)) return make_py_plan<double>(cell, w_ih, w_hh, b_ih, b_hh);
             bad_dtype(w, "w_hh");
           }),
           py::arg("cell"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih") = py::none(), py::arg("b_hh") = py::none())
      .def_static("_borrowing", [](const std::string& cell, const py::object& w_ih, const py::object& w_hh,
                                   const py::object& b_ih, const py::object& b_hh) {
             if (!py::isinstance<py::array>(w_hh)) throw py::type_error("w_hh must be a numpy array");
             const auto w = py::reinterpret_borrow<py::array>(w_hh);
             if (is_float32(w)) return make_py_plan<float>(cell, w_ih, w_hh, b_ih, b_hh, true);
             if (is_float64(w)) return make_py_plan<double>(cell, w_ih, w_hh, b_ih, b_hh, true);
             bad_dtype(w, "w_hh");
           }, py::arg("cell"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih") = py::none(), py::arg("b_hh") = py::none(),
           "A plan that borrows w_ih and w_hh (C-contiguous arrays) instead of copying them, packed by its first "
           "call's threads: for one call, or a forward and its backward.  The arrays are kept alive with it and "
           "with its saved passes, and must not change while they are in use.")
      .def_readonly("cell", &PyPlan::cell)
      .def_readonly("input_size", &PyPlan::input)
      .def_readonly("hidden_size", &PyPlan::hidden)
      .def_property_readonly("dtype", &PyPlan::dtype)
      .def_property_readonly("isa", [](const PyPlan& p) {
        return p.f32 ? rnnkit::plan_isa(*p.f32) : rnnkit::plan_isa(*p.f64);
      });
  py::class_<PySaved>(m, "Saved", "What a training forward kept for its backward (opaque).")
      .def_readonly("cell", &PySaved::cell);

  m.def(
      "saved_cells",
      [](const PySaved& saved, const py::object& out) {
        auto run = [&](auto tag) {
          using Real = decltype(tag);
          const auto shape = rnnkit::saved_shape(*saved.get<Real>());
          Sequence<Real> o = sequence_or_rows<Real>(out, "out", shape.steps, shape.batch, shape.hidden,
                                                    shape.packed_rows, false, true);
          py::gil_scoped_release release;
          rnnkit::saved_cells(*saved.get<Real>(), o.mutable_data, o.ld);
        };
        if (saved.f32) run(float{});
        else run(double{});
      },
      py::arg("saved"), py::arg("out"),
      "An LSTM training pass's every c_t into out (T, B, H) (padding untouched).");

  py::class_<PyStream>(m, "Stream",
                       "A stack of unidirectional layers stepped one timestep at a time on the calling thread, "
                       "with the state of every row kept inside.")
      .def(py::init([](const std::vector<const PyPlan*>& plans, int64_t batch_size, const py::object& head_weight,
                       const py::object& head_bias, bool labels, const py::object& embedding) {
             if (plans.empty()) throw py::value_error("plans must hold at least one layer");
             for (const PyPlan* p : plans)
               if (!p) throw py::type_error("plans must be Plan objects");
             if (batch_size < 1) throw py::value_error("batch_size must be >= 1, got " + std::to_string(batch_size));
             const PyPlan& p0 = *plans[0];
             for (size_t l = 1; l < plans.size(); ++l) {
               const PyPlan& p = *plans[l];
               if (p.cell != p0.cell || p.dtype() != p0.dtype() || p.hidden != p0.hidden)
                 throw py::value_error("every layer of a stream needs the first one's cell, dtype and hidden size");
               if (p.input != p0.hidden)
                 throw py::value_error("layer " + std::to_string(l) + " has input size " + std::to_string(p.input) +
                                       "; a stack's layer l+1 reads layer l's h (" + std::to_string(p0.hidden) + ")");
             }
             auto st = std::make_unique<PyStream>();
             st->cell = p0.cell, st->dtype = p0.dtype(), st->B = batch_size, st->I = p0.input, st->H = p0.hidden;
             st->L = int64_t(plans.size()), st->lstm = p0.lstm;
             if (p0.f32) st->f32 = make_stream<float>(plans, batch_size, head_weight, head_bias, labels, embedding);
             else st->f64 = make_stream<double>(plans, batch_size, head_weight, head_bias, labels, embedding);
             st->O = p0.f32 ? st->f32->O : st->f64->O;
             st->V = p0.f32 ? st->f32->V : st->f64->V;
             st->labels = labels;
             return st;
           }),
           py::arg("plans"), py::arg("batch_size"), py::arg("head_weight") = py::none(),
           py::arg("head_bias") = py::none(), py::arg("labels") = false, py::arg("embedding") = py::none(),
           "head_weight (O, H), head_bias (O,): step and feed return the head's outputs h W^T + b instead of h; "
           "labels=True: their argmax (int64).  embedding (V, I): the input is token ids, (B,) a step, each "
           "embedded by its row.")
      .def_readonly("output_size", &PyStream::O)
      .def_readonly("cell", &PyStream::cell)
      .def_readonly("dtype", &PyStream::dtype)
      .def_readonly("batch_size", &PyStream::B)
      .def_readonly("input_size", &PyStream::I)
      .def_readonly("hidden_size", &PyStream::H)
      .def_readonly("num_layers", &PyStream::L)
      .def("step", [](PyStream& st, const py::object& x) {
             return st.f32 ? stream_run<float>(st, x, false) : stream_run<double>(st, x, false);
           }, py::arg("x_t"), "One step: x_t (B, I), or (I,) when B is 1 -> the top layer's h_t, (B, H) or (H,).")
      .def("feed", [](PyStream& st, const py::object& x) {
             return st.f32 ? stream_run<float>(st, x, true) : stream_run<double>(st, x, true);
           }, py::arg("x_chunk"), "Steps of a chunk: x_chunk (T, B, I), or (T, I) when B is 1 -> every step's "
           "top-layer h, (T, B, H) or (T, H).")
      .def_property(
          "state", [](PyStream& st) { return st.f32 ? stream_state<float>(st) : stream_state<double>(st); },
          [](PyStream& st, const py::object& v) {
            if (st.f32) stream_set_state<float>(st, v);
            else stream_set_state<double>(st, v);
          },
          "Every layer's state, (num_layers, B, H) — the pair (h, c) for the LSTM: a copy; setting it "
          "copies in (checked first: a refused value changes nothing).")
      .def("generate", [](PyStream& st, int64_t steps, bool labels, int64_t end_token, const py::object& first_input,
                          const py::object& going) {
             return st.f32 ? stream_generate<float>(st, steps, labels, end_token, first_input, going)
                           : stream_generate<double>(st, steps, labels, end_token, first_input, going);
           }, py::arg("steps"), py::arg("labels"), py::arg("end_token") = -1, py::arg("first_input") = py::none(),
           py::arg("going") = py::none(),
           "Greedy generation of up to `steps` steps through the head, each output fed back as the next input "
           "(first_input (B, O) first; default zeros): labels=True -> (steps, B) int64, the previous label one-hot "
           "as input, rows stopping at end_token (later labels -1; going (B,) bool: rows already stopped, False, "
           "give -1 throughout); labels=False -> (steps, B, O) values, fed back as they are.")
      .def("reset", [](PyStream& st, const py::object& rows) {
             if (st.f32) stream_reset<float>(st, rows);
             else stream_reset<double>(st, rows);
           }, py::arg("rows") = py::none());

  // One entry point per pass, for every cell and both directions at once; each dispatches on the
  // plans' dtype, and every array must match it.
  m.def(
      "forward",
      [](const std::vector<const PyPlan*>& plans, const std::vector<bool>& reverse, const py::object& x,
         const py::list& h0, const py::list& c0, const py::object& lengths, bool training, const py::list& y,
         const py::list& h_n, const py::list& c_n) -> py::object {
        if (plans.empty() || plans.size() > 2) throw py::value_error("plans must hold one or two directions");
        if (reverse.size() != plans.size()) throw py::value_error("reverse must have one entry per direction");
        for (const PyPlan* p : plans)
          if (!p) throw py::type_error("plans must be Plan objects");
        if (!py::isinstance<py::array>(x)) throw py::type_error("x must be a numpy array");
        if (plans[0]->f32) return run_forward<float>(plans, reverse, x, h0, c0, lengths, training, y, h_n, c_n);
        return run_forward<double>(plans, reverse, x, h0, c0, lengths, training, y, h_n, c_n);
      },
      py::arg("plans"), py::arg("reverse"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("lengths"),
      py::arg("training"), py::arg("y"), py::arg("h_n"), py::arg("c_n"),
      "Run 1 or 2 directions over x (T, B, I): fill each y (T, B, H), h_n and c_n (B, H) in place.  "
      "Returns one Saved per direction when training, else None.");
  // The functional API's one call: a one-call plan that borrows the weights (its caller keeps them
  // for the backward), outputs allocated here.  Returns (y, h_n, c_n or None, saved or None).
  m.def(
      "functional_forward",
      [](const std::string& cell, const py::object& x, const py::object& h0, const py::object& c0,
         const py::object& w_ih, const py::object& w_hh, const py::object& b_ih, const py::object& b_hh,
         const py::object& lengths, bool reverse, bool training) -> py::tuple {
        if (!py::isinstance<py::array>(w_hh)) throw py::type_error("w_hh must be a numpy array");
        if (!py::isinstance<py::array>(x)) throw py::type_error("x must be a numpy array");
        const auto w = py::reinterpret_borrow<py::array>(w_hh);
        const auto xa = py::reinterpret_borrow<py::array>(x);
        if (xa.ndim() != 3) throw py::value_error("x must have 3 dimensions (T, B, I), got shape " + shape_str(xa));
        auto run = [&](auto tag) -> py::tuple {
          using Real = decltype(tag);
          PyPlan plan = make_py_plan<Real>(cell, w_ih, w_hh, b_ih, b_hh, true);
          const py::ssize_t T = xa.shape(0), B = xa.shape(1), H = plan.hidden;
          py::array_t<Real> y({T, B, H}), h_n({B, H});
          py::object c_n = py::none();
          if (plan.lstm) c_n = py::array_t<Real>({B, H});
          py::list h0s, c0s, ys, hns, cns;
          h0s.append(h0), c0s.append(c0), ys.append(y), hns.append(h_n), cns.append(c_n);
          py::object saved = run_forward<Real>({&plan}, {reverse}, x, h0s, c0s, lengths, training, ys, hns, cns);
          return py::make_tuple(y, h_n, c_n, saved.is_none() ? saved : py::reinterpret_borrow<py::list>(saved)[0]);
        };
        if (is_float32(w)) return run(float{});
        if (is_float64(w)) return run(double{});
        bad_dtype(w, "w_hh");
      },
      py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"),
      py::arg("b_hh"), py::arg("lengths"), py::arg("reverse"), py::arg("training"));
  m.def(
      "backward",
      [](const std::vector<const PySaved*>& saved, const py::list& dy, const py::list& dh_n, const py::list& dc_n,
         const py::object& dx, const py::list& dh0, const py::list& dc0, const py::list& dw_ih, const py::list& dw_hh,
         const py::list& db_ih, const py::list& db_hh, bool dx_accumulate) {
        if (saved.empty() || saved.size() > 2) throw py::value_error("saved must hold one or two directions");
        for (const PySaved* s : saved)
          if (!s) throw py::type_error("saved must be Saved objects");
        if (saved[0]->f32) {
          for (const PySaved* s : saved)
            if (!s->f32) throw py::type_error("the directions' saved passes must have one dtype");
          run_backward<float>(saved, dy, dh_n, dc_n, dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dx_accumulate);
        } else {
          for (const PySaved* s : saved)
            if (!s->f64) throw py::type_error("the directions' saved passes must have one dtype");
          run_backward<double>(saved, dy, dh_n, dc_n, dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dx_accumulate);
        }
      },
      py::arg("saved"), py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"), py::arg("dx"), py::arg("dh0"), py::arg("dc0"),
      py::arg("dw_ih"), py::arg("dw_hh"), py::arg("db_ih"), py::arg("db_hh"), py::arg("dx_accumulate"),
      "BPTT of a forward's directions: fill dx (summed over directions; added to when dx_accumulate), and each "
      "direction's dh0, dc0, dw_ih, dw_hh, db_ih, db_hh in place (db_hh may be db_ih itself).");

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
