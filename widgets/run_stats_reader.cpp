#include "run_stats_reader.h"

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

#include "util/error.h"

namespace tessera::widgets {

namespace {
QJsonObject readObject(const QString& path) {
  QFile file(path);
  if (!file.open(QIODevice::ReadOnly)) return {};
  return QJsonDocument::fromJson(file.readAll()).object();
}
}  // namespace

RunDirectoryInfo readRunDirectory(const QString& run_dir) {
  const QString manifest_path = run_dir + "/run.json";
  const QJsonObject m = readObject(manifest_path);
  if (m["format"].toString() != "tessera-run")
    throw Error(manifest_path.toStdString() + " is missing or not a Tessera run manifest; choose a folder made by a quantization run");
  RunDirectoryInfo info;
  const QByteArray config = QJsonDocument(m["config"].toObject()).toJson();
  info.config = pipeline::RunConfig::from_json_text(config.toStdString(), manifest_path.toStdString());
  info.calibration_sha256 = m["calibration_sha256"].toString();
  info.finished = m["finished"].toBool();
  info.seconds = m["seconds"].toDouble();
  info.total_blocks = m["blocks"].toInt();
  return info;
}

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
