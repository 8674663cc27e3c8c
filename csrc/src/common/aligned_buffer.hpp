// A growable, 64-byte aligned scratch buffer. Owned by whoever needs scratch
// (a worker of the thread pool, or one call); never global.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace convx::detail {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { std::free(data_); }

  // Returns at least `bytes` bytes aligned to 64; contents are unspecified.
  void* reserve(std::size_t bytes) {
    if (bytes > capacity_) {
      std::size_t rounded = (bytes + 63) / 64 * 64;
      void* p = std::aligned_alloc(64, rounded);
      if (p == nullptr) throw std::bad_alloc();
      std::free(data_);
      data_ = p;
      capacity_ = rounded;
    }
    return data_;
  }

  template <typename T>
  T* as(std::size_t count) {
    return static_cast<T*>(reserve(count * sizeof(T)));
  }

 private:
  void* data_ = nullptr;
  std::size_t capacity_ = 0;
};

}  // namespace convx::detail
