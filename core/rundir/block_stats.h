#pragma once
// stats/block_NNN.json: one finished block's output losses and its Linears' statistics, written
// after the block's codes. A run resumes, the GUI draws and an export's metadata quotes them.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "eval/layer_stats_record.h"
#include "rundir/run_directory.h"

namespace tessera::rundir {

struct BlockStats {
  // The block's output loss on the quantized chain with plain RTN weights and with the method's;
  // absent only in a damaged or foreign file.
  std::optional<double> loss_rtn, loss;
  std::vector<eval::LayerStats> layers;  // each with this block's index
};

nlohmann::json to_json(const BlockStats& s);
// One layer's statistics without its block (the stats file is per block; the worker protocol adds it).
nlohmann::json layer_stats_json(const eval::LayerStats& l);
// Statistics are informative, so reading is lenient: an entry of "layers" without a string
// "layer" and a numeric "rel_weight_error" is left out, other fields missing or of the wrong type
// keep their defaults (dst_* are absent in runs made before DST statistics).
BlockStats block_stats_from_json(const nlohmann::json& j, std::int64_t block);

// Nothing when the file is missing, unreadable, not JSON or not an object.
std::optional<BlockStats> read_block_stats(const RunDirectory& dir, std::int64_t block);
// Written atomically, indented by 2 with a final newline.
void write_block_stats(const RunDirectory& dir, std::int64_t block, const BlockStats& s);

}  // namespace tessera::rundir
