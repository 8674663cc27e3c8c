// Depthwise row kernels for the scalar path (no ISA flags; always built); the
// body is the portable one in dwconv_body.hpp. Its channel blocks may be
// vectorised by the compiler for the baseline ISA, but nothing here depends on
// a vector width, so the descriptors say one lane.
#include "kernels/dwconv_body.hpp"
#include "kernels/kernels.hpp"

namespace convx::detail {

DwKernel<float> dwconv_f32_scalar() {
  return {&dw_row_generic<float>, 1, "f32 dwconv 1-lane scalar"};
}

DwKernel<double> dwconv_f64_scalar() {
  return {&dw_row_generic<double>, 1, "f64 dwconv 1-lane scalar"};
}

}  // namespace convx::detail
