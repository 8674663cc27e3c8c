// The forward convolution operator: validation, the choice of algorithm, the
// packed weights, and the dispatch of a run to conv/{gemm_conv, direct,
// depthwise}.cpp.
#include "convx/conv2d.hpp"

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/checked.hpp"
#include "conv/depthwise.hpp"
#include "conv/direct.hpp"
#include "conv/gemm_conv.hpp"
#include "conv/winograd.hpp"
#include "runtime/context_state.hpp"
#include "runtime/float_mode.hpp"

namespace convx {

const char* algorithm_name(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::Gemm: return "gemm";
    case Algorithm::Pointwise: return "pointwise";
    case Algorithm::Direct: return "direct";
    case Algorithm::Depthwise: return "depthwise";
    case Algorithm::Winograd: return "winograd";
    case Algorithm::Auto: return "auto";
    case Algorithm::Fast: return "fast";
  }
  return "unknown";
}

const char* algorithm_unsuitable(const ConvShape& s, Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::Auto:
    case Algorithm::Fast:
    case Algorithm::Gemm: return nullptr;
    case Algorithm::Pointwise:
      return detail::is_pointwise(s) ? nullptr
                                     : "pointwise needs a 1x1 filter, stride 1 and no padding";
    case Algorithm::Direct:
      return detail::suits_direct(s) ? nullptr
                                     : "direct needs layout NHWC, groups == 1 and a patch "
                                       "(k_h*k_w*in_channels) of at most 16 values";
    case Algorithm::Depthwise:
      return detail::is_depthwise(s) ? nullptr
                                     : "depthwise needs groups == in_channels == out_channels";
    case Algorithm::Winograd: return detail::winograd_unsuitable(s);
  }
  return "unknown algorithm";
}

Algorithm choose_algorithm(const ConvShape& s, bool filters_kept) {
  const Algorithm asked = s.p.algorithm;
  if (asked != Algorithm::Auto && asked != Algorithm::Fast) {
    const char* why = algorithm_unsuitable(s, s.p.algorithm);
    if (why != nullptr) detail::fail_arg(std::string("algorithm: ") + why);
    return s.p.algorithm;
  }
  if (detail::is_depthwise(s)) return Algorithm::Depthwise;
  if (detail::suits_direct(s)) return Algorithm::Direct;
  if (asked == Algorithm::Fast && filters_kept && detail::prefers_winograd(s)) {
    return Algorithm::Winograd;
  }
  if (detail::is_pointwise(s)) return Algorithm::Pointwise;
  return Algorithm::Gemm;
}

// The packed forms of a ConvWeights, one per algorithm its filters can take:
// the algorithm follows from the filter's dimensions and layout alone, except
// Pointwise, which packs as Gemm does.
template <typename T>
struct ConvWeights<T>::Impl {
  std::shared_ptr<detail::ContextState> context;
  const detail::KernelSet<T>* kernels = nullptr;
  std::vector<T> raw;
  std::vector<T> taps_hwc;                                        // Depthwise, NHWC
  detail::DirectWeights<T> direct;                                // Direct
  std::vector<std::unique_ptr<detail::PrepackedB<T>>> packed;    // Gemm, NHWC, per group
  // Winograd: transformed when the first operator that uses them is created
  // (the filters alone do not say whether one will).
  mutable std::mutex wino_mutex;
  mutable std::unique_ptr<detail::OwnedWinogradWeights<T>> wino;

  const detail::WinogradWeights<T>& winograd() const {
    const std::lock_guard<std::mutex> lock(wino_mutex);
    if (wino == nullptr) {
      wino = detail::make_winograd_weights(raw.data(), c_in_per_group, c_out, kernels->gemm.nr);
    }
    return wino->weights;
  }
  std::int64_t c_in_per_group = 0, c_out = 0;
};

namespace {

// A 1x1 problem with these filters, for asking which algorithm they take.
ConvShape filter_probe(std::int64_t c_out, std::int64_t k_h, std::int64_t k_w,
                       std::int64_t c_in_per_group, std::int64_t groups, Layout layout) {
  ConvShape s;
  s.n = 1;
  s.h = k_h;
  s.w = k_w;
  s.c_in = c_in_per_group * groups;
  s.c_out = c_out;
  s.k_h = k_h;
  s.k_w = k_w;
  s.h_out = s.w_out = 1;
  s.p.groups = groups;
  s.p.layout = layout;
  return s;
}

}  // namespace

template <typename T>
ConvWeights<T>::ConvWeights(const T* w, std::int64_t c_out, std::int64_t k_h, std::int64_t k_w,
                            std::int64_t c_in_per_group, std::int64_t groups, Layout layout,
                            Context& context)
    : c_out_(c_out), k_h_(k_h), k_w_(k_w), c_in_per_group_(c_in_per_group), groups_(groups),
      layout_(layout), impl_(std::make_unique<Impl>()) {
  detail::require(c_out >= 1 && k_h >= 1 && k_w >= 1 && c_in_per_group >= 1,
                  "weight: every dimension must be >= 1");
  detail::require(groups >= 1 && c_out % groups == 0,
                  "groups: out_channels must be divisible by groups");
  detail::require(w != nullptr, "weight: null pointer");
  detail::checked_product("weight", c_in_per_group, groups);
  const std::int64_t K = detail::checked_product("weight", k_h, k_w, c_in_per_group);
  const std::int64_t count = detail::checked_product("weight", c_out, K);
  Impl& d = *impl_;
  d.context = context.state();
  d.kernels = &detail::kernels_for<T>(context.isa());
  d.raw.assign(w, w + count);
  d.c_in_per_group = c_in_per_group;
  d.c_out = c_out;
  if (layout != Layout::NHWC) return;  // NCHW algorithms read the filters as given
  const ConvShape probe = filter_probe(c_out, k_h, k_w, c_in_per_group, groups, layout);
  switch (choose_algorithm(probe)) {
    case Algorithm::Depthwise:
      d.taps_hwc.resize(static_cast<std::size_t>(count));
      detail::depthwise_taps_hwc(d.raw.data(), c_out, k_h * k_w, d.taps_hwc.data());
      break;
    case Algorithm::Direct:
      d.direct = detail::prepare_direct_weights(d.kernels->direct, d.raw.data(), c_out, K);
      break;
    case Algorithm::Auto:
    case Algorithm::Fast: break;
    // Winograd's transform is made when an operator needs it; the GEMM's
    // packing serves the operators that are asked for gemm.
    case Algorithm::Winograd:
    case Algorithm::Pointwise:
    case Algorithm::Gemm:
      d.packed = detail::pack_gemm_filters(d.kernels->gemm, d.raw.data(), c_out, k_h, k_w,
                                           c_in_per_group, groups);
      break;
  }
}

template <typename T>
ConvWeights<T>::~ConvWeights() = default;

template <typename T>
const T* ConvWeights<T>::data() const {
  return impl_->raw.data();
}

template <typename T>
std::int64_t ConvWeights<T>::bytes() const {
  const Impl& d = *impl_;
  std::int64_t values = std::int64_t(d.raw.size() + d.taps_hwc.size() + d.direct.wt.size());
  std::int64_t total = values * std::int64_t(sizeof(T));
  for (const auto& p : d.packed) total += p->bytes();
  const std::lock_guard<std::mutex> lock(d.wino_mutex);
  if (d.wino != nullptr) total += d.wino->weights.values() * std::int64_t(sizeof(T));
  return total;
}

namespace {

// The shape as make_conv_shape() would make it from the same sizes and
// parameters: the operator's public entry points accept nothing else.
ConvShape validated(const ConvShape& s) {
  const ConvShape v = make_conv_shape(s.n, s.h, s.w, s.c_in, s.c_out, s.k_h, s.k_w, s.p);
  detail::require(v.h_out == s.h_out && v.w_out == s.w_out && v.p.stride_h == s.p.stride_h &&
                      v.p.stride_w == s.p.stride_w && v.p.dilation_h == s.p.dilation_h &&
                      v.p.dilation_w == s.p.dilation_w,
                  "conv2d: shape was not made by make_conv_shape");
  return v;
}

template <typename T>
const char* kernel_name(Algorithm algorithm, const ConvShape& s, const detail::KernelSet<T>& k) {
  switch (algorithm) {
    case Algorithm::Depthwise:
      if (s.p.layout == Layout::NHWC) return k.dw.name;
      return sizeof(T) == 4 ? "f32 depthwise-nchw portable" : "f64 depthwise-nchw portable";
    case Algorithm::Direct: return k.direct.name;
    case Algorithm::Pointwise:
    case Algorithm::Gemm: return k.gemm.name;
    case Algorithm::Winograd: return k.wino.name;
    case Algorithm::Auto:
    case Algorithm::Fast: break;
  }
  return "";
}

}  // namespace

template <typename T>
Conv2d<T>::Conv2d(const ConvShape& shape, Activation activation,
                  std::shared_ptr<detail::ContextState> context,
                  std::shared_ptr<const ConvWeights<T>> weights)
    : shape_(validated(shape)), activation_(activation), context_(std::move(context)),
      weights_(std::move(weights)), algorithm_(choose_algorithm(shape_, weights_ != nullptr)),
      kernels_(weights_ != nullptr
                   ? weights_->impl().kernels
                   : &detail::kernels_for<T>(static_cast<Isa>(context_->isa.load()))),
      kernel_(kernel_name(algorithm_, shape_, *kernels_)) {
  detail::require(activation == Activation::None || activation == Activation::ReLU,
                  "activation: unknown value");
  if (algorithm_ == Algorithm::Winograd && weights_ != nullptr) weights_->impl().winograd();
}

template <typename T>
Conv2d<T>::~Conv2d() = default;

template <typename T>
std::unique_ptr<Conv2d<T>> Conv2d<T>::create(const ConvShape& shape, const T* weights,
                                             Activation activation, Context& context) {
  const ConvShape s = validated(shape);
  auto packed = std::make_shared<const ConvWeights<T>>(
      weights, s.c_out, s.k_h, s.k_w, s.c_in_per_group(), s.groups(), s.p.layout, context);
  return create(s, std::move(packed), activation);
}

template <typename T>
std::unique_ptr<Conv2d<T>> Conv2d<T>::create(const ConvShape& shape,
                                             std::shared_ptr<const ConvWeights<T>> weights,
                                             Activation activation) {
  detail::require(weights != nullptr, "weight: null");
  const ConvWeights<T>& w = *weights;
  if (!(w.layout() == shape.p.layout && w.groups() == shape.groups() &&
        w.c_out() == shape.c_out && w.k_h() == shape.k_h && w.k_w() == shape.k_w &&
        w.c_in_per_group() * w.groups() == shape.c_in)) {
    detail::fail_arg(std::string("weight: prepared weights do not match the convolution (") +
                     (shape.p.layout == Layout::NHWC ? "NHWC" : "NCHW") + ")");
  }
  auto context = w.impl().context;
  return std::unique_ptr<Conv2d>(
      new Conv2d(shape, activation, std::move(context), std::move(weights)));
}

template <typename T>
std::unique_ptr<Conv2d<T>> Conv2d<T>::create_for_any_weights(const ConvShape& shape,
                                                             Activation activation,
                                                             Context& context) {
  return std::unique_ptr<Conv2d>(new Conv2d(shape, activation, context.state(), nullptr));
}

template <typename T>
void Conv2d<T>::run(const T* x, const T* bias, T* y) const {
  if (weights_ == nullptr) {
    throw std::logic_error("conv2d: this operator has no weights; pass them to run()");
  }
  run_impl(x, weights_->data(), bias, y);
}

template <typename T>
void Conv2d<T>::run(const T* x, const T* w, const T* bias, T* y) const {
  run_impl(x, w, bias, y);
}

template <typename T>
void Conv2d<T>::run_impl(const T* x, const T* w, const T* bias, T* y) const {
  const ConvShape& s = shape_;
  if (s.output_size() == 0) return;
  detail::require(x != nullptr && w != nullptr && y != nullptr, "conv2d: null pointer");
  detail::ContextState& state = *context_;
  const detail::FloatModeScope float_mode(state.flush.load(std::memory_order_relaxed));
  detail::PoolLease lease(state);
  const detail::ConvJob<T> job{s, *kernels_, lease, activation_};
  // The packed forms apply only to the weights they were made from.
  const auto* ready = weights_ != nullptr && w == weights_->data() ? &weights_->impl() : nullptr;
  switch (algorithm_) {
    case Algorithm::Depthwise:
      detail::run_depthwise(job, x, w, ready != nullptr && !ready->taps_hwc.empty()
                                           ? ready->taps_hwc.data() : nullptr, bias, y);
      return;
    case Algorithm::Direct:
      detail::run_direct(job, x, w, ready != nullptr && ready->direct.ld > 0
                                        ? &ready->direct : nullptr, bias, y);
      return;
    case Algorithm::Pointwise:
    case Algorithm::Gemm:
      detail::run_gemm_conv(job, algorithm_ == Algorithm::Pointwise, x, w,
                            ready != nullptr && !ready->packed.empty() ? &ready->packed : nullptr,
                            bias, y);
      return;
    case Algorithm::Winograd: {
      const auto* u = ready != nullptr ? &ready->winograd() : nullptr;
      const bool finite = (u != nullptr ? u->finite : detail::all_finite(w, s.weight_size())) &&
                          detail::all_finite(x, s.input_size());
      if (finite) {
        detail::run_winograd(job, x, w, u, bias, y);
      } else {  // the formula's infinities and NaN (winograd.hpp's all_finite)
        detail::run_gemm_conv(job, false, x, w,
                              ready != nullptr && !ready->packed.empty() ? &ready->packed
                                                                         : nullptr,
                              bias, y);
      }
      return;
    }
    case Algorithm::Auto:
    case Algorithm::Fast: break;
  }
}

template <typename T>
std::int64_t Conv2d<T>::workspace_bytes() const {
  const ConvShape& s = shape_;
  if (s.output_size() == 0) return 0;
  const int threads = context_->threads.load(std::memory_order_relaxed);
  const bool own = weights_ != nullptr;
  switch (algorithm_) {
    case Algorithm::Depthwise: return detail::depthwise_workspace_bytes<T>(s, own, threads);
    case Algorithm::Direct:
      return detail::direct_workspace_bytes<T>(s, kernels_->direct, threads, own);
    case Algorithm::Pointwise:
    case Algorithm::Gemm:
      return detail::gemm_conv_workspace_bytes<T>(s, kernels_->gemm, threads,
                                                 own && s.p.layout == Layout::NHWC);
    case Algorithm::Winograd:  // or the GEMM's, for a run with non-finite values
      return std::max(detail::winograd_workspace_bytes<T>(s, *kernels_, threads, own),
                      detail::gemm_conv_workspace_bytes<T>(s, kernels_->gemm, threads, own));
    case Algorithm::Auto:
    case Algorithm::Fast: break;
  }
  return 0;
}

template <typename T>
double Conv2d<T>::flops() const {
  return 2.0 * double(shape_.output_size()) * double(shape_.patch_size());
}

template <typename T>
void conv2d(const ConvShape& s, const T* x, const T* w, const T* bias, T* y,
            Activation activation) {
  Conv2d<T>::create_for_any_weights(s, activation)->run(x, w, bias, y);
}

template <typename T>
void conv2d(const ConvShape& s, const T* x, const ConvWeights<T>& w, const T* bias, T* y,
            Activation activation) {
  // A non-owning handle (the aliasing constructor, no control block): the
  // caller's weights outlive this call.
  const std::shared_ptr<const ConvWeights<T>> view(std::shared_ptr<void>(), &w);
  Conv2d<T>::create(s, view, activation)->run(x, bias, y);
}

template <typename T>
std::int64_t conv2d_workspace_bytes(const ConvShape& s) {
  return Conv2d<T>::create_for_any_weights(s)->workspace_bytes();
}

#define CONVX_INSTANTIATE(T)                                                                 \
  template class ConvWeights<T>;                                                             \
  template class Conv2d<T>;                                                                  \
  template void conv2d<T>(const ConvShape&, const T*, const T*, const T*, T*, Activation);   \
  template void conv2d<T>(const ConvShape&, const T*, const ConvWeights<T>&, const T*, T*,   \
                          Activation);                                                       \
  template std::int64_t conv2d_workspace_bytes<T>(const ConvShape&);
CONVX_INSTANTIATE(float)
CONVX_INSTANTIATE(double)
#undef CONVX_INSTANTIATE

}  // namespace convx
