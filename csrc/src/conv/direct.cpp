#include "conv/direct.hpp"

#include <algorithm>

#include "conv/rows.hpp"

namespace convx::detail {

// Patches up to kMaxDirectPatch values go direct. Beyond that the packed GEMM
// wins: its register tile reuses each loaded value many more times.
bool suits_direct(const ConvShape& s) {
  return s.p.layout == Layout::NHWC && s.groups() == 1 && s.patch_size() <= kMaxDirectPatch;
}

// Below this many multiply-adds a job stays on one thread.
constexpr double kWorkPerThread = 2.0e5;

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
  std::int64_t shared = 0;     // values shared by all rows: bias and staged batch
  std::int64_t weights = 0;    // values of the transposed weights, unless prepared
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
  // A small batch that touches the padding is staged whole, padded, once,
  // rather than k_h input rows for every output row that needs it.
  g.image_len = g.span_h * g.width * s.c_in;
  g.stage_all = !(g.cols_inside && rows_inside) &&
                s.n * g.image_len * std::int64_t(sizeof(T)) <= kStageAllBytes;
  g.ld = (s.c_out + lanes - 1) / lanes * lanes;
  g.shared = g.ld + (g.stage_all ? s.n * g.image_len : 0);
  g.weights = s.patch_size() * g.ld;
  g.per_thread = g.stage_all ? 0 : s.k_h * g.width * s.c_in;
  return g;
}

}  // namespace

template <typename T>
std::int64_t direct_workspace_bytes(const ConvShape& s, const DirectKernel<T>& kernel,
                                    int threads, bool weights_ready) {
  const DirectLayout g = direct_layout<T>(s, kernel.lanes);
  const std::int64_t used = std::min<std::int64_t>(threads, s.n * s.h_out);
  return (g.shared + (weights_ready ? 0 : g.weights) + g.per_thread * used) *
         std::int64_t(sizeof(T));
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
DirectWeights<T> prepare_direct_weights(const DirectKernel<T>& kernel, const T* w,
                                        std::int64_t c_out, std::int64_t K) {
  DirectWeights<T> d;
  d.ld = (c_out + kernel.lanes - 1) / kernel.lanes * kernel.lanes;
  d.wt.resize(static_cast<std::size_t>(K * d.ld));
  transpose_weights(w, c_out, K, d.ld, d.wt.data());
  return d;
}

namespace {

// Patch offsets (DirectRow::off) for kernel rows row_step values apart: in the
// image, in a whole staged image, or in k_h staged rows (consecutive, whatever
// the dilation).
void patch_offsets(const ConvShape& s, std::int64_t row_step, std::int64_t* off) {
  // The geometry in locals: stores to off could alias the fields of s.
  const std::int64_t k_h = s.k_h, k_w = s.k_w, c_in = s.c_in, tap_step = s.p.dilation_w * c_in;
  for (std::int64_t u = 0, t = 0; u < k_h; ++u) {
    for (std::int64_t v = 0; v < k_w; ++v) {
      for (std::int64_t c = 0; c < c_in; ++c, ++t) off[t] = u * row_step + v * tap_step + c;
    }
  }
}

// One run of the direct algorithm: the weights and bias in the kernel's layout
// (in the job's shared scratch unless prepared), the staged batch when it is
// staged whole, and the patch offsets.
template <typename T>
class DirectRun {
 public:
  DirectRun(const ConvJob<T>& job, const T* x, const T* w, const DirectWeights<T>* ready,
            const T* bias, T* y)
      : job_(job), s_(job.s), g_(direct_layout<T>(job.s, job.kernels.direct.lanes)), x_(x), y_(y) {
    const std::int64_t K = s_.patch_size(), ld = g_.ld;
    // The weights transposed to (K x ld) and the bias, both zero-padded: whole
    // vectors of output channels can then always be loaded. Then the staged
    // batch, if it is staged whole.
    const bool prepared = ready != nullptr && ready->ld == ld;
    const std::int64_t own_weights = prepared ? 0 : g_.weights;
    T* scratch =
        job.exec.shared().template as<T>(static_cast<std::size_t>(g_.shared + own_weights));
    bias_pad_ = scratch + own_weights;
    staged_ = bias_pad_ + ld;
    if (prepared) {
      wt_ = ready->wt.data();
    } else {
      transpose_weights(w, s_.c_out, K, ld, scratch);
      wt_ = scratch;
    }
    std::fill(bias_pad_, bias_pad_ + ld, T(0));
    if (bias != nullptr) std::copy(bias, bias + s_.c_out, bias_pad_);
    if (g_.stage_all) {
      for (std::int64_t b = 0; b < s_.n; ++b) {
        stage_image(staged_ + b * g_.image_len, x + b * s_.h * s_.w * s_.c_in, s_.h, s_.w,
                    s_.c_in, s_.p.pad.top, g_.span_h, s_.p.pad.left, g_.width,
                    staged_padding(s_));
      }
      patch_offsets(s_, s_.p.dilation_h * g_.width * s_.c_in, off_whole_);
    } else {
      patch_offsets(s_, s_.p.dilation_h * s_.w * s_.c_in, off_image_);
      patch_offsets(s_, g_.width * s_.c_in, off_rows_);
    }
  }

  void run(int threads) {
    if (g_.stage_all) {
      run_staged(threads);
    } else {
      run_by_rows(threads);
    }
  }

 private:
  // Output row oh of image b, reading the image in place.
  DirectRow<T> base_row(std::int64_t b, std::int64_t oh) const {
    DirectRow<T> row;
    static_cast<RowGeometry&>(row) = row_geometry(s_, oh);
    row.x = x_ + b * s_.h * s_.w * s_.c_in;
    row.off = off_image_;
    row.wt = wt_;
    row.bias = bias_pad_;
    row.y = y_ + (b * s_.h_out + oh) * s_.w_out * s_.c_out;
    row.c_in = s_.c_in;
    row.c_out = s_.c_out;
    row.ld = g_.ld;
    row.relu = job_.relu();
    return row;
  }

  // Every row reads the staged image the same way, so one kernel call takes a
  // run of rows, never across images: a whole image on one thread (a tiny
  // layer's rows are one call, not a call each), else about eight runs per
  // thread.
  void run_staged(int threads) {
    const std::int64_t rows = s_.n * s_.h_out;
    const std::int64_t run =
        threads == 1 ? s_.h_out : std::clamp<std::int64_t>(rows / (8 * threads), 1, s_.h_out);
    const std::int64_t runs_per_image = (s_.h_out + run - 1) / run;
    auto run_rows = [&](std::int64_t t) {
      const std::int64_t b = t / runs_per_image, oh = t % runs_per_image * run;
      DirectRow<T> row = base_row(b, oh);
      row.x = staged_ + b * g_.image_len;
      row.off = off_whole_;
      row.h = g_.span_h;
      row.w_in = g_.width;
      row.pad_top = row.pad_left = 0;
      row.rows = std::min(run, s_.h_out - oh);
      job_.kernels.direct.fn(row);
    };
    if (threads == 1) {
      // On this thread, without the pool's task machinery.
      for (std::int64_t t = 0; t < s_.n * runs_per_image; ++t) run_rows(t);
    } else {
      job_.exec.run(s_.n * runs_per_image, threads,
                    [&](std::int64_t t, WorkerScratch&) { run_rows(t); });
    }
  }

  // Row by row: rows that miss the top and bottom padding read the image in
  // place; the others stage the k_h input rows they read, zero-padded, so that
  // every pixel takes the kernel's branch-free path.
  void run_by_rows(int threads) {
    const ConvShape& s = s_;
    job_.exec.run_items(s.n * s.h_out, threads, [&](std::int64_t r, WorkerScratch& scratch) {
      DirectRow<T> row = base_row(r / s.h_out, r % s.h_out);
      const std::int64_t ih0 = row.oh * s.p.stride_h - s.p.pad.top;
      if (!g_.cols_inside || ih0 < 0 || ih0 + (s.k_h - 1) * s.p.dilation_h >= s.h) {
        T* window = scratch.primary.as<T>(static_cast<std::size_t>(g_.per_thread));
        stage_rows(window, row.x, s.h, s.w, s.c_in, ih0, s.p.dilation_h, s.k_h, s.p.pad.left,
                   g_.width, staged_padding(s));
        row.x = window;
        row.off = off_rows_;
        row.h = s.k_h;
        row.w_in = g_.width;
        row.oh = 0;
        row.s_h = row.d_h = 1;
        row.pad_top = row.pad_left = 0;
      }
      job_.kernels.direct.fn(row);
    });
  }

  const ConvJob<T>& job_;
  const ConvShape& s_;
  const DirectLayout g_;
  const T* x_;
  T* y_;
  const T* wt_ = nullptr;
  T* bias_pad_ = nullptr;
  T* staged_ = nullptr;
  std::int64_t off_image_[kMaxDirectPatch] = {}, off_rows_[kMaxDirectPatch] = {},
               off_whole_[kMaxDirectPatch] = {};
};

}  // namespace

template <typename T>
void run_direct(const ConvJob<T>& job, const T* x, const T* w, const DirectWeights<T>* ready,
                const T* bias, T* y) {
  const int threads =
      job.threads_for(double(job.s.output_size()) * double(job.s.patch_size()), kWorkPerThread);
  DirectRun<T>(job, x, w, ready, bias, y).run(threads);
}

#define CONVX_INSTANTIATE(T)                                                                 \
  template std::int64_t direct_workspace_bytes<T>(const ConvShape&, const DirectKernel<T>&,  \
                                                  int, bool);                                \
  template DirectWeights<T> prepare_direct_weights<T>(const DirectKernel<T>&, const T*,      \
                                                      std::int64_t, std::int64_t);           \
  template void run_direct<T>(const ConvJob<T>&, const T*, const T*, const DirectWeights<T>*, \
                              const T*, T*);
CONVX_INSTANTIATE(float)
CONVX_INSTANTIATE(double)
#undef CONVX_INSTANTIATE

}  // namespace convx::detail
