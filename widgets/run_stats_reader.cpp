#include "run_stats_reader.h"

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

namespace tessera::widgets {

namespace {
QJsonObject readObject(const QString& path) {
  QFile file(path);
  if (!file.open(QIODevice::ReadOnly)) return {};
  return QJsonDocument::fromJson(file.readAll()).object();
}
}  // namespace

void readRunStats(const QString& run_dir, RunTrace& trace) {
  const QDir stats(run_dir + "/stats");
  trace.layers.clear();
  trace.blocks.clear();
  for (const QString& name : stats.entryList({"block_*.json"}, QDir::Files, QDir::Name)) {
    bool ok = false;
    const std::int64_t block = name.mid(6, name.size() - 11).toLongLong(&ok);  // block_NNN.json
    if (!ok) continue;
    const QJsonObject j = readObject(stats.filePath(name));
    if (j.isEmpty()) continue;
    trace.blocks.push_back({block, j["loss_rtn"].toDouble(), j["loss"].toDouble(), 0.0});
    for (const auto& v : j["layers"].toArray()) trace.layers.push_back(layerStatsFromJson(v.toObject(), block));
    trace.progress.total_blocks = std::max(trace.progress.total_blocks, block + 1);
  }
}

eval::LayerStats layerStatsFromJson(const QJsonObject& l, std::int64_t block) {
  eval::LayerStats s;
  s.block = block;
  s.layer = l["layer"].toString().toStdString();
  s.rel_weight_error = l["rel_weight_error"].toDouble();
  s.output_mse = l["output_mse"].toDouble();
  s.flip_ratio = l["flip_ratio"].toDouble();
  s.dst_min = l["dst_min"].toDouble(1);  // absent for runs made before DST statistics
  s.dst_max = l["dst_max"].toDouble(1);
  s.dst_std = l["dst_std"].toDouble();
  return s;
}

}  // namespace tessera::widgets
