#include "conv/gemm_conv.hpp"

#include <algorithm>

#include "conv/blocking.hpp"
#include "conv/nchw_patches.hpp"
#include "conv/patch_source.hpp"

namespace convx::detail {

namespace {

// Below this many flops a GEMM gains little from splitting it across threads.
constexpr double kSmallGemmFlops = 2.0e7;
// Below this many flops per extra thread, waking a worker costs more than it
// saves (as in the GEMM's own plan).
constexpr double kGemmFlopsPerThread = 1.0e6;

// Whether a run on `threads` threads gives each task whole GEMMs (serial
// ones) rather than running the GEMMs one after another, each parallel over
// its tiles. NCHW has one GEMM per image and group.
bool one_gemm_per_task(const ConvShape& s, int threads) {
  const double flops_per_gemm =
      2.0 * double(s.c_out_per_group()) * double(s.h_out * s.w_out) * double(s.patch_size());
  return s.n * s.groups() > 1 && threads > 1 && flops_per_gemm < kSmallGemmFlops;
}

// NCHW: Y_bg[m, (oh,ow)] = W_g[m, :] . patches_bg[(oh,ow), :]^T, one GEMM per
// image b and group g, with the filters as the left operand.
template <typename T>
void nchw_conv_gemm(const ConvJob<T>& job, bool pointwise, const T* x, const T* w,
                    std::int64_t b, std::int64_t g, T* y, const Epilogue<T>& ep, Executor& exec) {
  const ConvShape& s = job.s;
  const GemmKernel<T>& kern = job.kernels.gemm;
  const std::int64_t cout_g = s.c_out_per_group(), K = s.patch_size();
  const std::int64_t pixels = s.h_out * s.w_out;
  const T* image = x + (b * s.c_in + g * s.c_in_per_group()) * s.h * s.w;
  T* out = y + (b * s.c_out + g * cout_g) * pixels;
  const T* w_g = w + g * cout_g * K;
  if (pointwise) {
    const StridedMatrix<T> weights(w_g, K, 1);
    const StridedMatrix<T> input(image, pixels, 1);
    gemm_blocked<T>(kern, exec, cout_g, pixels, K, weights, input, out, pixels, 1, false, ep);
  } else {
    const std::int64_t kc = nchw_k_block(kern, cout_g, s.k_h * s.k_w, s.c_in_per_group());
    const StridedMatrix<T> weights(w_g, K, 1, kc);
    const NchwPatchColumns<T> patches(s, image, job.kernels.patch);
    gemm_blocked<T>(kern, exec, cout_g, pixels, K, weights, patches, out, pixels, 1, false, ep);
  }
}

// The epilogue of group g: its slice of the bias, per column (NHWC) or per row.
template <typename T>
Epilogue<T> group_epilogue(const ConvJob<T>& job, const T* bias, std::int64_t g) {
  Epilogue<T> ep;
  ep.activation = job.activation;
  if (bias != nullptr) {
    ep.bias = bias + g * job.s.c_out_per_group();
    ep.bias_mode = job.s.p.layout == Layout::NHWC ? BiasMode::PerColumn : BiasMode::PerRow;
  }
  return ep;
}

// NCHW: small GEMMs run one per task (each serial); large ones run one after
// another, each parallel over its tiles. The arithmetic is the same either way.
template <typename T>
void nchw_conv(const ConvJob<T>& job, bool pointwise, const T* x, const T* w, const T* bias,
               T* y) {
  const ConvShape& s = job.s;
  if (one_gemm_per_task(s, job.exec.threads())) {
    job.exec.run(s.n * s.groups(), job.exec.threads(), [&](std::int64_t t, WorkerScratch& sc) {
      SerialExecutor serial(sc);
      const std::int64_t b = t / s.groups(), g = t % s.groups();
      nchw_conv_gemm(job, pointwise, x, w, b, g, y, group_epilogue(job, bias, g), serial);
    });
    return;
  }
  for (std::int64_t g = 0; g < s.groups(); ++g) {
    for (std::int64_t b = 0; b < s.n; ++b) {
      nchw_conv_gemm(job, pointwise, x, w, b, g, y, group_epilogue(job, bias, g), job.exec);
    }
  }
}

// NHWC, group g, output rows [r0, r0 + rows) of the batch's (b, oh, ow):
// Y[r, m] = patches[r, :] . W[m, :]. The filters are the transposed
// (K x cout_g) right operand.
template <typename T>
void nhwc_conv_rows(const ConvJob<T>& job, bool pointwise, const T* x, const BSource<T>& w_b,
                    std::int64_t g, std::int64_t r0, std::int64_t rows, T* y,
                    const Epilogue<T>& ep, Executor& exec) {
  const ConvShape& s = job.s;
  const std::int64_t cout_g = s.c_out_per_group(), K = s.patch_size();
  T* out = y + r0 * s.c_out + g * cout_g;
  if (pointwise) {
    const StridedMatrix<T> input(x + r0 * s.c_in + g * s.c_in_per_group(), s.c_in, 1,
                                 nhwc_k_block(job.kernels.gemm, s.k_h, s.k_w, s.c_in_per_group(),
                                              s.groups()));
    gemm_blocked<T>(job.kernels.gemm, exec, rows, cout_g, K, input, w_b, out, s.c_out, 1, false,
                    ep);
  } else {
    const NhwcPatchRows<T> patches(s, x, g);
    const RowWindow<T> part(patches, r0);
    gemm_blocked<T>(job.kernels.gemm, exec, rows, cout_g, K, part, w_b, out, s.c_out, 1, false,
                    ep);
  }
}

// How the NHWC groups of a run on `threads` threads are shared out: with
// several groups and threads, one job whose tasks each compute a part of one
// group's rows with a serial GEMM (ShuffleNet's grouped 1x1s are 784 x 80 x
// 80 each: one parallel GEMM per group would wait on the pool once per
// group, for little work each time). parts == 0 runs the groups one after
// another, each GEMM parallel over its tiles.
struct GroupSplit {
  std::int64_t parts = 0, rows = 0;  // parts per group, rows per part
  int threads = 1;
};

template <typename T>
GroupSplit nhwc_group_split(const ConvShape& s, const GemmKernel<T>& kern, int threads) {
  GroupSplit split;
  const std::int64_t m = s.n * s.h_out * s.w_out;
  const double flops = 2.0 * double(m) * double(s.c_out) * double(s.patch_size());
  threads = static_cast<int>(std::clamp(flops / kGemmFlopsPerThread, 1.0, double(threads)));
  if (s.groups() == 1 || threads == 1) return split;
  split.threads = threads;
  // About four tasks per thread, so that a thread slowed by a neighbour on a
  // shared machine does fewer, each of at least kMinPartRows micro-panels.
  constexpr std::int64_t kTasksPerThread = 4, kMinPartRows = 4;
  const std::int64_t wanted = (kTasksPerThread * threads + s.groups() - 1) / s.groups();
  const std::int64_t most = std::max<std::int64_t>(1, m / (kMinPartRows * kern.mr));
  split.parts = std::min(wanted, most);
  split.rows = (m + split.parts - 1) / split.parts;
  split.rows = (split.rows + kern.mr - 1) / kern.mr * kern.mr;
  split.parts = (m + split.rows - 1) / split.rows;
  return split;
}

template <typename T>
void nhwc_conv(const ConvJob<T>& job, bool pointwise, const T* x, const T* w,
               const std::vector<std::unique_ptr<PrepackedB<T>>>* packed, const T* bias, T* y) {
  const ConvShape& s = job.s;
  const std::int64_t cout_g = s.c_out_per_group(), K = s.patch_size();
  const std::int64_t m = s.n * s.h_out * s.w_out;
  // The group's weights are (cout_g x K) row-major; the GEMM wants their
  // transpose, packed ahead of time when the operator owns them.
  auto one = [&](std::int64_t g, std::int64_t r0, std::int64_t rows, Executor& exec) {
    const StridedMatrix<T> weights_t(w + g * cout_g * K, 1, K);
    const BSource<T>& w_b = packed != nullptr ? static_cast<const BSource<T>&>(*(*packed)[g])
                                              : weights_t;
    nhwc_conv_rows(job, pointwise, x, w_b, g, r0, rows, y, group_epilogue(job, bias, g), exec);
  };
  const GroupSplit split = nhwc_group_split(s, job.kernels.gemm, job.exec.threads());
  if (split.parts == 0) {
    for (std::int64_t g = 0; g < s.groups(); ++g) one(g, 0, m, job.exec);
    return;
  }
  job.exec.run(s.groups() * split.parts, split.threads,
               [&](std::int64_t t, WorkerScratch& scratch) {
                 SerialExecutor serial(scratch);
                 const std::int64_t r0 = (t % split.parts) * split.rows;
                 one(t / split.parts, r0, std::min(split.rows, m - r0), serial);
               });
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
  const std::int64_t kc = nhwc_k_block<T>(kern, k_h, k_w, c_in_per_group, groups);
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
  if (job.s.p.layout == Layout::NHWC) {
    nhwc_conv(job, pointwise, x, w, packed, bias, y);
  } else {
    nchw_conv(job, pointwise, x, w, bias, y);
  }
}

template <typename T>
std::int64_t gemm_conv_workspace_bytes(const ConvShape& s, const GemmKernel<T>& kern, int threads,
                                       bool filters_packed) {
  const std::int64_t pixels = s.h_out * s.w_out, cout_g = s.c_out_per_group();
  const std::int64_t K = s.patch_size();
  if (s.p.layout == Layout::NHWC) {
    const std::int64_t kc = nhwc_k_block(kern, s.k_h, s.k_w, s.c_in_per_group(), s.groups());
    const GroupSplit split = nhwc_group_split(s, kern, threads);
    if (split.parts == 0) {
      return gemm_workspace_bytes<T>(kern, threads, s.n * pixels, cout_g, K, kc, filters_packed);
    }
    // Each thread runs parts of groups serially, with scratch of its own.
    return gemm_workspace_bytes<T>(kern, 1, split.rows, cout_g, K, kc, filters_packed) *
           std::min<std::int64_t>(split.threads, s.groups() * split.parts);
  }
  const std::int64_t kc =
      is_pointwise(s) ? kern.kc : nchw_k_block(kern, cout_g, s.k_h * s.k_w, s.c_in_per_group());
  if (one_gemm_per_task(s, threads)) {
    // Each thread runs whole GEMMs serially, with scratch of its own.
    const std::int64_t per_thread = gemm_workspace_bytes<T>(kern, 1, cout_g, pixels, K, kc);
    return per_thread * std::min<std::int64_t>(threads, s.n * s.groups());
  }
  return gemm_workspace_bytes<T>(kern, threads, cout_g, pixels, K, kc);
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
