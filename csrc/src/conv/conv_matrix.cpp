#include "convx/conv_matrix.hpp"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "common/checked.hpp"

namespace convx {

namespace {

using detail::checked_product;
using detail::require;

// Kernel taps t in [lo, hi) whose position start + t*dilation lands inside
// [0, extent). Positions grow with t, so the valid taps form one interval.
struct TapRange {
  std::int64_t lo = 0, hi = 0;
  std::int64_t count() const { return hi - lo; }
};

TapRange tap_range(std::int64_t start, std::int64_t dilation, std::int64_t k,
                   std::int64_t extent) {
  TapRange r;
  r.lo = start >= 0 ? 0 : (-start + dilation - 1) / dilation;
  r.hi = start >= extent ? 0 : std::min(k, (extent - start + dilation - 1) / dilation);
  r.hi = std::max(r.hi, r.lo);
  return r;
}

// Everything about W that does not depend on the weight values: the extents of
// the vector W acts on, and for each output row/column index which kernel taps
// hit that vector (all of them for the padded image, fewer near the border of
// the unpadded one).
struct Plan {
  std::int64_t rows = 0, cols = 0, nnz = 0;
  std::int64_t hd = 0, wd = 0;     // extents of the domain image
  std::int64_t top = 0, left = 0;  // padded coordinate of the domain's (0, 0)
  std::vector<TapRange> taps_h;    // per output row i
  std::vector<TapRange> taps_w;    // per output column j
};

Plan make_plan(const ConvShape& s, ConvMatrixDomain domain) {
  const ConvParams& p = s.p;
  Plan plan;
  if (domain == ConvMatrixDomain::Padded) {
    plan.hd = s.h + p.pad.top + p.pad.bottom;
    plan.wd = s.w + p.pad.left + p.pad.right;
  } else {
    plan.hd = s.h;
    plan.wd = s.w;
    plan.top = p.pad.top;
    plan.left = p.pad.left;
  }
  plan.rows = checked_product("conv_matrix rows", s.h_out, s.w_out, s.c_out);
  plan.cols = checked_product("conv_matrix columns", plan.hd, plan.wd, s.c_in);

  std::int64_t sum_h = 0, sum_w = 0;
  plan.taps_h.resize(static_cast<std::size_t>(s.h_out));
  for (std::int64_t i = 0; i < s.h_out; ++i) {
    TapRange& t = plan.taps_h[static_cast<std::size_t>(i)];
    t = tap_range(i * p.stride_h - plan.top, p.dilation_h, s.k_h, plan.hd);
    sum_h += t.count();
  }
  plan.taps_w.resize(static_cast<std::size_t>(s.w_out));
  for (std::int64_t j = 0; j < s.w_out; ++j) {
    TapRange& t = plan.taps_w[static_cast<std::size_t>(j)];
    t = tap_range(j * p.stride_w - plan.left, p.dilation_w, s.k_w, plan.wd);
    sum_w += t.count();
  }
  // Row (i, j, m) holds taps_h[i].count() * taps_w[j].count() * cg entries, so
  // the total factorises over the two spatial axes.
  plan.nnz = checked_product("conv_matrix nnz", s.c_out, s.c_in_per_group(), sum_h, sum_w);
  return plan;
}

// The weights of each filter in the order a row of W visits them: channel q,
// then kernel column v, then kernel row u (the maths note's column-major
// flattening of a filter), i.e. seed[m][q][v][u].
template <typename T>
std::vector<T> weights_in_row_order(const ConvShape& s, const T* weight) {
  const std::int64_t kh = s.k_h, kw = s.k_w, cg = s.c_in_per_group();
  std::vector<T> seed(static_cast<std::size_t>(s.weight_size()));
  T* out = seed.data();
  const bool ohwi = s.p.layout == Layout::NHWC;
  for (std::int64_t m = 0; m < s.c_out; ++m) {
    for (std::int64_t q = 0; q < cg; ++q) {
      for (std::int64_t v = 0; v < kw; ++v) {
        for (std::int64_t u = 0; u < kh; ++u) {
          const std::int64_t at = ohwi ? ((m * kh + u) * kw + v) * cg + q
                                       : ((m * cg + q) * kh + u) * kw + v;
          *out++ = weight[at];
        }
      }
    }
  }
  return seed;
}

}  // namespace

ConvMatrixInfo conv_matrix_info(const ConvShape& shape, ConvMatrixDomain domain) {
  const Plan plan = make_plan(shape, domain);
  return ConvMatrixInfo{plan.rows, plan.cols, plan.nnz};
}

template <typename T>
CsrMatrix<T> conv_matrix_csr(const ConvShape& s, const T* weight, ConvMatrixDomain domain) {
  require(weight != nullptr, "weight: null pointer");
  const Plan plan = make_plan(s, domain);
  const std::vector<T> seed = weights_in_row_order(s, weight);

  CsrMatrix<T> a;
  a.rows = plan.rows;
  a.cols = plan.cols;
  a.indptr.resize(static_cast<std::size_t>(plan.rows) + 1);
  a.indices.resize(static_cast<std::size_t>(plan.nnz));
  a.data.resize(static_cast<std::size_t>(plan.nnz));

  const ConvParams& p = s.p;
  const std::int64_t kh = s.k_h, kw = s.k_w, cg = s.c_in_per_group();
  const std::int64_t cout_g = s.c_out_per_group();
  const std::int64_t plane = plan.hd * plan.wd;
  std::int64_t* indptr = a.indptr.data();
  std::int64_t* idx = a.indices.data();
  T* val = a.data.data();
  std::int64_t e = 0;
  std::int64_t row = 0;
  indptr[0] = 0;
  // Rows are m*h_out*w_out + j*h_out + i, so m, j, i nest outer to inner and
  // each row is appended right after the previous one.
  for (std::int64_t m = 0; m < s.c_out; ++m) {
    const std::int64_t chan0 = (m / cout_g) * cg;
    const T* wm = seed.data() + m * kh * kw * cg;
    for (std::int64_t j = 0; j < s.w_out; ++j) {
      const TapRange tw = plan.taps_w[static_cast<std::size_t>(j)];
      const std::int64_t x0 = j * p.stride_w - plan.left;
      for (std::int64_t i = 0; i < s.h_out; ++i) {
        const TapRange th = plan.taps_h[static_cast<std::size_t>(i)];
        const std::int64_t y0 = i * p.stride_h - plan.top;
        for (std::int64_t q = 0; q < cg; ++q) {
          const std::int64_t chan_base = (chan0 + q) * plane;
          for (std::int64_t v = tw.lo; v < tw.hi; ++v) {
            // Column of tap (u, v) is col_base + u*d_h; it is a valid index
            // only for u in th, which is all this loop visits.
            const std::int64_t col_base = chan_base + (x0 + v * p.dilation_w) * plan.hd + y0;
            const T* wv = wm + (q * kw + v) * kh;
            for (std::int64_t u = th.lo; u < th.hi; ++u) {
              idx[e] = col_base + u * p.dilation_h;
              val[e] = wv[u];
              ++e;
            }
          }
        }
        indptr[++row] = e;
      }
    }
  }
  return a;
}

template <typename T>
CooMatrix<T> conv_matrix_coo(const ConvShape& s, const T* weight, ConvMatrixDomain domain) {
  CsrMatrix<T> csr = conv_matrix_csr(s, weight, domain);
  CooMatrix<T> coo;
  coo.rows = csr.rows;
  coo.cols = csr.cols;
  coo.row.resize(csr.indices.size());
  for (std::int64_t r = 0; r < csr.rows; ++r) {
    const auto begin = static_cast<std::size_t>(csr.indptr[static_cast<std::size_t>(r)]);
    const auto end = static_cast<std::size_t>(csr.indptr[static_cast<std::size_t>(r) + 1]);
    std::fill(coo.row.begin() + static_cast<std::ptrdiff_t>(begin),
              coo.row.begin() + static_cast<std::ptrdiff_t>(end), r);
  }
  coo.col = std::move(csr.indices);
  coo.val = std::move(csr.data);
  return coo;
}

template <typename T>
std::vector<T> conv_bias_vector(const ConvShape& s, const T* bias) {
  const std::int64_t per_channel = checked_product("conv_bias_vector", s.h_out, s.w_out);
  checked_product("conv_bias_vector", per_channel, s.c_out);
  std::vector<T> b(static_cast<std::size_t>(per_channel * s.c_out), T(0));
  if (bias == nullptr) return b;
  for (std::int64_t m = 0; m < s.c_out; ++m) {
    std::fill(b.begin() + static_cast<std::ptrdiff_t>(m * per_channel),
              b.begin() + static_cast<std::ptrdiff_t>((m + 1) * per_channel), bias[m]);
  }
  return b;
}

template CsrMatrix<float> conv_matrix_csr<float>(const ConvShape&, const float*,
                                                 ConvMatrixDomain);
template CsrMatrix<double> conv_matrix_csr<double>(const ConvShape&, const double*,
                                                   ConvMatrixDomain);
template CooMatrix<float> conv_matrix_coo<float>(const ConvShape&, const float*,
                                                 ConvMatrixDomain);
template CooMatrix<double> conv_matrix_coo<double>(const ConvShape&, const double*,
                                                   ConvMatrixDomain);
template std::vector<float> conv_bias_vector<float>(const ConvShape&, const float*);
template std::vector<double> conv_bias_vector<double>(const ConvShape&, const double*);

}  // namespace convx
