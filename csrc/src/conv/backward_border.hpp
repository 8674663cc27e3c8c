// The input gradient's share of the padding in the modes other than Zeros:
// the adjoint of the padding map applied to the padding part of d(x_pad).
#pragma once

#include <cstdint>
#include <vector>

#include "convx/shape.hpp"

namespace convx::detail {

// The filters as border_adjoint() reads them: per group and tap (u, v) a
// cog x cig block, [g][u][v][m][c], so that one output channel's weights over
// the group's input channels are contiguous.
template <typename T>
std::vector<T> border_filters(const ConvShape& s, const T* w);

// dx += P^T d(x_pad)|padding, where d(x_pad)[i, j] = sum over the taps (u, v)
// and output pixels (oh, ow) with i = oh*s_h + u*d_h, j = ow*s_w + v*d_w of
// dy[oh, ow] . w[u, v] for each padded position (i, j) outside the input, and
// P maps it to the input pixel pad_source() reads it from. The positions are
// visited in row-major order per image and each one's sum runs over (u, v, m)
// in order, so the result does not depend on the thread count. Scratch: c_in
// + c_out values.
template <typename T>
void add_border_adjoint(const ConvShape& s, const T* filters, const T* dy, T* dx);

}  // namespace convx::detail
