// pybind11 bindings: NumPy buffers in, NumPy buffers out, no copies, GIL
// released while C++ runs (except for convolutions too small to be worth
// it). Argument normalisation and friendly validation
// live in python/convx; this layer still checks every buffer it touches, so a
// direct call with bad arrays raises instead of crashing.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <memory>
#include <optional>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "convx/convx.hpp"
#include "gil.hpp"

namespace py = pybind11;
using convx_bindings::call_without_gil;
using convx_bindings::without_gil;
using std::int64_t;

void bind_conv_matrix(py::module_& m);

namespace {

using Int2 = std::array<int64_t, 2>;
using Int4 = std::array<int64_t, 4>;

convx::Layout parse_layout(const std::string& s) {
  if (s == "NHWC") return convx::Layout::NHWC;
  if (s == "NCHW") return convx::Layout::NCHW;
  throw std::invalid_argument("layout must be 'NHWC' or 'NCHW', got '" + s + "'");
}

convx::PatchOrder parse_order(const std::string& s) {
  if (s == "hwc") return convx::PatchOrder::HWC;
  if (s == "chw") return convx::PatchOrder::CHW;
  if (s == "seed") return convx::PatchOrder::Seed;
  throw std::invalid_argument("order must be 'hwc', 'chw' or 'seed', got '" + s + "'");
}

convx::Activation parse_activation(const std::string& s) {
  if (s == "none") return convx::Activation::None;
  if (s == "relu") return convx::Activation::ReLU;
  throw std::invalid_argument("activation must be None or 'relu', got '" + s + "'");
}

convx::ConvParams make_params(Int2 stride, Int2 dilation, Int4 pad, int64_t groups,
                              const std::string& layout) {
  convx::ConvParams p;
  p.stride_h = stride[0];
  p.stride_w = stride[1];
  p.dilation_h = dilation[0];
  p.dilation_w = dilation[1];
  p.pad = {pad[0], pad[1], pad[2], pad[3]};
  p.groups = groups;
  p.layout = parse_layout(layout);
  return p;
}

enum class DType { F32, F64 };

// Native-endian T. NumPy usually hands out its canonical dtype objects, so the
// identity test answers at once; an equal but distinct dtype object (e.g. made
// by newbyteorder) falls back to comparing by value.
template <typename T>
bool has_dtype(const py::array& a) {
  // Looked up once and deliberately never released: a static py::object would
  // be destroyed after the interpreter has shut down.
  static PyObject* const want = py::dtype::of<T>().release().ptr();
  const py::dtype got = a.dtype();
  return got.ptr() == want || got.equal(py::handle(want));
}

DType dtype_of(const py::array& a, const char* name) {
  if (has_dtype<float>(a)) return DType::F32;
  if (has_dtype<double>(a)) return DType::F64;
  throw py::type_error(std::string(name) + ": dtype must be float32 or float64, got " +
                       py::str(a.dtype()).cast<std::string>());
}

// Checks that `a` is a C-contiguous buffer of `count` elements of T.
template <typename T>
const T* input_ptr(const py::array& a, int64_t count, const char* name) {
  if (!has_dtype<T>(a)) {
    throw py::type_error(std::string(name) + ": dtype does not match the other arrays");
  }
  if (!(a.flags() & py::array::c_style)) {
    throw std::invalid_argument(std::string(name) + ": array must be C-contiguous");
  }
  if (a.size() != count) {
    throw std::invalid_argument(std::string(name) + ": expected " + std::to_string(count) +
                                " elements, got " + std::to_string(a.size()));
  }
  return static_cast<const T*>(a.data());
}

// The bias must be a 1-D array of exactly c_out values (a (c_out, 1) column of
// the same size is an error, not silently accepted).
template <typename T>
const T* bias_ptr(const py::object& bias, int64_t c_out) {
  if (!py::isinstance<py::array>(bias)) throw py::type_error("bias: must be a numpy array");
  const auto arr = py::reinterpret_borrow<py::array>(bias);
  if (arr.ndim() != 1) throw std::invalid_argument("bias: must be 1-D");
  return input_ptr<T>(arr, c_out, "bias");
}

template <typename T>
T* output_ptr(py::array& a, int64_t count, const char* name) {
  const T* p = input_ptr<T>(a, count, name);
  if (!a.writeable()) throw std::invalid_argument(std::string(name) + ": array is read-only");
  return const_cast<T*>(p);
}

// A layer's filters, copied and packed once (convx::ConvWeights) in the dtype
// of the array they were made from.
class PreparedWeights {
 public:
  PreparedWeights(const py::array& w, int64_t groups, const std::string& layout) {
    if (w.ndim() != 4) throw std::invalid_argument("weight: must be 4-D");
    const convx::Layout l = parse_layout(layout);
    const bool nhwc = l == convx::Layout::NHWC;
    const int64_t c_out = w.shape(0), k_h = w.shape(nhwc ? 1 : 2), k_w = w.shape(nhwc ? 2 : 3);
    const int64_t cig = w.shape(nhwc ? 3 : 1);
    const int64_t count = c_out * k_h * k_w * cig;
    if (dtype_of(w, "weight") == DType::F32) {
      const float* p = input_ptr<float>(w, count, "weight");
      without_gil([&] {
        f32_ = std::make_unique<convx::ConvWeights<float>>(p, c_out, k_h, k_w, cig, groups, l);
      });
    } else {
      const double* p = input_ptr<double>(w, count, "weight");
      without_gil([&] {
        f64_ = std::make_unique<convx::ConvWeights<double>>(p, c_out, k_h, k_w, cig, groups, l);
      });
    }
  }

  int64_t bytes() const { return f32_ ? f32_->bytes() : f64_->bytes(); }
  const convx::ConvWeights<float>* f32() const { return f32_.get(); }
  const convx::ConvWeights<double>* f64() const { return f64_.get(); }

 private:
  std::unique_ptr<convx::ConvWeights<float>> f32_;
  std::unique_ptr<convx::ConvWeights<double>> f64_;
};

// The bytes [lo, hi) an array's elements span; empty arrays span nothing.
std::pair<const char*, const char*> byte_extent(const py::array& a) {
  const char* base = static_cast<const char*>(a.data());
  py::ssize_t lo = 0, hi = 0;
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.shape(d) == 0) return {base, base};
    const py::ssize_t reach = (a.shape(d) - 1) * a.strides(d);
    (reach < 0 ? lo : hi) += reach;
  }
  return {base + lo, base + hi + a.itemsize()};
}

bool overlaps(const py::array& a, const py::array& b) {
  const auto [a_lo, a_hi] = byte_extent(a);
  const auto [b_lo, b_hi] = byte_extent(b);
  return a_lo < b_hi && b_lo < a_hi && a_lo != a_hi && b_lo != b_hi;
}

// A new C-contiguous array of T with these dimensions, made through NumPy's C
// API directly: py::array_t's constructor builds shape and stride vectors on
// the heap first, which is a measurable part of a tiny convolution's call.
template <typename T>
py::array new_array(const std::vector<py::ssize_t>& dims) {
  const auto& api = py::detail::npy_api::get();
  PyObject* descr = api.PyArray_DescrFromType_(py::detail::npy_format_descriptor<T>::value);
  if (descr == nullptr) throw py::error_already_set();
  // PyArray_NewFromDescr takes (steals) the reference to descr, even on failure.
  PyObject* a = api.PyArray_NewFromDescr_(
      api.PyArray_Type_, descr, static_cast<int>(dims.size()),
      reinterpret_cast<const Py_intptr_t*>(dims.data()), nullptr, nullptr, 0, nullptr);
  if (a == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::array>(a);
}

// Whether `a` has exactly these dimensions.
bool has_dims(const py::array& a, const std::vector<py::ssize_t>& dims) {
  return a.ndim() == static_cast<py::ssize_t>(dims.size()) &&
         std::equal(dims.begin(), dims.end(), a.shape());
}

class BoundConv;

// Multiply-adds below which a convolution runs without releasing the GIL.
constexpr int64_t kKeepGilMacs = 1 << 14;

// A validated convolution geometry, made once per distinct call signature and
// reused (the Python layer caches plans), so a repeated call costs only the
// buffer checks below and the compute. It knows the output's shape, so it
// allocates the result itself (or checks a caller's `out` against it).
class ConvPlan {
 public:
  ConvPlan(Int4 input_dims, Int2 cout_kh, int64_t k_w, Int2 stride, Int2 dilation, Int4 pad,
           int64_t groups, const std::string& layout, const std::string& activation,
           bool batched)
      : shape_(convx::make_conv_shape(input_dims[0], input_dims[1], input_dims[2],
                                      input_dims[3], cout_kh[0], cout_kh[1], k_w,
                                      make_params(stride, dilation, pad, groups, layout))),
        act_(parse_activation(activation)) {
    const convx::ConvShape& s = shape_;
    if (s.p.layout == convx::Layout::NHWC) {
      in_dims_ = {s.n, s.h, s.w, s.c_in};
      out_dims_ = {s.n, s.h_out, s.w_out, s.c_out};
    } else {
      in_dims_ = {s.n, s.c_in, s.h, s.w};
      out_dims_ = {s.n, s.c_out, s.h_out, s.w_out};
    }
    if (!batched) {
      in_dims_.erase(in_dims_.begin());
      out_dims_.erase(out_dims_.begin());
    }
  }

  // Whether x is a C-contiguous ndarray (not a subclass) of exactly this
  // plan's input shape and of dtype T: an input a repeated call can take as is.
  template <typename T>
  bool takes(py::handle x) const {
    if (Py_TYPE(x.ptr()) != py::detail::npy_api::get().PyArray_Type_) return false;
    const auto a = py::reinterpret_borrow<py::array>(x);
    return has_dims(a, in_dims_) && has_dtype<T>(a) && (a.flags() & py::array::c_style) != 0;
  }

  // y = conv(x, w) + bias into `out` (None: a new array). Checks every buffer:
  // dtype, contiguity, size, and for `out` the exact shape, writeability and
  // no overlap with the inputs.
  py::array call(const py::array& x, const py::array& w, const py::object& bias,
                 const py::object& out) const {
    if (dtype_of(x, "x") == DType::F32) {
      return run_with<float>(x, input_ptr<float>(x, shape_.input_size(), "x"),
                             input_ptr<float>(w, shape_.weight_size(), "weight"), &w,
                             checked_bias<float>(bias), bias, out);
    }
    return run_with<double>(x, input_ptr<double>(x, shape_.input_size(), "x"),
                            input_ptr<double>(w, shape_.weight_size(), "weight"), &w,
                            checked_bias<double>(bias), bias, out);
  }

  // The bias's data after checking it (nullptr for None): c_out values of T.
  template <typename T>
  const T* checked_bias(const py::object& bias) const {
    return bias.is_none() ? nullptr : bias_ptr<T>(bias, shape_.c_out);
  }

  // The plan with a layer's prepared weights and bias attached: a builtin
  // function f(x, out=None) (see BoundConv and bound_call below).
  py::object bind(const py::object& weights, const py::object& bias) const;

  int64_t workspace_bytes(bool f64) const {
    return f64 ? convx::conv2d_workspace_bytes<double>(shape_)
               : convx::conv2d_workspace_bytes<float>(shape_);
  }

  py::tuple output_dims() const {
    return py::make_tuple(shape_.n, shape_.h_out, shape_.w_out, shape_.c_out);
  }

 private:
  friend class BoundConv;

  // Checks `out`, then runs conv2d on the checked data xp of x and bp of bias
  // with `weights`: a raw pointer or a convx::ConvWeights<T>, both of which
  // conv2d accepts. `w_array` is the raw weights' array (for the overlap
  // check), or null for prepared weights, which convx owns.
  template <typename T, typename Weights>
  py::array run_with(const py::array& x, const T* xp, const Weights& weights,
                     const py::array* w_array, const T* bp, const py::object& bias,
                     const py::object& out) const {
    py::array y;
    T* yp = nullptr;
    if (out.is_none()) {
      y = new_array<T>(out_dims_);
      yp = static_cast<T*>(y.mutable_data());
    } else {
      if (!py::isinstance<py::array>(out)) throw py::type_error("out: must be a numpy array");
      y = py::reinterpret_borrow<py::array>(out);
      if (!has_dims(y, out_dims_)) throw std::invalid_argument("out: wrong shape");
      if (overlaps(y, x) || (w_array != nullptr && overlaps(y, *w_array)) ||
          (bp != nullptr && overlaps(y, py::reinterpret_borrow<py::array>(bias)))) {
        throw std::invalid_argument("out: must not overlap the input arrays");
      }
      yp = output_ptr<T>(y, shape_.output_size(), "out");
    }
    // A convolution of a few thousand multiply-adds takes about as long as
    // releasing and re-taking the GIL; only longer ones let other threads run.
    if (shape_.output_size() * shape_.patch_size() <= kKeepGilMacs) {
      convx::conv2d<T>(shape_, xp, weights, bp, yp, act_);
      return y;
    }
    PyObject* result = y.release().ptr();  // raw across the GIL-free call (see gil.hpp)
    const std::exception_ptr error =
        call_without_gil([&] { convx::conv2d<T>(shape_, xp, weights, bp, yp, act_); });
    y = py::reinterpret_steal<py::array>(result);
    if (error) std::rethrow_exception(error);
    return y;
  }

  convx::ConvShape shape_;
  convx::Activation act_;
  std::vector<py::ssize_t> in_dims_, out_dims_;
};

// A plan bound to a layer's PreparedWeights and bias (both kept alive here),
// so that a layer's repeated call passes only x: the layer's fast path.
class BoundConv {
 public:
  BoundConv(const ConvPlan& plan, const py::object& weights, const py::object& bias)
      : plan_(plan), weights_(weights), bias_(bias) {
    const auto& w = weights.cast<const PreparedWeights&>();
    f32_ = w.f32();
    f64_ = w.f64();
    // The layer's bias is its own read-only array, kept alive here: checked once.
    if (f32_ != nullptr) bias_f32_ = plan_.checked_bias<float>(bias_);
    if (f64_ != nullptr) bias_f64_ = plan_.checked_bias<double>(bias_);
  }

  // conv(x) into `out` (None: a new array), or None when x is not an input
  // this plan takes as is (another shape or dtype, a copy needed): the caller
  // then takes its validating path. A bad `out` raises.
  py::object call(py::handle x, py::handle out) const {
    if (f32_ != nullptr) {
      if (!plan_.takes<float>(x)) return py::none();  // checks what input_ptr would
      const auto a = py::reinterpret_borrow<py::array>(x);
      return plan_.run_with<float>(a, static_cast<const float*>(a.data()), *f32_, nullptr,
                                   bias_f32_, bias_, py::reinterpret_borrow<py::object>(out));
    }
    if (!plan_.takes<double>(x)) return py::none();
    const auto a = py::reinterpret_borrow<py::array>(x);
    return plan_.run_with<double>(a, static_cast<const double*>(a.data()), *f64_, nullptr,
                                  bias_f64_, bias_, py::reinterpret_borrow<py::object>(out));
  }

 private:
  ConvPlan plan_;
  py::object weights_, bias_;  // weights_ owns the ConvWeights below
  const convx::ConvWeights<float>* f32_ = nullptr;
  const convx::ConvWeights<double>* f64_ = nullptr;
  const float* bias_f32_ = nullptr;
  const double* bias_f64_ = nullptr;
};

// A layer's repeated call is a few microseconds in all, and pybind11's
// dispatcher (type lookup of self, keyword handling) took about 0.3 us of it.
// So the bound plan is handed to Python as a plain builtin function, called
// through CPython's vectorcall, whose self is a capsule owning the BoundConv.
constexpr const char* kBoundCapsule = "convx.BoundConv";

// A resource the system could not give (a thread's stack, under an address
// space or thread limit) is a MemoryError; any other system error a RuntimeError.
PyObject* system_error_type(const std::system_error& e) {
  const std::error_code& c = e.code();
  return c == std::errc::resource_unavailable_try_again || c == std::errc::not_enough_memory
             ? PyExc_MemoryError
             : PyExc_RuntimeError;
}

// Sets the Python error for the exception being handled, as pybind11 would.
void set_error_from_current_exception() {
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const py::builtin_exception& e) {
    e.set_error();
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::invalid_argument& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::length_error& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::domain_error& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::overflow_error& e) {
    PyErr_SetString(PyExc_OverflowError, e.what());
  } catch (const std::system_error& e) {
    PyErr_SetString(system_error_type(e), e.what());
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "convx: unknown C++ exception");
  }
}

// bound(x, out=None): BoundConv::call, positional arguments only.
PyObject* bound_call(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 1 || nargs > 2) {
    PyErr_SetString(PyExc_TypeError, "a bound convx plan takes (x, out=None)");
    return nullptr;
  }
  const auto* bound = static_cast<const BoundConv*>(PyCapsule_GetPointer(self, kBoundCapsule));
  if (bound == nullptr) return nullptr;
  try {
    return bound->call(args[0], nargs == 2 ? args[1] : Py_None).release().ptr();
  } CONVX_RETHROW_FORCED_UNWIND catch (...) {
    set_error_from_current_exception();
    return nullptr;
  }
}

PyMethodDef bound_call_def = {
    "bound_conv", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&bound_call)),
    METH_FASTCALL,
    "bound_conv(x, out=None)\n--\n\nThe convolution of x with the bound weights and bias, "
    "or None (computing nothing) when x is not a C-contiguous ndarray of exactly the plan's "
    "input shape and dtype."};

void delete_bound(PyObject* capsule) {
  delete static_cast<BoundConv*>(PyCapsule_GetPointer(capsule, kBoundCapsule));
}

py::object ConvPlan::bind(const py::object& weights, const py::object& bias) const {
  auto bound = std::make_unique<BoundConv>(*this, weights, bias);
  PyObject* capsule = PyCapsule_New(bound.get(), kBoundCapsule, &delete_bound);
  if (capsule == nullptr) throw py::error_already_set();
  bound.release();  // the capsule owns it now
  // Our reference to the capsule, dropped on return: the function takes its own.
  const auto capsule_ref = py::reinterpret_steal<py::object>(capsule);
  PyObject* fn = PyCFunction_NewEx(&bound_call_def, capsule, nullptr);
  if (fn == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(fn);
}

template <typename T>
void im2col_impl(const py::array& x, py::array& out, const convx::Dims4& d, int64_t k_h,
                 int64_t k_w, const convx::ConvParams& p, convx::PatchOrder order) {
  const convx::ConvShape s = convx::make_conv_shape(d.n, d.h, d.w, d.c, p.groups, k_h, k_w, p);
  const T* xp = input_ptr<T>(x, s.input_size(), "x");
  T* op = output_ptr<T>(out, s.n * s.h_out * s.w_out * s.k_h * s.k_w * s.c_in, "out");
  without_gil([&] { convx::im2col<T>(xp, d, k_h, k_w, p, order, op); });
}

void im2col(const py::array& x, py::array& out, Int4 dims, Int2 kernel, Int2 stride,
            Int2 dilation, Int4 pad, int64_t groups, const std::string& layout,
            const std::string& order) {
  const convx::Dims4 d{dims[0], dims[1], dims[2], dims[3]};
  const convx::ConvParams p = make_params(stride, dilation, pad, groups, layout);
  const convx::PatchOrder o = parse_order(order);
  if (dtype_of(x, "x") == DType::F32) {
    im2col_impl<float>(x, out, d, kernel[0], kernel[1], p, o);
  } else {
    im2col_impl<double>(x, out, d, kernel[0], kernel[1], p, o);
  }
}

template <typename T>
void pad_impl(const py::array& x, py::array& out, const convx::Dims4& d, const Int4& pad,
              convx::Layout layout) {
  const T* xp = input_ptr<T>(x, d.n * d.h * d.w * d.c, "x");
  for (int64_t v : pad) {
    if (v < 0) throw std::invalid_argument("padding must be >= 0");
  }
  const int64_t count = d.n * (d.h + pad[0] + pad[1]) * (d.w + pad[2] + pad[3]) * d.c;
  T* op = output_ptr<T>(out, count, "out");
  without_gil([&] { convx::pad<T>(xp, d, {pad[0], pad[1], pad[2], pad[3]}, layout, op); });
}

void pad(const py::array& x, py::array& out, Int4 dims, Int4 pad, const std::string& layout) {
  const convx::Dims4 d{dims[0], dims[1], dims[2], dims[3]};
  const convx::Layout l = parse_layout(layout);
  if (dtype_of(x, "x") == DType::F32) {
    pad_impl<float>(x, out, d, pad, l);
  } else {
    pad_impl<double>(x, out, d, pad, l);
  }
}

// Element strides of a 2-D array; NumPy keeps them in bytes.
Int2 element_strides(const py::array& a, const char* name) {
  if (a.ndim() != 2) throw std::invalid_argument(std::string(name) + ": must be 2-D");
  Int2 st{};
  for (int d = 0; d < 2; ++d) {
    const py::ssize_t bytes = a.strides(d);
    if (bytes % static_cast<py::ssize_t>(a.itemsize()) != 0) {
      throw std::invalid_argument(std::string(name) + ": strides must be whole elements");
    }
    st[static_cast<std::size_t>(d)] = bytes / a.itemsize();
  }
  return st;
}

template <typename T>
void gemm_impl(const py::array& a, const py::array& b, py::array& c, bool accumulate) {
  const int64_t m = a.shape(0), k = a.shape(1), n = b.shape(1);
  if (b.shape(0) != k) throw std::invalid_argument("b: inner dimensions do not match");
  if (c.ndim() != 2 || c.shape(0) != m || c.shape(1) != n) {
    throw std::invalid_argument("out: must have shape (M, N)");
  }
  for (const py::array* arr : std::initializer_list<const py::array*>{&a, &b, &c}) {
    if (!has_dtype<T>(*arr)) throw py::type_error("gemm: dtypes differ");
  }
  if (!c.writeable()) throw std::invalid_argument("out: array is read-only");
  if (overlaps(c, a) || overlaps(c, b)) {
    throw std::invalid_argument("out must not overlap the input arrays");
  }
  const Int2 sa = element_strides(a, "a"), sb = element_strides(b, "b");
  const Int2 sc = element_strides(c, "out");
  const T* ap = static_cast<const T*>(a.data());
  const T* bp = static_cast<const T*>(b.data());
  T* cp = static_cast<T*>(c.mutable_data());
  without_gil([&] {
    convx::gemm<T>(m, n, k, ap, sa[0], sa[1], bp, sb[0], sb[1], cp, sc[0], sc[1], accumulate);
  });
}

void gemm(const py::array& a, const py::array& b, py::array& c, bool accumulate) {
  if (a.ndim() != 2 || b.ndim() != 2) throw std::invalid_argument("gemm: a and b must be 2-D");
  if (dtype_of(a, "a") == DType::F32) {
    gemm_impl<float>(a, b, c, accumulate);
  } else {
    gemm_impl<double>(a, b, c, accumulate);
  }
}

// The base class of convx.Conv2D, whose __call__ it implements in C so that
// a layer's repeated call runs no Python frame of its own (about 0.3 us of the
// tiny conv's 1.3). layer(x) or layer(x, out=o) calls the cached bound plan
// `self._fast(x, out)` (see ConvPlan::bind); when that returns None or raises
// TypeError or ValueError, and for any other way of calling, the call goes to
// the Python method `self._call_slow(*args, **kwargs)`, which validates
// everything and raises the clear error.
PyObject* g_fast_attr = nullptr;
PyObject* g_slow_attr = nullptr;
PyObject* g_out_key = nullptr;

PyObject* layer_call(PyObject* self, PyObject* args, PyObject* kwargs) {
  PyObject* out = Py_None;
  bool plain = PyTuple_GET_SIZE(args) == 1;
  if (plain && kwargs != nullptr && PyDict_GET_SIZE(kwargs) != 0) {
    PyObject* given = PyDict_GET_SIZE(kwargs) == 1 ? PyDict_GetItem(kwargs, g_out_key) : nullptr;
    plain = given != nullptr;
    if (plain) out = given;
  }
  if (plain) {
    PyObject* fast = PyObject_GetAttr(self, g_fast_attr);
    PyObject* y = nullptr;
    if (fast != nullptr) {
      PyObject* call_args[2] = {PyTuple_GET_ITEM(args, 0), out};
      y = PyObject_Vectorcall(fast, call_args, 2, nullptr);
      Py_DECREF(fast);
    } else if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
      PyErr_Clear();  // no plan yet
      Py_INCREF(Py_None);
      y = Py_None;
    }
    if (y != nullptr && y != Py_None) return y;
    if (y != nullptr) {
      Py_DECREF(y);
    } else if (PyErr_ExceptionMatches(PyExc_TypeError) ||
               PyErr_ExceptionMatches(PyExc_ValueError)) {
      PyErr_Clear();  // the validating path raises the clear error
    } else {
      return nullptr;
    }
  }
  PyObject* slow = PyObject_GetAttr(self, g_slow_attr);
  if (slow == nullptr) return nullptr;
  PyObject* y = PyObject_Call(slow, args, kwargs);
  Py_DECREF(slow);
  return y;
}

void add_layer_base(py::module_& m) {
  g_fast_attr = PyUnicode_InternFromString("_fast");
  g_slow_attr = PyUnicode_InternFromString("_call_slow");
  g_out_key = PyUnicode_InternFromString("out");
  if (g_fast_attr == nullptr || g_slow_attr == nullptr || g_out_key == nullptr) {
    throw py::error_already_set();
  }
  static PyType_Slot slots[] = {
      {Py_tp_call, reinterpret_cast<void*>(&layer_call)},
      {Py_tp_doc, const_cast<char*>(
                      "Base of convx.Conv2D: __call__(x, *, out=None) runs the cached plan "
                      "self._fast(x, out), or self._call_slow(x, out=out) when it declines.")},
      {0, nullptr}};
  static PyType_Spec spec = {"convx._core.LayerBase", static_cast<int>(sizeof(PyObject)), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, slots};
  PyObject* type = PyType_FromSpec(&spec);
  if (type == nullptr) throw py::error_already_set();
  m.add_object("LayerBase", py::reinterpret_steal<py::object>(type));
}

py::dict cpu_info() {
  const convx::CpuInfo info = convx::cpu_info();
  py::list available;
  for (convx::Isa isa : {convx::Isa::Scalar, convx::Isa::AVX2, convx::Isa::AVX512}) {
    if (convx::isa_available(isa)) available.append(convx::isa_name(isa));
  }
  py::list compiled;
  compiled.append("scalar");
  if (info.compiled_avx2) compiled.append("avx2");
  if (info.compiled_avx512) compiled.append("avx512");
  py::dict d;
  d["vendor"] = info.vendor;
  d["avx2"] = info.avx2;
  d["avx512"] = info.avx512;
  d["compiled"] = compiled;
  d["available"] = available;
  d["best"] = convx::isa_name(info.best);
  d["active"] = convx::isa_name(info.active);
  d["num_threads"] = convx::num_threads();
  d["usable_cpus"] = convx::usable_cpus();
  d["flush_denormal"] = convx::flush_denormal();
  d["version"] = CONVX_VERSION_STRING;
  d["build_flags"] = CONVX_BUILD_FLAGS;
  return d;
}

}  // namespace

#if defined(_WIN32)
#define CONVX_EXPORT_C extern "C" __declspec(dllexport)
#else
#define CONVX_EXPORT_C extern "C" __attribute__((visibility("default")))
#endif

// The pool's thread count, exported under a name no other library uses. threadpoolctl
// identifies a library by its file name and its exported symbols; this module's file
// name (_core.cpython-...) is shared with other packages' modules, so the symbol is
// what marks it as convx's (see python/convx/_threadpoolctl.py).
CONVX_EXPORT_C int convx_get_num_threads(void) { return convx::num_threads(); }

PYBIND11_MODULE(_core, m) {
  m.doc() = "convx compiled core. Use the convx package, which validates arguments.";
  add_layer_base(m);
  py::class_<PreparedWeights>(m, "PreparedWeights")
      .def(py::init<const py::array&, int64_t, const std::string&>(), py::arg("weight"),
           py::arg("groups"), py::arg("layout"))
      .def_property_readonly("nbytes", &PreparedWeights::bytes);
  py::class_<ConvPlan>(m, "ConvPlan")
      .def(py::init<Int4, Int2, int64_t, Int2, Int2, Int4, int64_t, const std::string&,
                    const std::string&, bool>(),
           py::arg("input_dims"), py::arg("cout_kh"), py::arg("k_w"), py::arg("stride"),
           py::arg("dilation"), py::arg("pad"), py::arg("groups"), py::arg("layout"),
           py::arg("activation"), py::arg("batched") = true)
      .def("__call__", &ConvPlan::call, py::arg("x"), py::arg("weight"), py::arg("bias"),
           py::arg("out") = py::none())
      .def("bind", &ConvPlan::bind, py::arg("weight"), py::arg("bias"))
      .def("workspace_bytes", &ConvPlan::workspace_bytes, py::arg("f64"))
      .def_property_readonly("output_dims", &ConvPlan::output_dims);
  m.def("im2col", &im2col, py::arg("x"), py::arg("out"), py::arg("dims"), py::arg("kernel"),
        py::arg("stride"), py::arg("dilation"), py::arg("pad"), py::arg("groups"),
        py::arg("layout"), py::arg("order"));
  m.def("pad", &pad, py::arg("x"), py::arg("out"), py::arg("dims"), py::arg("pad"),
        py::arg("layout"));
  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("accumulate"));
  m.def("cpu_info", &cpu_info);
  m.def(
      "measure_peak_gflops",
      [](double seconds) {
        double gflops = 0;
        without_gil([&] { gflops = convx::measure_fma_peak_gflops(seconds); });
        return gflops;
      },
      py::arg("seconds") = 0.1);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::system_error& e) {
      PyErr_SetString(system_error_type(e), e.what());
    }
  });
  m.def("get_num_threads", &convx::num_threads);
  m.def("usable_cpus", &convx::usable_cpus);
  m.def("get_flush_denormal", &convx::flush_denormal);
  m.def("set_flush_denormal", &convx::set_flush_denormal, py::arg("enabled"));
  m.def("_config_warnings", &convx::config_warnings);
  m.def("set_num_threads", &convx::set_num_threads, py::arg("n"));
  m.def("_set_isa", [](const std::string& name) { convx::set_active_isa(convx::parse_isa(name)); },
        py::arg("name"));
  m.attr("__version__") = CONVX_VERSION_STRING;
  bind_conv_matrix(m);
}
