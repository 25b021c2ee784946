#pragma once
// libtorch's CPU allocator with a cache for large blocks. glibc hands out blocks above its mmap
// threshold (32 MiB at most) as fresh mappings and unmaps them on free, so every forward pass of a
// large enough CPU computation (an evaluation batch of 8 windows of stories260K: attention scores
// of 67 MB) paid a page fault per 4 KiB again: 1.9k tokens/s against 13.8k for one window at a
// time. Freed blocks of 1 MiB and more are kept (up to a cap) and handed out again for requests of
// nearly their size, so a repeated computation reaches a steady state without new memory.
#include <cstddef>

namespace tessera::runtime {

// Installs the cache as libtorch's CPU allocator (once; later calls do nothing). `cap_bytes` bounds
// the memory kept in freed blocks; beyond it blocks go back to the system.
void install_cpu_block_cache(std::size_t cap_bytes);

}  // namespace tessera::runtime
