// Copies of short runs of values (an image strip of a few channels, a row of
// a small image), done inline: a library memcpy call per run costs more than
// the copy itself when there are tens of thousands of runs.
#pragma once

#include <cstdint>
#include <cstring>

namespace convx::detail {

// Runs of one to eight 32-byte chunks are copied chunk by chunk, the last
// chunk overlapping the one before; longer ones by memcpy, shorter ones value
// by value. Copying resnet50's conv1 patches (7 taps x 3 channels per strip)
// by memcpy calls cost it about a tenth of its time.
template <typename T>
inline void copy_run(T* __restrict dst, const T* __restrict src, std::int64_t n) {
  constexpr std::int64_t kChunk = 32 / sizeof(T);
  if (n >= kChunk && n <= 8 * kChunk) {
    std::int64_t t = 0;
    for (; t + kChunk <= n; t += kChunk) std::memcpy(dst + t, src + t, 32);
    if (t < n) std::memcpy(dst + n - kChunk, src + n - kChunk, 32);
  } else if (n > 8 * kChunk) {
    std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T));
  } else {
    for (std::int64_t t = 0; t < n; ++t) dst[t] = src[t];
  }
}

}  // namespace convx::detail
