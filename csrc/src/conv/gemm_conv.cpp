#include "conv/gemm_conv.hpp"

#include "conv/blocking.hpp"
#include "conv/patch_source.hpp"

namespace convx::detail {

namespace {

// Below this many flops a GEMM gains little from splitting it across threads.
constexpr double kSmallGemmFlops = 2.0e7;

// Whether an NCHW run on `threads` threads gives each thread whole images (a
// serial GEMM each) rather than running the images' GEMMs one after another,
// each parallel over its tiles.
bool one_image_per_task(const ConvShape& s, int threads) {
  const double flops_per_image =
      2.0 * double(s.c_out_per_group()) * double(s.h_out * s.w_out) * double(s.patch_size());
  return s.n > 1 && threads > 1 && flops_per_image < kSmallGemmFlops;
}

// NCHW, one group: Y_b[m, (oh,ow)] = W[m, :] . patches_b[(oh,ow), :]^T, one GEMM
// per image. Small per-image GEMMs run one image per task (each task serial);
// large ones run image after image, each GEMM parallel over its tiles. The
// arithmetic is the same either way.
template <typename T>
void nchw_conv_group(const ConvJob<T>& job, bool pointwise, const T* x, const T* w,
                     std::int64_t g, T* y, const Epilogue<T>& ep) {
  const ConvShape& s = job.s;
  const GemmKernel<T>& kern = job.kernels.gemm;
  const std::int64_t cout_g = s.c_out_per_group(), K = s.patch_size();
  const std::int64_t pixels = s.h_out * s.w_out;
  const StridedMatrix<T> weights(w + g * cout_g * K, K, 1);
  auto one_image = [&](std::int64_t b, Executor& exec) {
    const T* image = x + (b * s.c_in + g * s.c_in_per_group()) * s.h * s.w;
    T* out = y + (b * s.c_out + g * cout_g) * pixels;
    if (pointwise) {
      const StridedMatrix<T> input(image, pixels, 1);
      gemm_blocked<T>(kern, exec, cout_g, pixels, K, weights, input, out, pixels, 1, false, ep);
    } else {
      const NchwPatchColumns<T> patches(s, image);
      gemm_blocked<T>(kern, exec, cout_g, pixels, K, weights, patches, out, pixels, 1, false,
                      ep);
    }
  };
  if (one_image_per_task(s, job.exec.threads())) {
    job.exec.run(s.n, job.exec.threads(), [&](std::int64_t b, WorkerScratch& scratch) {
      SerialExecutor serial(scratch);
      one_image(b, serial);
    });
  } else {
    for (std::int64_t b = 0; b < s.n; ++b) one_image(b, job.exec);
  }
}

// NHWC, one group: Y[(b,oh,ow), m] = patches[(b,oh,ow), :] . W[m, :]; the whole
// batch is one GEMM. The filters are the transposed (K x cout_g) right operand.
template <typename T>
void nhwc_conv_group(const ConvJob<T>& job, bool pointwise, const T* x, const BSource<T>& w_b,
                     std::int64_t g, T* y, const Epilogue<T>& ep) {
  const ConvShape& s = job.s;
  const std::int64_t cout_g = s.c_out_per_group(), K = s.patch_size();
  const std::int64_t rows = s.n * s.h_out * s.w_out;
  T* out = y + g * cout_g;
  if (pointwise) {
    const StridedMatrix<T> input(x + g * s.c_in_per_group(), s.c_in, 1,
                                 nhwc_k_block(job.kernels.gemm, s.k_w, s.c_in_per_group()));
    gemm_blocked<T>(job.kernels.gemm, job.exec, rows, cout_g, K, input, w_b, out, s.c_out, 1,
                    false, ep);
  } else {
    const NhwcPatchRows<T> patches(s, x, g);
    gemm_blocked<T>(job.kernels.gemm, job.exec, rows, cout_g, K, patches, w_b, out, s.c_out, 1,
                    false, ep);
  }
}

}  // namespace

bool is_pointwise(const ConvShape& s) {
  return s.k_h == 1 && s.k_w == 1 && s.p.stride_h == 1 && s.p.stride_w == 1 &&
         s.p.pad.top == 0 && s.p.pad.bottom == 0 && s.p.pad.left == 0 && s.p.pad.right == 0;
}

template <typename T>
std::vector<std::unique_ptr<PrepackedB<T>>> pack_gemm_filters(const GemmKernel<T>& kern,
                                                              const T* w, std::int64_t c_out,
                                                              std::int64_t k_h, std::int64_t k_w,
                                                              std::int64_t c_in_per_group,
                                                              std::int64_t groups) {
  const std::int64_t cout_g = c_out / groups, K = k_h * k_w * c_in_per_group;
  const std::int64_t kc = nhwc_k_block<T>(kern, k_w, c_in_per_group);
  std::vector<std::unique_ptr<PrepackedB<T>>> packed;
  for (std::int64_t g = 0; g < groups; ++g) {
    packed.push_back(
        std::make_unique<PrepackedB<T>>(kern, w + g * cout_g * K, 1, K, K, cout_g, kc));
  }
  return packed;
}

template <typename T>
void run_gemm_conv(const ConvJob<T>& job, bool pointwise, const T* x, const T* w,
                   const std::vector<std::unique_ptr<PrepackedB<T>>>* packed, const T* bias,
                   T* y) {
  const ConvShape& s = job.s;
  const std::int64_t cout_g = s.c_out_per_group(), K = s.patch_size();
  const bool nhwc = s.p.layout == Layout::NHWC;
  for (std::int64_t g = 0; g < s.groups(); ++g) {
    Epilogue<T> ep;
    ep.activation = job.activation;
    if (bias != nullptr) {
      ep.bias = bias + g * cout_g;
      ep.bias_mode = nhwc ? BiasMode::PerColumn : BiasMode::PerRow;
    }
    if (!nhwc) {
      nchw_conv_group(job, pointwise, x, w, g, y, ep);
      continue;
    }
    // The group's weights are (cout_g x K) row-major; the GEMM wants their
    // transpose, packed ahead of time when the operator owns them.
    const StridedMatrix<T> weights_t(w + g * cout_g * K, 1, K);
    const BSource<T>& w_b = packed != nullptr ? static_cast<const BSource<T>&>(*(*packed)[g])
                                              : weights_t;
    nhwc_conv_group(job, pointwise, x, w_b, g, y, ep);
  }
}

template <typename T>
std::int64_t gemm_conv_workspace_bytes(const ConvShape& s, const GemmKernel<T>& kern, int threads,
                                       bool filters_packed) {
  const std::int64_t pixels = s.h_out * s.w_out, cout_g = s.c_out_per_group();
  const std::int64_t K = s.patch_size();
  if (s.p.layout == Layout::NHWC) {
    return gemm_workspace_bytes<T>(kern, threads, s.n * pixels, cout_g, K,
                                   nhwc_k_block(kern, s.k_w, s.c_in_per_group()),
                                   filters_packed);
  }
  if (one_image_per_task(s, threads)) {
    // Each thread runs whole images' GEMMs serially, with scratch of its own.
    const std::int64_t per_thread = gemm_workspace_bytes<T>(kern, 1, cout_g, pixels, K, kern.kc);
    return per_thread * std::min<std::int64_t>(threads, s.n);
  }
  return gemm_workspace_bytes<T>(kern, threads, cout_g, pixels, K, kern.kc);
}

#define CONVX_INSTANTIATE(T)                                                                    \
  template std::vector<std::unique_ptr<PrepackedB<T>>> pack_gemm_filters<T>(                    \
      const GemmKernel<T>&, const T*, std::int64_t, std::int64_t, std::int64_t, std::int64_t,   \
      std::int64_t);                                                                            \
  template void run_gemm_conv<T>(const ConvJob<T>&, bool, const T*, const T*,                   \
                                 const std::vector<std::unique_ptr<PrepackedB<T>>>*, const T*,  \
                                 T*);                                                           \
  template std::int64_t gemm_conv_workspace_bytes<T>(const ConvShape&, const GemmKernel<T>&,    \
                                                     int, bool);
CONVX_INSTANTIATE(float)
CONVX_INSTANTIATE(double)
#undef CONVX_INSTANTIATE

}  // namespace convx::detail
