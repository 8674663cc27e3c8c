// Geometry of one output row for the row kernels (kernels/row_geometry.hpp).
#pragma once

#include "convx/shape.hpp"
#include "kernels/row_geometry.hpp"

namespace convx::detail {

inline RowGeometry row_geometry(const ConvShape& s, std::int64_t oh) {
  RowGeometry g;
  g.h = s.h;
  g.w_in = s.w;
  g.k_h = s.k_h;
  g.k_w = s.k_w;
  g.oh = oh;
  g.w_out = s.w_out;
  g.s_h = s.p.stride_h;
  g.s_w = s.p.stride_w;
  g.d_h = s.p.dilation_h;
  g.d_w = s.p.dilation_w;
  g.pad_top = s.p.pad.top;
  g.pad_left = s.p.pad.left;
  return g;
}

}  // namespace convx::detail
