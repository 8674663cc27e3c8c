// Bindings of the forward operator (convx::Conv2d) and of a layer's packed
// weights, and the C-level call of convx.Conv2D.
//
// _core.Conv2dOp is one operator for one call signature: Python's conv2d keeps
// a small cache of them and Conv2D keeps one per input shape it has seen. A
// repeated call costs the buffer checks below and the compute.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "gil.hpp"

namespace convx_bindings {

namespace {

using std::int64_t;

// A layer's filters, copied and packed once (convx::ConvWeights) in the dtype
// of the array they were made from. Shared by the operators of every input
// shape the layer sees.
class PackedWeights {
 public:
  PackedWeights(const py::array& w, int64_t groups, const std::string& layout) {
    if (w.ndim() != 4) throw std::invalid_argument("weight: must be 4-D");
    const convx::Layout l = parse_layout(layout);
    const bool nhwc = l == convx::Layout::NHWC;
    const int64_t c_out = w.shape(0), k_h = w.shape(nhwc ? 1 : 2), k_w = w.shape(nhwc ? 2 : 3);
    const int64_t cig = w.shape(nhwc ? 3 : 1);
    const int64_t count = c_out * k_h * k_w * cig;
    if (dtype_of(w, "weight") == DType::F32) {
      f32_ = make<float>(w, count, c_out, k_h, k_w, cig, groups, l);
    } else {
      f64_ = make<double>(w, count, c_out, k_h, k_w, cig, groups, l);
    }
  }

  int64_t bytes() const { return f32_ ? f32_->bytes() : f64_->bytes(); }
  const std::shared_ptr<const convx::ConvWeights<float>>& f32() const { return f32_; }
  const std::shared_ptr<const convx::ConvWeights<double>>& f64() const { return f64_; }

 private:
  template <typename T>
  static std::shared_ptr<const convx::ConvWeights<T>> make(const py::array& w, int64_t count,
                                                           int64_t c_out, int64_t k_h,
                                                           int64_t k_w, int64_t cig,
                                                           int64_t groups, convx::Layout l) {
    const T* p = input_ptr<T>(w, count, "weight");
    std::shared_ptr<const convx::ConvWeights<T>> packed;
    without_gil([&] {
      packed = std::make_shared<const convx::ConvWeights<T>>(p, c_out, k_h, k_w, cig, groups, l);
    });
    return packed;
  }

  std::shared_ptr<const convx::ConvWeights<float>> f32_;
  std::shared_ptr<const convx::ConvWeights<double>> f64_;
};

// Multiply-adds below which a convolution runs without releasing the GIL: a
// convolution of a few thousand takes about as long as releasing and
// re-taking it.
constexpr double kKeepGilMacs = 1 << 14;

// Whether `x` is an ndarray (not a subclass) of exactly these dimensions,
// C-contiguous, of dtype T in native byte order: an array the core can take
// as it is.
template <typename T>
bool takes_as_is(py::handle x, const std::vector<py::ssize_t>& dims) {
  if (Py_TYPE(x.ptr()) != py::detail::npy_api::get().PyArray_Type_) return false;
  const auto a = py::reinterpret_borrow<py::array>(x);
  return has_dims(a, dims) && has_dtype<T>(a) && (a.flags() & py::array::c_style) != 0;
}

// One convx::Conv2d<T> with the NumPy shapes of its input, weights and output.
template <typename T>
class TypedOp {
 public:
  TypedOp(std::unique_ptr<convx::Conv2d<T>> op, bool batched) : op_(std::move(op)) {
    const convx::ConvShape& s = op_->shape();
    const bool nhwc = s.p.layout == convx::Layout::NHWC;
    in_ = nhwc ? Dims{s.n, s.h, s.w, s.c_in} : Dims{s.n, s.c_in, s.h, s.w};
    out_ = nhwc ? Dims{s.n, s.h_out, s.w_out, s.c_out} : Dims{s.n, s.c_out, s.h_out, s.w_out};
    w_ = nhwc ? Dims{s.c_out, s.k_h, s.k_w, s.c_in_per_group()}
              : Dims{s.c_out, s.c_in_per_group(), s.k_h, s.k_w};
    if (!batched) {
      in_.erase(in_.begin());
      out_.erase(out_.begin());
    }
  }

  const convx::Conv2d<T>& op() const { return *op_; }
  const std::vector<py::ssize_t>& out_dims() const { return out_; }

  // Whether x, w (None: the operator's own) and bias can be taken as they are,
  // and out (None: a new array) written as it is.
  bool takes(py::handle x, py::handle w, py::handle bias, py::handle out) const {
    if (!takes_as_is<T>(x, in_)) return false;
    if (!w.is_none() && !takes_as_is<T>(w, w_)) return false;
    if (!out.is_none() && !(takes_as_is<T>(out, out_) &&
                            py::reinterpret_borrow<py::array>(out).writeable())) {
      return false;
    }
    return bias.is_none() || takes_as_is<T>(bias, {static_cast<py::ssize_t>(op_->shape().c_out)});
  }

  // y = conv(x, w) + bias into `out` (None: a new array); w None: the
  // operator's own weights. Checks every buffer: dtype, contiguity, size, and
  // for `out` the exact shape, writeability and no overlap with the inputs.
  py::array run(const py::array& x, const py::object& w, const py::object& bias,
                const py::object& out) const {
    const convx::ConvShape& s = op_->shape();
    const T* xp = input_ptr<T>(x, s.input_size(), "x");
    const T* wp = nullptr;
    if (!w.is_none()) wp = input_ptr<T>(array_arg(w, "weight"), s.weight_size(), "weight");
    return run_with(x, xp, wp, w, checked_bias(bias), bias, out);
  }

  // run() for arrays that takes() accepted, so their data need no more checks.
  py::array run_taken(py::handle x, py::handle w, py::handle bias, py::handle out) const {
    const auto data = [](py::handle a) {
      return a.is_none() ? nullptr
                         : static_cast<const T*>(py::reinterpret_borrow<py::array>(a).data());
    };
    return run_with(py::reinterpret_borrow<py::array>(x), data(x), data(w),
                    py::reinterpret_borrow<py::object>(w), data(bias),
                    py::reinterpret_borrow<py::object>(bias),
                    py::reinterpret_borrow<py::object>(out));
  }

  // The data of a bias (None: nullptr) after checking it: c_out values of T.
  const T* checked_bias(const py::object& bias) const {
    if (bias.is_none()) return nullptr;
    const py::array b = array_arg(bias, "bias");
    if (b.ndim() != 1) throw std::invalid_argument("bias: must be 1-D");
    return input_ptr<T>(b, op_->shape().c_out, "bias");
  }

  // run() with the data of x, of the weights (wp, nullptr: the operator's own)
  // and of the bias (bp) already checked; w and bias are their arrays (or
  // None), for the overlap check of `out`.
  py::array run_with(const py::array& x, const T* xp, const T* wp, const py::object& w,
                     const T* bp, const py::object& bias, const py::object& out) const {
    const convx::ConvShape& s = op_->shape();
    py::array y;
    T* yp = nullptr;
    if (out.is_none()) {
      y = new_array<T>(out_);
      yp = static_cast<T*>(y.mutable_data());
    } else {
      y = array_arg(out, "out");
      if (!has_dims(y, out_)) {
        throw std::invalid_argument("out: must have shape " + dims_text(out_) + ", got " +
                                    dims_text({y.shape(), y.shape() + y.ndim()}));
      }
      yp = output_ptr<T>(y, s.output_size(), "out");
      if (overlaps(y, x) || (wp != nullptr && overlaps(y, py::reinterpret_borrow<py::array>(w))) ||
          (bp != nullptr && overlaps(y, py::reinterpret_borrow<py::array>(bias)))) {
        throw std::invalid_argument("out: must not overlap the input arrays");
      }
    }
    auto compute = [&] {
      if (wp != nullptr) {
        op_->run(xp, wp, bp, yp);
      } else {
        op_->run(xp, bp, yp);
      }
    };
    if (double(s.output_size()) * double(s.patch_size()) <= kKeepGilMacs) {
      compute();
      return y;
    }
    PyObject* result = y.release().ptr();  // raw across the GIL-free call (see gil.hpp)
    const std::exception_ptr error = call_without_gil(compute);
    y = py::reinterpret_steal<py::array>(result);
    if (error) std::rethrow_exception(error);
    return y;
  }

 private:
  using Dims = std::vector<py::ssize_t>;

  static py::array array_arg(const py::object& a, const char* name) {
    if (!py::isinstance<py::array>(a)) {
      throw py::type_error(std::string(name) + ": must be a numpy array");
    }
    return py::reinterpret_borrow<py::array>(a);
  }

  std::unique_ptr<convx::Conv2d<T>> op_;
  Dims in_, out_, w_;
};

// _core.Conv2dOp: a TypedOp of float or double.
class Conv2dOp {
 public:
  Conv2dOp(Int4 input_dims, Int2 cout_kh, int64_t k_w, Int2 stride, Int2 dilation, Int4 pad,
           int64_t groups, const std::string& layout, const std::string& activation,
           bool batched, const py::object& weights, bool f64,
           const std::string& padding_mode, const std::string& algorithm) {
    const convx::ConvShape shape = convx::make_conv_shape(
        input_dims[0], input_dims[1], input_dims[2], input_dims[3], cout_kh[0], cout_kh[1], k_w,
        make_params(stride, dilation, pad, groups, layout, padding_mode, algorithm));
    const convx::Activation act = parse_activation(activation);
    if (!weights.is_none()) {
      const auto& packed = weights.cast<const PackedWeights&>();
      weights_ = weights;
      if (packed.f32() != nullptr) {
        f32_ = std::make_unique<TypedOp<float>>(
            convx::Conv2d<float>::create(shape, packed.f32(), act), batched);
      } else {
        f64_ = std::make_unique<TypedOp<double>>(
            convx::Conv2d<double>::create(shape, packed.f64(), act), batched);
      }
    } else if (f64) {
      f64_ = std::make_unique<TypedOp<double>>(
          convx::Conv2d<double>::create_for_any_weights(shape, act), batched);
    } else {
      f32_ = std::make_unique<TypedOp<float>>(
          convx::Conv2d<float>::create_for_any_weights(shape, act), batched);
    }
  }

  py::array call(const py::array& x, const py::object& w, const py::object& bias,
                 const py::object& out) const {
    if (w.is_none() && weights_.is_none()) {
      throw std::invalid_argument("weight: this operator has no weights of its own");
    }
    return f32_ ? f32_->run(x, w, bias, out) : f64_->run(x, w, bias, out);
  }

  // call(), or None (computing nothing) when x, w or bias is not an array the
  // operator takes as it is (another shape or dtype, a copy needed), or out is
  // not an array it can write as it is: the caller then normalises the
  // arguments, or names what is wrong with them.
  py::object try_call(py::handle x, py::handle w, py::handle bias, py::handle out) const {
    const bool ok = f32_ ? f32_->takes(x, w, bias, out) : f64_->takes(x, w, bias, out);
    if (!ok || (w.is_none() && weights_.is_none())) return py::none();
    if (f32_) return f32_->run_taken(x, w, bias, out);
    return f64_->run_taken(x, w, bias, out);
  }

  // The operator with its weights and this bias attached: a builtin function
  // f(x, out=None), see bound_call.
  py::object bind(const py::object& self, const py::object& bias) const;

  // The bound call: try_call with the operator's weights and a bias whose
  // data `bias_data` bind() has checked.
  py::object call_bound(py::handle x, const py::object& bias, const void* bias_data,
                        py::handle out) const {
    const py::handle none(Py_None);
    if (f32_) {
      if (!f32_->takes(x, none, none, out)) return py::none();
      const auto a = py::reinterpret_borrow<py::array>(x);
      return f32_->run_with(a, static_cast<const float*>(a.data()), nullptr, py::none(),
                            static_cast<const float*>(bias_data), bias,
                            py::reinterpret_borrow<py::object>(out));
    }
    if (!f64_->takes(x, none, none, out)) return py::none();
    const auto a = py::reinterpret_borrow<py::array>(x);
    return f64_->run_with(a, static_cast<const double*>(a.data()), nullptr, py::none(),
                          static_cast<const double*>(bias_data), bias,
                          py::reinterpret_borrow<py::object>(out));
  }

  // The data of a bias for bind(): checked as for a call.
  const void* bias_data(const py::object& bias) const {
    if (f32_) return f32_->checked_bias(bias);
    return f64_->checked_bias(bias);
  }

  std::string algorithm() const {
    return convx::algorithm_name(f32_ ? f32_->op().algorithm() : f64_->op().algorithm());
  }
  std::string kernel() const { return f32_ ? f32_->op().kernel() : f64_->op().kernel(); }
  int64_t workspace_bytes() const {
    return f32_ ? f32_->op().workspace_bytes() : f64_->op().workspace_bytes();
  }
  double flops() const { return f32_ ? f32_->op().flops() : f64_->op().flops(); }
  py::tuple output_dims() const {
    const auto& d = f32_ ? f32_->out_dims() : f64_->out_dims();
    py::tuple t(d.size());
    for (std::size_t i = 0; i < d.size(); ++i) t[i] = d[i];
    return t;
  }

 private:
  std::unique_ptr<TypedOp<float>> f32_;
  std::unique_ptr<TypedOp<double>> f64_;
  py::object weights_;  // the PackedWeights, or None
};

// A Conv2dOp with its bias, kept alive here: a layer's repeated call passes
// only x (and out).
struct BoundOp {
  py::object owner, bias;  // the Conv2dOp object, which `op` points into
  const Conv2dOp* op;
  const void* bias_data;  // the bias's checked data, nullptr for none
};

// A layer's repeated call costs well under a microsecond beyond its
// arithmetic, and pybind11's dispatcher (type lookup of self, keyword
// handling) would be a large share of that. So the bound operator is handed
// to Python as a plain builtin function, called through CPython's
// vectorcall, whose self is a capsule owning the BoundOp.
constexpr const char* kBoundCapsule = "convx.BoundOp";

PyObject* bound_call(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 1 || nargs > 2) {
    PyErr_SetString(PyExc_TypeError, "a bound convx operator takes (x, out=None)");
    return nullptr;
  }
  const auto* bound = static_cast<const BoundOp*>(PyCapsule_GetPointer(self, kBoundCapsule));
  if (bound == nullptr) return nullptr;
  try {
    return bound->op->call_bound(args[0], bound->bias, bound->bias_data,
                                 nargs == 2 ? args[1] : Py_None)
        .release()
        .ptr();
  } CONVX_RETHROW_FORCED_UNWIND catch (...) {
    set_error_from_current_exception();
    return nullptr;
  }
}

PyMethodDef bound_call_def = {
    "bound_conv", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&bound_call)),
    METH_FASTCALL,
    "bound_conv(x, out=None)\n--\n\nThe convolution of x with the bound weights and bias, "
    "or None (computing nothing) when x is not a C-contiguous ndarray of exactly the "
    "operator's input shape and dtype."};

void delete_bound(PyObject* capsule) {
  delete static_cast<BoundOp*>(PyCapsule_GetPointer(capsule, kBoundCapsule));
}

py::object Conv2dOp::bind(const py::object& self, const py::object& bias) const {
  if (weights_.is_none()) throw std::invalid_argument("bind: the operator has no weights");
  if (!bias.is_none() && !py::reinterpret_borrow<py::array>(bias).attr("flags")["C_CONTIGUOUS"]
                              .cast<bool>()) {
    throw std::invalid_argument("bias: array must be C-contiguous");
  }
  // Checked once here (dtype, size), so that a call never checks it again.
  auto bound = std::make_unique<BoundOp>(BoundOp{self, bias, this, bias_data(bias)});
  PyObject* capsule = PyCapsule_New(bound.get(), kBoundCapsule, &delete_bound);
  if (capsule == nullptr) throw py::error_already_set();
  bound.release();  // the capsule owns it now
  // Our reference to the capsule, dropped on return: the function takes its own.
  const auto capsule_ref = py::reinterpret_steal<py::object>(capsule);
  PyObject* fn = PyCFunction_NewEx(&bound_call_def, capsule, nullptr);
  if (fn == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(fn);
}

// Conv2dOp.try_call(x, weight, bias, out): the functional conv2d's repeated
// call, made once per call of a cached operator. It is a plain method
// descriptor called through CPython's vectorcall: pybind11's dispatcher
// (argument vector, overload and keyword handling) would cost about as much as
// the rest of a tiny convolution's call.
PyObject* try_call_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 4) {
    PyErr_SetString(PyExc_TypeError, "try_call takes (x, weight, bias, out), positionally");
    return nullptr;
  }
  try {
    // The descriptor has checked that self is a Conv2dOp.
    const auto& op = py::handle(self).cast<const Conv2dOp&>();
    return op.try_call(args[0], args[1], args[2], args[3]).release().ptr();
  } CONVX_RETHROW_FORCED_UNWIND catch (...) {
    set_error_from_current_exception();
    return nullptr;
  }
}

// The docstring's first line is the signature, as pybind11 writes it (what
// .ci/check_stubs.py reads).
PyMethodDef try_call_def = {
    "try_call",
    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&try_call_method)),
    METH_FASTCALL,
    "try_call(self, x: object, weight: object, bias: object, out: object) -> object\n\n"
    "__call__, or None (computing nothing) when x, weight or bias is not an ndarray the "
    "operator takes as it is (exact shape and dtype, C-contiguous, native byte order), or "
    "out is not one it can write (also writeable). Positional arguments only."};

void add_try_call(const py::class_<Conv2dOp>& cls) {
  PyObject* descr =
      PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(cls.ptr()), &try_call_def);
  if (descr == nullptr) throw py::error_already_set();
  const auto owned = py::reinterpret_steal<py::object>(descr);
  if (PyObject_SetAttrString(cls.ptr(), "try_call", descr) != 0) throw py::error_already_set();
}

// The base class of convx.Conv2D, whose __call__ it implements in C so that
// a layer's repeated call runs no Python frame of its own. layer(x) or
// layer(x, out=o) calls the bound operator `self._fast(x, out)` and, when
// `self.save_input` is true, keeps x as `self._saved_input`; when the
// operator returns None (an input it cannot take as it is), and for any other
// way of calling, the call goes to the Python method `self._call_slow(*args,
// **kwargs)`, which normalises the arguments. Errors propagate as raised.
PyObject* g_fast_attr = nullptr;
PyObject* g_slow_attr = nullptr;
PyObject* g_out_key = nullptr;
PyObject* g_save_attr = nullptr;
PyObject* g_saved_attr = nullptr;

// Keeps x as the layer's `_saved_input` (for its backward) unless its
// `save_input` is false; false with a Python error set on failure. Both live
// in the instance's __dict__ (an absent save_input means the class default,
// True), read and written directly: a full attribute lookup would be a large
// share of a small layer's call.
bool save_input(PyObject* self, PyObject* x) {
  PyObject* dict = PyObject_GenericGetDict(self, nullptr);
  if (dict == nullptr) return false;
  bool ok = true;
  PyObject* save = PyDict_GetItemWithError(dict, g_save_attr);  // borrowed
  if (save == nullptr && PyErr_Occurred()) ok = false;
  const int on = !ok ? 0 : (save == nullptr || save == Py_True) ? 1
                         : save == Py_False ? 0 : PyObject_IsTrue(save);
  if (on < 0) ok = false;
  if (ok && on == 1) ok = PyDict_SetItem(dict, g_saved_attr, x) == 0;
  Py_DECREF(dict);
  return ok;
}

PyObject* drop(PyObject* y) {
  Py_DECREF(y);
  return nullptr;
}

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
    if (fast == nullptr) return nullptr;
    PyObject* x = PyTuple_GET_ITEM(args, 0);
    PyObject* call_args[2] = {x, out};
    PyObject* y = PyObject_Vectorcall(fast, call_args, 2, nullptr);
    Py_DECREF(fast);
    if (y == nullptr) return nullptr;
    if (y != Py_None) return save_input(self, x) ? y : drop(y);
    Py_DECREF(y);
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
  g_save_attr = PyUnicode_InternFromString("save_input");
  g_saved_attr = PyUnicode_InternFromString("_saved_input");
  if (g_fast_attr == nullptr || g_slow_attr == nullptr || g_out_key == nullptr ||
      g_save_attr == nullptr || g_saved_attr == nullptr) {
    throw py::error_already_set();
  }
  static PyType_Slot slots[] = {
      {Py_tp_call, reinterpret_cast<void*>(&layer_call)},
      {Py_tp_doc, const_cast<char*>(
                      "Base of convx.Conv2D: __call__(x, *, out=None) runs the bound operator "
                      "self._fast(x, out) (keeping x as self._saved_input when "
                      "self.save_input), or self._call_slow(x, out=out) when it declines.")},
      {0, nullptr}};
  static PyType_Spec spec = {"convx._core.LayerBase", static_cast<int>(sizeof(PyObject)), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, slots};
  PyObject* type = PyType_FromSpec(&spec);
  if (type == nullptr) throw py::error_already_set();
  m.add_object("LayerBase", py::reinterpret_steal<py::object>(type));
}

}  // namespace

void bind_operator(py::module_& m) {
  add_layer_base(m);
  py::class_<PackedWeights>(m, "PackedWeights")
      .def(py::init<const py::array&, int64_t, const std::string&>(), py::arg("weight"),
           py::arg("groups"), py::arg("layout"))
      .def_property_readonly("nbytes", &PackedWeights::bytes);
  py::class_<Conv2dOp> op_class(m, "Conv2dOp");
  op_class
      .def(py::init<Int4, Int2, int64_t, Int2, Int2, Int4, int64_t, const std::string&,
                    const std::string&, bool, const py::object&, bool, const std::string&,
                    const std::string&>(),
           py::arg("input_dims"), py::arg("cout_kh"), py::arg("k_w"), py::arg("stride"),
           py::arg("dilation"), py::arg("pad"), py::arg("groups"), py::arg("layout"),
           py::arg("activation"), py::arg("batched"), py::arg("weights"), py::arg("f64"),
           py::arg("padding_mode") = "zeros", py::arg("algorithm") = "auto")
      .def("__call__", &Conv2dOp::call, py::arg("x"), py::arg("weight"), py::arg("bias"),
           py::arg("out"))
      .def(
          "bind",
          [](const py::object& self, const py::object& bias) {
            return self.cast<const Conv2dOp&>().bind(self, bias);
          },
          py::arg("bias"))
      .def_property_readonly("algorithm", &Conv2dOp::algorithm)
      .def_property_readonly("kernel", &Conv2dOp::kernel)
      .def_property_readonly("workspace_bytes", &Conv2dOp::workspace_bytes)
      .def_property_readonly("flops", &Conv2dOp::flops)
      .def_property_readonly("output_dims", &Conv2dOp::output_dims);
  add_try_call(op_class);
}

}  // namespace convx_bindings
