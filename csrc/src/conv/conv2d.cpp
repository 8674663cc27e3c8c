// Forward convolution: implicit im2col feeding the blocked GEMM, with three
// shortcuts: a pointwise (1x1, stride 1, unpadded) layer is a GEMM on the
// input itself, a depthwise layer runs its own direct kernel, and so does a
// layer whose patches are only a handful of values (e.g. 3x3 over 1 channel).
#include "convx/conv2d.hpp"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "common/checked.hpp"
#include "conv/blocking.hpp"
#include "conv/depthwise.hpp"
#include "conv/direct.hpp"
#include "convx/runtime.hpp"
#include "conv/patch_source.hpp"
#include "gemm/driver.hpp"
#include "kernels/direct.hpp"
#include "runtime/float_mode.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/thread_pool.hpp"

namespace convx {
namespace {

// Below this many flops a GEMM gains little from splitting it across threads.
constexpr double kSmallGemmFlops = 2.0e7;

// NCHW, one group: Y_b[m, (oh,ow)] = W[m, :] . patches_b[(oh,ow), :]^T, one GEMM
// per image. Small per-image GEMMs run one image per task (each task serial);
// large ones run image after image, each GEMM parallel over its tiles. The
// arithmetic is the same either way.
template <typename T>
void nchw_conv_group(const ConvShape& s, const T* x, const T* w, std::int64_t g, T* y,
                     const Epilogue<T>& ep, bool pointwise) {
  const std::int64_t cout_g = s.c_out_per_group(), K = s.patch_size();
  const std::int64_t pixels = s.h_out * s.w_out;
  const detail::GemmKernel<T>& kern = detail::gemm_kernel<T>();
  const detail::StridedMatrix<T> weights(w + g * cout_g * K, K, 1);
  auto one_image = [&](std::int64_t b, detail::Executor& exec) {
    const T* image = x + (b * s.c_in + g * s.c_in_per_group()) * s.h * s.w;
    T* out = y + (b * s.c_out + g * cout_g) * pixels;
    if (pointwise) {
      const detail::StridedMatrix<T> input(image, pixels, 1);
      detail::gemm_blocked<T>(kern, exec, cout_g, pixels, K, weights, input, out, pixels, 1,
                              false, ep);
    } else {
      const detail::NchwPatchColumns<T> patches(s, image);
      detail::gemm_blocked<T>(kern, exec, cout_g, pixels, K, weights, patches, out, pixels, 1,
                              false, ep);
    }
  };
  const double flops_per_image = 2.0 * double(cout_g) * double(pixels) * double(K);
  if (s.n > 1 && num_threads() > 1 && flops_per_image < kSmallGemmFlops) {
    detail::PoolLease lease;
    lease.run(s.n, num_threads(), [&](std::int64_t b, detail::WorkerScratch& scratch) {
      detail::SerialExecutor serial(scratch);
      one_image(b, serial);
    });
  } else {
    for (std::int64_t b = 0; b < s.n; ++b) {
      detail::PoolLease lease;
      one_image(b, lease);
    }
  }
}

bool has_padding(const ConvShape& s) {
  return s.p.pad.top > 0 || s.p.pad.bottom > 0 || s.p.pad.left > 0 || s.p.pad.right > 0;
}

template <typename T>
bool all_finite(const T* w, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(w[i])) return false;
  }
  return true;
}

}  // namespace

template <typename T>
struct ConvWeights<T>::Impl {
  std::vector<T> raw;
  // NHWC only: per group, the (K x cout_g) transposed weights packed for the GEMM.
  std::vector<std::unique_ptr<detail::PrepackedB<T>>> packed;
  // NHWC, groups == 1, short patches: the weights in the direct kernel's layout.
  detail::DirectWeights<T> direct;
};

template <typename T>
ConvWeights<T>::ConvWeights(const T* w, std::int64_t c_out, std::int64_t k_h, std::int64_t k_w,
                            std::int64_t c_in_per_group, std::int64_t groups, Layout layout)
    : c_out_(c_out), k_h_(k_h), k_w_(k_w), c_in_per_group_(c_in_per_group), groups_(groups),
      layout_(layout), impl_(std::make_unique<Impl>()) {
  detail::require(c_out >= 1 && k_h >= 1 && k_w >= 1 && c_in_per_group >= 1,
                  "weight: every dimension must be >= 1");
  detail::require(groups >= 1 && c_out % groups == 0,
                  "groups: out_channels must be divisible by groups");
  detail::require(w != nullptr, "weight: null pointer");
  const std::int64_t K = detail::checked_product("weight", k_h, k_w, c_in_per_group);
  const std::int64_t count = detail::checked_product("weight", c_out, K);
  impl_->raw.assign(w, w + count);
  if (layout == Layout::NHWC && groups == 1 && K <= detail::kMaxDirectPatch) {
    impl_->direct = detail::prepare_direct_weights<T>(impl_->raw.data(), c_out, K);
  }
  if (layout == Layout::NHWC && !(groups > 1 && groups == c_out && c_in_per_group == 1)) {
    const std::int64_t cout_g = c_out / groups;
    // Packed for the K blocks of the GEMM's A operand (NhwcPatchRows, or the
    // input itself when pointwise), which nhwc_k_block gives for both.
    const detail::GemmKernel<T>& kern = detail::gemm_kernel<T>();
    const std::int64_t kc = detail::nhwc_k_block(kern, k_w, c_in_per_group);
    for (std::int64_t g = 0; g < groups; ++g) {
      impl_->packed.push_back(std::make_unique<detail::PrepackedB<T>>(
          kern, impl_->raw.data() + g * cout_g * K, 1, K, K, cout_g, kc));
    }
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
  std::int64_t total = std::int64_t(impl_->raw.size() * sizeof(T));
  for (const auto& p : impl_->packed) total += p->bytes();
  total += std::int64_t(impl_->direct.wt.size() * sizeof(T));
  return total;
}

namespace {

template <typename T>
void conv2d_impl(const ConvShape& s, const T* x, const T* w, const ConvWeights<T>* prepared,
                 const T* bias, T* y, Activation activation) {
  detail::require(s.groups() >= 1 && s.c_in % s.groups() == 0 && s.c_out % s.groups() == 0,
                  "conv2d: shape was not made by make_conv_shape");
  if (s.output_size() == 0) return;
  detail::require(x != nullptr && w != nullptr && y != nullptr, "conv2d: null pointer");
  const detail::FloatModeScope float_mode(flush_denormal());
  const std::int64_t G = s.groups();
  const std::int64_t cout_g = s.c_out_per_group();
  const std::int64_t K = s.patch_size();
  const std::int64_t pixels = s.h_out * s.w_out;
  // The depthwise kernels leave out the taps that fall on the padding, which
  // equals the formula (those inputs are 0) only for finite weights: an inf or
  // NaN weight times a padded zero is NaN. Such filters take the grouped GEMM
  // below, which multiplies the padding like any other input.
  if (detail::is_depthwise(s) && !(has_padding(s) && !all_finite(w, s.weight_size()))) {
    detail::conv2d_depthwise<T>(s, x, w, bias, y, activation);
    return;
  }
  if (detail::use_direct<T>(s)) {
    detail::conv2d_direct<T>(s, x, w, prepared != nullptr ? &prepared->impl().direct : nullptr,
                             bias, y, activation);
    return;
  }
  // Every patch is one pixel's channels, so the input already is the im2col matrix.
  const bool pointwise = s.k_h == 1 && s.k_w == 1 && s.p.stride_h == 1 && s.p.stride_w == 1 &&
                         s.p.pad.top == 0 && s.p.pad.bottom == 0 && s.p.pad.left == 0 &&
                         s.p.pad.right == 0;

  for (std::int64_t g = 0; g < G; ++g) {
    Epilogue<T> ep;
    ep.activation = activation;
    if (bias != nullptr) ep.bias = bias + g * cout_g;
    // Weights of the group are (cout_g x K) row-major; NHWC uses their transpose,
    // packed ahead of time when the weights were prepared.
    const detail::StridedMatrix<T> weights_t(w + g * cout_g * K, 1, K);
    const detail::BSource<T>& w_b =
        prepared != nullptr && !prepared->impl().packed.empty()
            ? static_cast<const detail::BSource<T>&>(*prepared->impl().packed[g])
            : weights_t;
    if (s.p.layout == Layout::NHWC) {
      // Y[(b,oh,ow), m] = patches[(b,oh,ow), :] . W[m, :]: the whole batch is one GEMM.
      if (bias != nullptr) ep.bias_mode = BiasMode::PerColumn;
      T* out = y + g * cout_g;
      const detail::GemmKernel<T>& kern = detail::gemm_kernel<T>();
      detail::PoolLease lease;
      if (pointwise) {
        // K blocked as NhwcPatchRows would, to match the prepacked weights.
        const detail::StridedMatrix<T> input(x + g * K, s.c_in, 1,
                                             detail::nhwc_k_block(kern, s.k_w, s.c_in_per_group()));
        detail::gemm_blocked<T>(kern, lease, s.n * pixels, cout_g, K, input, w_b, out, s.c_out,
                                1, false, ep);
      } else {
        const detail::NhwcPatchRows<T> patches(s, x, g);
        detail::gemm_blocked<T>(kern, lease, s.n * pixels, cout_g, K, patches, w_b, out,
                                s.c_out, 1, false, ep);
      }
    } else {
      if (bias != nullptr) ep.bias_mode = BiasMode::PerRow;
      nchw_conv_group(s, x, w, g, y, ep, pointwise);
    }
  }
}

}  // namespace

template <typename T>
void conv2d(const ConvShape& s, const T* x, const T* w, const T* bias, T* y,
            Activation activation) {
  conv2d_impl<T>(s, x, w, nullptr, bias, y, activation);
}

template <typename T>
void conv2d(const ConvShape& s, const T* x, const ConvWeights<T>& w, const T* bias, T* y,
            Activation activation) {
  const bool nhwc = s.p.layout == Layout::NHWC;
  if (!(w.layout() == s.p.layout && w.groups() == s.groups() && w.c_out() == s.c_out &&
        w.k_h() == s.k_h && w.k_w() == s.k_w && w.c_in_per_group() == s.c_in_per_group())) {
    detail::fail_arg(std::string("weight: prepared weights do not match the convolution (") +
                     (nhwc ? "NHWC" : "NCHW") + ")");
  }
  conv2d_impl<T>(s, x, w.data(), &w, bias, y, activation);
}

template <typename T>
std::int64_t conv2d_workspace_bytes(const ConvShape& s) {
  if (s.output_size() == 0) return 0;
  if (detail::is_depthwise(s)) {
    // NHWC transposes the taps to (k_h, k_w, C); NCHW reads them as given.
    return s.p.layout == Layout::NHWC ? s.k_h * s.k_w * s.c_in * std::int64_t(sizeof(T)) : 0;
  }
  if (detail::use_direct<T>(s)) return detail::direct_workspace_bytes<T>(s);
  const std::int64_t pixels = s.h_out * s.w_out;
  const detail::GemmKernel<T>& kern = detail::gemm_kernel<T>();
  if (s.p.layout == Layout::NHWC) {
    return detail::gemm_workspace_bytes<T>(kern, num_threads(), s.n * pixels,
                                           s.c_out_per_group(), s.patch_size(),
                                           detail::nhwc_k_block(kern, s.k_w, s.c_in_per_group()));
  }
  return detail::gemm_workspace_bytes<T>(kern, num_threads(), s.c_out_per_group(), pixels,
                                         s.patch_size(), kern.kc);
}

template std::int64_t conv2d_workspace_bytes<float>(const ConvShape&);
template std::int64_t conv2d_workspace_bytes<double>(const ConvShape&);
template class ConvWeights<float>;
template class ConvWeights<double>;
template void conv2d<float>(const ConvShape&, const float*, const ConvWeights<float>&,
                            const float*, float*, Activation);
template void conv2d<double>(const ConvShape&, const double*, const ConvWeights<double>&,
                             const double*, double*, Activation);
template void conv2d<float>(const ConvShape&, const float*, const float*, const float*, float*,
                            Activation);
template void conv2d<double>(const ConvShape&, const double*, const double*, const double*,
                             double*, Activation);

}  // namespace convx
