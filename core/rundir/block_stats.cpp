#include "rundir/block_stats.h"

#include <fstream>

#include "io/atomic_file.h"

namespace tessera::rundir {

using nlohmann::json;

json layer_stats_json(const eval::LayerStats& l) {
  return {{"layer", l.layer},           {"rel_weight_error", l.rel_weight_error},
          {"output_mse", l.output_mse}, {"flip_ratio", l.flip_ratio},
          {"dst_min", l.dst_min},       {"dst_max", l.dst_max},
          {"dst_std", l.dst_std}};
}

json to_json(const BlockStats& s) {
  json layers = json::array();
  for (const auto& l : s.layers) layers.push_back(layer_stats_json(l));
  json j = {{"layers", layers}};
  if (s.loss_rtn) j["loss_rtn"] = *s.loss_rtn;
  if (s.loss) j["loss"] = *s.loss;
  return j;
}

namespace {

std::optional<double> number(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

}  // namespace

BlockStats block_stats_from_json(const json& j, std::int64_t block) {
  BlockStats s;
  if (!j.is_object()) return s;
  s.loss_rtn = number(j, "loss_rtn");
  s.loss = number(j, "loss");
  const auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array()) return s;
  for (const auto& l : *layers) {
    if (!l.is_object() || !l.contains("layer") || !l["layer"].is_string() || !number(l, "rel_weight_error")) continue;
    eval::LayerStats e;
    e.block = block;
    e.layer = l["layer"].get<std::string>();
    e.rel_weight_error = *number(l, "rel_weight_error");
    e.output_mse = number(l, "output_mse").value_or(e.output_mse);
    e.flip_ratio = number(l, "flip_ratio").value_or(e.flip_ratio);
    e.dst_min = number(l, "dst_min").value_or(e.dst_min);
    e.dst_max = number(l, "dst_max").value_or(e.dst_max);
    e.dst_std = number(l, "dst_std").value_or(e.dst_std);
    s.layers.push_back(e);
  }
  return s;
}

std::optional<BlockStats> read_block_stats(const RunDirectory& dir, std::int64_t block) {
  std::ifstream in(dir.stats_path(block));
  if (!in) return std::nullopt;
  const auto j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return block_stats_from_json(j, block);
}

void write_block_stats(const RunDirectory& dir, std::int64_t block, const BlockStats& s) {
  io::write_file_atomically(dir.stats_path(block), [&](std::ostream& out) { out << to_json(s).dump(2) << "\n"; });
}

}  // namespace tessera::rundir
