#pragma once
// Reads what a run directory says about itself without the core's torch code: the settings and
// calibration hash from run.json, and the per-layer statistics and block losses from
// stats/block_NNN.json. Used for runs reopened from a session or opened from disk.
#include <QJsonObject>
#include <QString>

#include "run_trace.h"
#include "session_run.h"

namespace tessera::widgets {

struct RunDirectoryInfo {
  pipeline::RunConfig config;
  QString calibration_sha256;
  bool finished = false;
  double seconds = 0;
  std::int64_t total_blocks = 0;
};

// Throws tessera::Error naming the file when run.json is missing or unreadable.
RunDirectoryInfo readRunDirectory(const QString& run_dir);
// Fills trace.layers, trace.blocks (losses before/after) and total_blocks from stats/; files
// that are missing (unfinished blocks) are skipped.
void readRunStats(const QString& run_dir, RunTrace& trace);
// One layer's entry of a stats file (also the session file's form), for block `block`.
eval::LayerStats layerStatsFromJson(const QJsonObject& layer, std::int64_t block);

}  // namespace tessera::widgets
