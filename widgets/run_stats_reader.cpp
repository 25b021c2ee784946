#include "run_stats_reader.h"

#include <algorithm>

#include "rundir/block_stats.h"
#include "rundir/run_manifest.h"

namespace tessera::widgets {

void readRunStats(const QString& run_dir, RunTrace& trace) {
  const rundir::RunDirectory dir(run_dir.toStdString());
  trace.layers.clear();
  trace.blocks.clear();
  std::int64_t blocks = 0;
  try {
    blocks = rundir::read_manifest(dir).blocks;
  } catch (const std::exception&) {
    return;  // not a run directory (any more): nothing to draw
  }
  for (std::int64_t k = 0; k < blocks; ++k) {
    const auto stats = rundir::read_block_stats(dir, k);
    if (!stats) continue;
    trace.blocks.push_back({k, stats->loss_rtn.value_or(0.0), stats->loss.value_or(0.0), 0.0});
    trace.layers.insert(trace.layers.end(), stats->layers.begin(), stats->layers.end());
    trace.progress.total_blocks = std::max(trace.progress.total_blocks, k + 1);
  }
}

}  // namespace tessera::widgets
