#include "runtime/cpu_block_cache.h"

#include <c10/core/CPUAllocator.h>
#include <torch/version.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>

namespace tessera::runtime {

namespace {

constexpr std::size_t kLarge = std::size_t{1} << 20;  // smaller blocks stay with libtorch's allocator
constexpr std::size_t kAlignment = 64;

// Libtorch 2.3 made allocate() non-const and added copy_data().
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define TESSERA_ALLOCATE_CONST
#define TESSERA_HAS_COPY_DATA 1
#else
#define TESSERA_ALLOCATE_CONST const
#define TESSERA_HAS_COPY_DATA 0
#endif

class CpuBlockCache final : public c10::Allocator {
 public:
  CpuBlockCache(c10::Allocator* fallback, std::size_t cap) : fallback_(fallback), cap_(cap) {}

  c10::DataPtr allocate(std::size_t n) TESSERA_ALLOCATE_CONST override {
    if (n < kLarge) return fallback_->allocate(n);
    auto* self = const_cast<CpuBlockCache*>(this);
    void* p = self->take(n);
    return {p, new Block{self, p, n}, &CpuBlockCache::release, c10::Device(c10::DeviceType::CPU)};
  }
#if TESSERA_HAS_COPY_DATA
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
#endif

 private:
  struct Block {
    CpuBlockCache* cache;
    void* data;
    std::size_t bytes;
  };

  // A cached block of at least n and at most n + n/4 bytes, else a new one.
  void* take(std::size_t& n) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.lower_bound(n);
      if (it != free_.end() && it->first <= n + n / 4) {
        n = it->first;
        void* p = it->second;
        free_.erase(it);
        cached_bytes_ -= n;
        return p;
      }
    }
    void* p = std::aligned_alloc(kAlignment, (n + kAlignment - 1) / kAlignment * kAlignment);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }

  static void release(void* ctx) {
    auto* b = static_cast<Block*>(ctx);
    b->cache->give_back(b->data, b->bytes);
    delete b;
  }

  void give_back(void* p, std::size_t n) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (cached_bytes_ + n <= cap_) {
        free_.emplace(n, p);
        cached_bytes_ += n;
        return;
      }
    }
    std::free(p);
  }

  c10::Allocator* fallback_;
  std::size_t cap_;
  std::mutex mutex_;
  std::multimap<std::size_t, void*> free_;
  std::size_t cached_bytes_ = 0;
};

}  // namespace

void install_cpu_block_cache(std::size_t cap_bytes) {
  static std::once_flag once;
  std::call_once(once, [&] {
    // Never destroyed: tensors may be freed during static destruction.
    c10::SetCPUAllocator(new CpuBlockCache(c10::GetCPUAllocator(), cap_bytes), /*priority=*/1);
  });
}

}  // namespace tessera::runtime
