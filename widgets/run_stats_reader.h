#pragma once
// Reads the per-layer statistics and block losses from a local run directory's
// stats/block_NNN.json, for runs made before runs recorded events.jsonl (reopened from an old
// session or added from disk); everything newer comes through the worker.
#include <QJsonObject>
#include <QString>

#include "run_trace.h"
#include "session_run.h"

namespace tessera::widgets {

// Fills trace.layers, trace.blocks (losses before/after) and total_blocks from stats/; files
// that are missing (unfinished blocks) are skipped.
void readRunStats(const QString& run_dir, RunTrace& trace);
// One layer's entry of a stats file (also the session file's form), for block `block`.
eval::LayerStats layerStatsFromJson(const QJsonObject& layer, std::int64_t block);

}  // namespace tessera::widgets
