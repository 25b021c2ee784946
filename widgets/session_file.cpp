#include "session_file.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>

#include "qt_text.h"
#include "util/error.h"

namespace tessera::widgets {

namespace {

constexpr const char* kFormat = "tessera-session";
constexpr int kVersion = 1;

// One layer's statistics as the session file stores them.
eval::LayerStats layerStatsFromJson(const QJsonObject& l, std::int64_t block) {
  eval::LayerStats s;
  s.block = block;
  s.layer = l["layer"].toString().toStdString();
  s.rel_weight_error = l["rel_weight_error"].toDouble();
  s.output_mse = l["output_mse"].toDouble();
  s.flip_ratio = l["flip_ratio"].toDouble();
  s.dst_min = l["dst_min"].toDouble(1);  // absent in sessions saved before DST statistics
  s.dst_max = l["dst_max"].toDouble(1);
  s.dst_std = l["dst_std"].toDouble();
  return s;
}

QJsonObject traceToJson(const RunTrace& t) {
  QJsonArray steps, hard, blocks, memory, layers;
  for (const auto& p : t.steps) steps.append(QJsonArray{p.x, p.loss, static_cast<double>(p.iteration)});
  for (const auto& p : t.hardening) hard.append(QJsonArray{p.x, p.reached, p.target});
  for (const auto& b : t.blocks) blocks.append(QJsonArray{static_cast<double>(b.block), b.loss_rtn, b.loss, b.seconds});
  for (const auto& m : t.memory) memory.append(QJsonArray{m.seconds, m.gpu_bytes, m.rss_bytes});
  for (const auto& s : t.layers)
    layers.append(QJsonObject{{"block", static_cast<double>(s.block)},
                              {"layer", QString::fromStdString(s.layer)},
                              {"rel_weight_error", s.rel_weight_error},
                              {"output_mse", s.output_mse},
                              {"flip_ratio", s.flip_ratio},
                              {"dst_min", s.dst_min},
                              {"dst_max", s.dst_max},
                              {"dst_std", s.dst_std}});
  return {{"steps", steps},
          {"hardening", hard},
          {"blocks", blocks},
          {"memory", memory},
          {"layers", layers},
          {"total_blocks", static_cast<double>(t.progress.total_blocks)},
          {"skipped_steps", static_cast<double>(t.skipped_steps)}};
}

RunTrace traceFromJson(const QJsonObject& o) {
  RunTrace t;
  for (const auto& v : o["steps"].toArray()) {
    const auto a = v.toArray();
    t.steps.push_back({a[0].toDouble(), a[1].toDouble(), static_cast<std::int64_t>(a[2].toDouble())});
  }
  for (const auto& v : o["hardening"].toArray()) {
    const auto a = v.toArray();
    t.hardening.push_back({a[0].toDouble(), a[1].toDouble(), a[2].toDouble()});
  }
  for (const auto& v : o["blocks"].toArray()) {
    const auto a = v.toArray();
    t.blocks.push_back({static_cast<std::int64_t>(a[0].toDouble()), a[1].toDouble(), a[2].toDouble(), a[3].toDouble()});
  }
  for (const auto& v : o["memory"].toArray()) {
    const auto a = v.toArray();
    t.memory.push_back({a[0].toDouble(), a[1].toDouble(), a[2].toDouble()});
  }
  for (const auto& v : o["layers"].toArray()) {
    const auto l = v.toObject();
    t.layers.push_back(layerStatsFromJson(l, static_cast<std::int64_t>(l["block"].toDouble())));
  }
  t.progress.total_blocks = static_cast<std::int64_t>(o["total_blocks"].toDouble());
  t.skipped_steps = static_cast<std::int64_t>(o["skipped_steps"].toDouble());
  return t;
}

}  // namespace

void saveSession(const QString& path, const Session& session) {
  QJsonArray runs;
  for (const SessionRun& r : session.runs) {
    QJsonObject o{{"id", r.id},
                  {"name", r.name},
                  {"config", QJsonDocument::fromJson(QByteArray::fromStdString(r.config.to_json_text())).object()},
                  {"run_dir", r.run_dir},
                  {"status", statusName(r.status)},
                  {"error", r.error},
                  {"calibration_sha256", r.calibration_sha256},
                  {"eval_text", r.eval_text},
                  {"perplexity", r.perplexity},
                  {"seconds", r.seconds},
                  {"peak_memory_bytes", r.peak_memory_bytes},
                  {"export_bytes", static_cast<double>(r.export_bytes)},
                  {"export_path", r.export_path}};
    for (const auto& [id, trace] : session.traces)
      if (id == r.id) o["trace"] = traceToJson(trace);
    runs.append(o);
  }
  const QJsonObject root{{"format", kFormat},
                         {"version", kVersion},
                         {"model", session.model},
                         {"tokenizer", session.tokenizer},
                         {"calib", session.calib},
                         {"eval_text", session.eval_text},
                         {"reference_perplexity", session.reference_perplexity},
                         {"worker", session.worker.toJson()},
                         {"runs", runs}};
  // QSaveFile writes beside the target and renames on commit: an interrupted save keeps the old file.
  QSaveFile file(path);
  if (!file.open(QIODevice::WriteOnly) || file.write(QJsonDocument(root).toJson()) < 0 || !file.commit())
    throw Error("cannot write the session file " + utf8(path) + ": " + utf8(file.errorString()));
}

Session loadSession(const QString& path) {
  QFile file(path);
  if (!file.open(QIODevice::ReadOnly))
    throw Error("cannot open the session file " + utf8(path) + ": " + utf8(file.errorString()));
  QJsonParseError error;
  const QJsonDocument doc = QJsonDocument::fromJson(file.readAll(), &error);
  if (doc.isNull()) throw Error(utf8(path) + " is not a session file: " + utf8(error.errorString()));
  const QJsonObject root = doc.object();
  if (root["format"].toString() != kFormat)
    throw Error(utf8(path) + " is not a Tessera session file (no \"format\": \"tessera-session\")");
  if (root["version"].toInt() > kVersion)
    throw Error(utf8(path) + " was written by a newer Tessera (session version " +
                std::to_string(root["version"].toInt()) + "); update the workbench to open it");
  Session s;
  s.model = root["model"].toString();
  s.tokenizer = root["tokenizer"].toString();
  s.calib = root["calib"].toString();
  s.eval_text = root["eval_text"].toString();
  s.reference_perplexity = root["reference_perplexity"].toDouble();
  s.worker = WorkerEndpoint::fromJson(root["worker"].toObject());  // absent in older files: this machine
  for (const auto& v : root["runs"].toArray()) {
    const QJsonObject o = v.toObject();
    SessionRun r;
    r.id = o["id"].toInt();
    r.name = o["name"].toString();
    const QByteArray config = QJsonDocument(o["config"].toObject()).toJson();
    r.config =
        pipeline::RunConfig::from_json_text(config.toStdString(), utf8(path) + " (run \"" + utf8(r.name) + "\")");
    r.run_dir = o["run_dir"].toString();
    r.status = statusFromName(o["status"].toString());
    // A run that was going when the session was saved did not finish in this file's life.
    if (r.status == SessionRun::Status::Running || r.status == SessionRun::Status::Paused ||
        r.status == SessionRun::Status::Queued) {
      r.status = SessionRun::Status::Cancelled;
      r.error = "interrupted when the session was saved; resume it from its run directory";
    } else {
      r.error = o["error"].toString();
    }
    r.calibration_sha256 = o["calibration_sha256"].toString();
    r.eval_text = o["eval_text"].toString();
    r.perplexity = o["perplexity"].toDouble();
    r.seconds = o["seconds"].toDouble();
    r.peak_memory_bytes = o["peak_memory_bytes"].toDouble();
    r.export_bytes = static_cast<std::int64_t>(o["export_bytes"].toDouble());
    r.export_path = o["export_path"].toString();
    if (o.contains("trace")) s.traces.emplace_back(r.id, traceFromJson(o["trace"].toObject()));
    s.runs.push_back(r);
  }
  return s;
}

}  // namespace tessera::widgets
