#pragma once
// Reads the per-layer statistics and block losses from a local run directory's
// stats/block_NNN.json (through core/rundir), for runs made before runs recorded events.jsonl
// (reopened from an old session or added from disk); everything newer comes through the worker.
#include <QString>

#include "run_trace.h"

namespace tessera::widgets {

// Fills trace.layers, trace.blocks (block losses of RTN and the method) and total_blocks from
// stats/; blocks without a readable statistics file (unfinished blocks) are skipped.
void readRunStats(const QString& run_dir, RunTrace& trace);

}  // namespace tessera::widgets
