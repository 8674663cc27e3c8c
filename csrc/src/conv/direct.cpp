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

// A batch whose padded input fits in this many bytes (a share of L1) is
// staged whole before the rows run.
constexpr std::int64_t kStageAllBytes = 16 << 10;

namespace {

// Where the direct path's rows read from, and the scratch it needs.
struct DirectLayout {
  std::int64_t ld = 0;         // c_out rounded up to the kernel's vector width
  std::int64_t width = 0;      // staged row length in pixels
  std::int64_t span_h = 0;     // input rows the output reads, from -pad_top on
  std::int64_t image_len = 0;  // values of one whole staged image
  bool cols_inside = false;    // rows that miss the top/bottom padding read in place
  bool stage_all = false;      // the whole batch is staged once
  std::int64_t shared = 0;     // values shared by all rows: weights, bias, staged batch
  std::int64_t per_thread = 0; // values of one thread's staged rows
};

template <typename T>
DirectLayout direct_layout(const ConvShape& s, std::int64_t lanes) {
  DirectLayout g;
  // Columns one output row reads, from -pad_left on, plus room for the
  // pixels past the row's end that the kernel may read (kDirectPixels).
  const std::int64_t span = (s.w_out - 1) * s.p.stride_w + (s.k_w - 1) * s.p.dilation_w + 1;
  g.width = span + (kDirectPixels - 1) * s.p.stride_w;
  g.cols_inside = s.p.pad.left == 0 && span <= s.w;
  g.span_h = (s.h_out - 1) * s.p.stride_h + (s.k_h - 1) * s.p.dilation_h + 1;
  const bool rows_inside = s.p.pad.top == 0 && g.span_h <= s.h;
  // A small batch that touches the padding is staged whole, zero-padded, once,
  // rather than k_h input rows for every output row that needs it.
  g.image_len = g.span_h * g.width * s.c_in;
  g.stage_all = !(g.cols_inside && rows_inside) &&
                s.n * g.image_len * std::int64_t(sizeof(T)) <= kStageAllBytes;
  g.ld = (s.c_out + lanes - 1) / lanes * lanes;
  g.shared = (s.patch_size() + 1) * g.ld + (g.stage_all ? s.n * g.image_len : 0);
  g.per_thread = g.stage_all ? 0 : s.k_h * g.width * s.c_in;
  return g;
}

}  // namespace

template <typename T>
std::int64_t direct_workspace_bytes(const ConvShape& s) {
  const DirectLayout g = direct_layout<T>(s, direct_kernel<T>().lanes);
  const std::int64_t threads = std::min<std::int64_t>(num_threads(), s.n * s.h_out);
  return (g.shared + g.per_thread * threads) * std::int64_t(sizeof(T));
}

namespace {

template <typename T>
void transpose_weights(const T* w, std::int64_t c_out, std::int64_t K, std::int64_t ld, T* wt) {
  std::fill(wt, wt + K * ld, T(0));
  for (std::int64_t m = 0; m < c_out; ++m) {
    for (std::int64_t k = 0; k < K; ++k) wt[k * ld + m] = w[m * K + k];
  }
}

}  // namespace

template <typename T>
DirectWeights<T> prepare_direct_weights(const T* w, std::int64_t c_out, std::int64_t K) {
  DirectWeights<T> d;
  const DirectKernel<T> kernel = direct_kernel<T>();
  if (kernel.fn == nullptr || K > kMaxDirectPatch) return d;
  d.ld = (c_out + kernel.lanes - 1) / kernel.lanes * kernel.lanes;
  d.wt.resize(static_cast<std::size_t>(K * d.ld));
  transpose_weights(w, c_out, K, d.ld, d.wt.data());
  return d;
}

template <typename T>
void conv2d_direct(const ConvShape& s, const T* x, const T* w, const DirectWeights<T>* ready,
                   const T* bias, T* y, Activation activation) {
  const DirectKernel<T> kernel = direct_kernel<T>();
  const std::int64_t K = s.patch_size();
  const std::int64_t rows = s.n * s.h_out;
  const double work = double(s.output_size()) * double(K);
  const int threads =
      static_cast<int>(std::clamp<double>(work / 2.0e5, 1.0, double(num_threads())));

  const DirectLayout g = direct_layout<T>(s, kernel.lanes);
  const std::int64_t ld = g.ld, width = g.width, span_h = g.span_h, image_len = g.image_len;
  const bool cols_inside = g.cols_inside, stage_all = g.stage_all;

  PoolLease lease;
  // The weights transposed to (K x ld) and the bias, both zero-padded: whole
  // vectors of output channels can then always be loaded. Then the staged
  // batch, if it is staged whole.
  T* scratch = lease.shared().as<T>(static_cast<std::size_t>(g.shared));
  T* bias_pad = scratch + K * ld;
  T* staged = bias_pad + ld;
  const T* wt = scratch;
  if (ready != nullptr && ready->ld == ld) {
    wt = ready->wt.data();
  } else {
    transpose_weights(w, s.c_out, K, ld, scratch);
  }
  std::fill(bias_pad, bias_pad + ld, T(0));
  if (bias != nullptr) std::copy(bias, bias + s.c_out, bias_pad);
  if (stage_all) {
    for (std::int64_t b = 0; b < s.n; ++b) {
      stage_image(staged + b * image_len, x + b * s.h * s.w * s.c_in, s.h, s.w, s.c_in,
                  s.p.pad.top, span_h, s.p.pad.left, width);
    }
  }
  // Patch offsets (DirectRow::off) for kernel rows row_step values apart: in
  // the image, in a whole staged image, or in k_h staged rows (consecutive,
  // whatever the dilation).
  // (The geometry in locals: stores to off could alias the fields of s.)
  const std::int64_t k_h = s.k_h, k_w = s.k_w, c_in = s.c_in, tap_step = s.p.dilation_w * c_in;
  auto offsets = [&](std::int64_t* off, std::int64_t row_step) {
    for (std::int64_t u = 0, t = 0; u < k_h; ++u) {
      for (std::int64_t v = 0; v < k_w; ++v) {
        for (std::int64_t c = 0; c < c_in; ++c, ++t) off[t] = u * row_step + v * tap_step + c;
      }
    }
  };
  std::int64_t off_image[kMaxDirectPatch], off_rows[kMaxDirectPatch], off_whole[kMaxDirectPatch];
  if (stage_all) {
    offsets(off_whole, s.p.dilation_h * width * s.c_in);
  } else {
    offsets(off_image, s.p.dilation_h * s.w * s.c_in);
    offsets(off_rows, width * s.c_in);
  }
  auto base_row = [&](std::int64_t b, std::int64_t oh) {
    DirectRow<T> row;
    static_cast<RowGeometry&>(row) = row_geometry(s, oh);
    row.x = x + b * s.h * s.w * s.c_in;
    row.off = off_image;
    row.wt = wt;
    row.bias = bias_pad;
    row.y = y + (b * s.h_out + oh) * s.w_out * s.c_out;
    row.c_in = s.c_in;
    row.c_out = s.c_out;
    row.ld = ld;
    row.relu = activation == Activation::ReLU;
    return row;
  };
  if (stage_all) {
    // Every row reads the staged image the same way, so one kernel call takes
    // a run of rows, never across images: a whole image on one thread (a tiny
    // layer's rows are one call, not a call each), else about eight runs per
    // thread.
    const std::int64_t run =
        threads == 1 ? s.h_out : std::clamp<std::int64_t>(rows / (8 * threads), 1, s.h_out);
    const std::int64_t runs_per_image = (s.h_out + run - 1) / run;
    auto run_rows = [&](std::int64_t t) {
      const std::int64_t b = t / runs_per_image, oh = t % runs_per_image * run;
      DirectRow<T> row = base_row(b, oh);
      row.x = staged + b * image_len;
      row.off = off_whole;
      row.h = span_h;
      row.w_in = width;
      row.pad_top = row.pad_left = 0;
      row.rows = std::min(run, s.h_out - oh);
      kernel.fn(row);
    };
    if (threads == 1) {
      // On this thread, without the pool's task machinery (with the offsets
      // from locals: 4.4K -> 4.3K instructions in the tiny layer's call).
      for (std::int64_t t = 0; t < s.n * runs_per_image; ++t) run_rows(t);
    } else {
      lease.run(s.n * runs_per_image, threads,
                [&](std::int64_t t, WorkerScratch&) { run_rows(t); });
    }
    return;
  }
  lease.run_items(rows, threads, [&](std::int64_t r, WorkerScratch& scratch) {
    DirectRow<T> row = base_row(r / s.h_out, r % s.h_out);
    const std::int64_t ih0 = row.oh * s.p.stride_h - s.p.pad.top;
    if (!cols_inside || ih0 < 0 || ih0 + (s.k_h - 1) * s.p.dilation_h >= s.h) {
      // A row that touches the padding: stage the k_h input rows it reads,
      // zero-padded, so that every pixel takes the kernel's branch-free path.
      T* window = scratch.primary.as<T>(static_cast<std::size_t>(g.per_thread));
      stage_rows(window, row.x, s.h, s.w, s.c_in, ih0, s.p.dilation_h, s.k_h, s.p.pad.left,
                 width);
      row.x = window;
      row.off = off_rows;
      row.h = s.k_h;
      row.w_in = width;
      row.oh = 0;
      row.s_h = row.d_h = 1;
      row.pad_top = row.pad_left = 0;
    }
    kernel.fn(row);
  });
}

template std::int64_t direct_workspace_bytes<float>(const ConvShape&);
template std::int64_t direct_workspace_bytes<double>(const ConvShape&);
template bool use_direct<float>(const ConvShape&);
template bool use_direct<double>(const ConvShape&);
template DirectWeights<float> prepare_direct_weights<float>(const float*, std::int64_t,
                                                            std::int64_t);
template DirectWeights<double> prepare_direct_weights<double>(const double*, std::int64_t,
                                                              std::int64_t);
template void conv2d_direct<float>(const ConvShape&, const float*, const float*,
                                   const DirectWeights<float>*, const float*, float*, Activation);
template void conv2d_direct<double>(const ConvShape&, const double*, const double*,
                                    const DirectWeights<double>*, const double*, double*,
                                    Activation);

}  // namespace convx::detail
