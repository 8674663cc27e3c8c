#include "conv/depthwise.hpp"

#include <algorithm>

#include "conv/rows.hpp"
#include "convx/runtime.hpp"
#include "runtime/kernel_table.hpp"
#include "runtime/thread_pool.hpp"

namespace convx::detail {

bool is_depthwise(const ConvShape& s) {
  return s.p.layout == Layout::NHWC && s.groups() > 1 && s.groups() == s.c_in &&
         s.groups() == s.c_out;
}

template <typename T>
void conv2d_depthwise(const ConvShape& s, const T* x, const T* w, const T* bias, T* y,
                      Activation activation) {
  const std::int64_t C = s.c_in, taps = s.k_h * s.k_w;
  const std::int64_t rows = s.n * s.h_out;
  const DwRowFn<T> kernel = dwconv_row_kernel<T>();
  // Work per output row, in multiply-adds; rows are cheap, so batch them
  // into tasks of about this much work.
  const double row_work = double(s.w_out) * double(C) * double(taps);
  const int threads = static_cast<int>(
      std::clamp<double>(row_work * double(rows) / 2.0e5, 1.0, double(num_threads())));

  PoolLease lease;
  // OHWI depthwise weights are (C, k_h, k_w, 1); the kernel wants (k_h, k_w, C)
  // so that one tap's weights are contiguous across channels.
  T* wt = lease.shared().as<T>(static_cast<std::size_t>(taps * C));
  for (std::int64_t c = 0; c < C; ++c) {
    for (std::int64_t t = 0; t < taps; ++t) wt[t * C + c] = w[c * taps + t];
  }
  lease.run_items(rows, threads, [&](std::int64_t r, WorkerScratch&) {
    DwRow<T> row;
    static_cast<RowGeometry&>(row) = row_geometry(s, r % s.h_out);
    row.x = x + (r / s.h_out) * s.h * s.w * C;
    row.w = wt;
    row.bias = bias;
    row.y = y + r * s.w_out * C;
    row.channels = C;
    row.relu = activation == Activation::ReLU;
    kernel(row);
  });
}

template void conv2d_depthwise<float>(const ConvShape&, const float*, const float*, const float*,
                                      float*, Activation);
template void conv2d_depthwise<double>(const ConvShape&, const double*, const double*,
                                       const double*, double*, Activation);

}  // namespace convx::detail
