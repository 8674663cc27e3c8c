#include "conv/direct.hpp"

#include <algorithm>

#include "conv/rows.hpp"
#include "convx/runtime.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/thread_pool.hpp"

namespace convx::detail {

// Patches up to kMaxDirectPatch values go direct. Beyond that the packed GEMM
// wins: its register tile reuses each loaded value many more times.
template <typename T>
bool use_direct(const ConvShape& s) {
  return s.p.layout == Layout::NHWC && s.groups() == 1 && s.patch_size() <= kMaxDirectPatch &&
         direct_kernel<T>().fn != nullptr;
}

template <typename T>
void conv2d_direct(const ConvShape& s, const T* x, const T* w, const T* bias, T* y,
                   Activation activation) {
  const DirectKernel<T> kernel = direct_kernel<T>();
  const std::int64_t K = s.patch_size();
  const std::int64_t ld = (s.c_out + kernel.lanes - 1) / kernel.lanes * kernel.lanes;
  const std::int64_t rows = s.n * s.h_out;
  const double work = double(s.output_size()) * double(K);
  const int threads =
      static_cast<int>(std::clamp<double>(work / 2.0e5, 1.0, double(num_threads())));

  PoolLease lease;
  // OHWI weights (c_out x K) transposed to (K x ld), zero-padded, plus the
  // padded bias: whole vectors of output channels can then always be loaded.
  T* wt = lease.shared().as<T>(static_cast<std::size_t>((K + 1) * ld));
  T* bias_pad = wt + K * ld;
  std::fill(wt, wt + (K + 1) * ld, T(0));
  for (std::int64_t m = 0; m < s.c_out; ++m) {
    for (std::int64_t k = 0; k < K; ++k) wt[k * ld + m] = w[m * K + k];
    if (bias != nullptr) bias_pad[m] = bias[m];
  }
  // Columns one output row reads, from -pad_left on, plus room for the
  // pixels past the row's end that the kernel may read (kDirectPixels).
  const std::int64_t span = (s.w_out - 1) * s.p.stride_w + (s.k_w - 1) * s.p.dilation_w + 1;
  const std::int64_t width = span + (kDirectPixels - 1) * s.p.stride_w;
  const bool cols_inside = s.p.pad.left == 0 && span <= s.w;
  // Patch offsets (DirectRow::off) for rows read in place and for staged rows.
  std::int64_t off_image[kMaxDirectPatch], off_staged[kMaxDirectPatch];
  for (std::int64_t u = 0, t = 0; u < s.k_h; ++u) {
    for (std::int64_t v = 0; v < s.k_w; ++v) {
      for (std::int64_t c = 0; c < s.c_in; ++c, ++t) {
        off_image[t] = (u * s.p.dilation_h * s.w + v * s.p.dilation_w) * s.c_in + c;
        off_staged[t] = (u * width + v * s.p.dilation_w) * s.c_in + c;
      }
    }
  }
  lease.run_items(rows, threads, [&](std::int64_t r, WorkerScratch& scratch) {
    DirectRow<T> row;
    static_cast<RowGeometry&>(row) = row_geometry(s, r % s.h_out);
    row.x = x + (r / s.h_out) * s.h * s.w * s.c_in;
    row.off = off_image;
    const std::int64_t ih0 = row.oh * s.p.stride_h - s.p.pad.top;
    if (!cols_inside || ih0 < 0 || ih0 + (s.k_h - 1) * s.p.dilation_h >= s.h) {
      // A row that touches the padding: stage the k_h input rows it reads,
      // zero-padded, so that every pixel takes the kernel's branch-free path.
      T* window = scratch.pack.as<T>(static_cast<std::size_t>(s.k_h * width * s.c_in));
      stage_rows(window, row.x, s.h, s.w, s.c_in, ih0, s.p.dilation_h, s.k_h, s.p.pad.left,
                 width);
      row.x = window;
      row.off = off_staged;
      row.h = s.k_h;
      row.w_in = width;
      row.oh = 0;
      row.s_h = row.d_h = 1;
      row.pad_top = row.pad_left = 0;
    }
    row.wt = wt;
    row.bias = bias_pad;
    row.y = y + r * s.w_out * s.c_out;
    row.c_in = s.c_in;
    row.c_out = s.c_out;
    row.ld = ld;
    row.relu = activation == Activation::ReLU;
    kernel.fn(row);
  });
}

template bool use_direct<float>(const ConvShape&);
template bool use_direct<double>(const ConvShape&);
template void conv2d_direct<float>(const ConvShape&, const float*, const float*, const float*,
                                   float*, Activation);
template void conv2d_direct<double>(const ConvShape&, const double*, const double*,
                                    const double*, double*, Activation);

}  // namespace convx::detail
