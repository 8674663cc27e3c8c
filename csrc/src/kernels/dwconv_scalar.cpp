// Depthwise row kernels compiled for the scalar path (flags set per file in
// CMakeLists.txt); the body is the portable one in dwconv_body.hpp.
#include "kernels/dwconv_body.hpp"
#include "kernels/kernels.hpp"

namespace convx::detail {

DwRowFn<float> sdwconv_row_scalar() { return &dw_row_generic<float>; }
DwRowFn<double> ddwconv_row_scalar() { return &dw_row_generic<double>; }

}  // namespace convx::detail
