// Depthwise row kernels compiled for the avx2 path (flags set per file in
// CMakeLists.txt); the body is the portable one in dwconv_body.hpp.
#include "kernels/dwconv_body.hpp"
#include "kernels/kernels.hpp"

namespace convx::detail {

DwRowFn<float> sdwconv_row_avx2() { return &dw_row<float>; }
DwRowFn<double> ddwconv_row_avx2() { return &dw_row<double>; }

}  // namespace convx::detail
