#include "protocol/worker_protocol.h"

#include "rundir/block_stats.h"

namespace tessera::protocol {

namespace {

// Optional fields keep their default when absent, but a present field of the wrong type is an error.
template <typename T>
void optional_field(const Json& j, const char* key, T& out) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    out = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw ProtocolError("field \"" + std::string(key) + "\" has the wrong type");
  }
}

}  // namespace

std::string version_string() { return rundir::protocol_version_string(); }

Json hello_message(const std::string& role) { return rundir::hello_message(role); }

void check_hello(const Json& message, const std::string& peer) {
  if (!message.is_object() || message.value("type", std::string()) != "hello" ||
      message.value("protocol", std::string()) != kProtocolName)
    throw ProtocolError(peer + " is not a Tessera worker: its first line is not a \"" + std::string(kProtocolName) +
                        "\" hello");
  const std::string theirs = message.value("version", std::string("?"));
  if (rundir::protocol_major_of(theirs) != kMajorVersion)
    throw ProtocolError(peer + " speaks worker protocol " + theirs + ", this side speaks " + version_string() +
                        " (major versions differ; use the same Tessera version on both sides)");
}

Json parse_line(const std::string& line) {
  const std::string shown = line.size() > 120 ? line.substr(0, 120) + "..." : line;
  Json j;
  try {
    j = Json::parse(line);
  } catch (const nlohmann::json::exception&) {
    throw ProtocolError("not a JSON line: \"" + shown + "\"");
  }
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw ProtocolError("a line without a message \"type\": \"" + shown + "\"");
  return j;
}

Json to_json(const api::EvalRequest& r) {
  return {{"run_dir", r.run_dir}, {"model", r.model_path}, {"tokenizer", r.tokenizer_path},
          {"text", r.text_path},  {"seq_len", r.seq_len},  {"batch", r.batch_size},
          {"device", r.device},   {"dtype", r.dtype}};
}

api::EvalRequest eval_request_from_json(const Json& j) {
  api::EvalRequest r;
  optional_field(j, "run_dir", r.run_dir);
  optional_field(j, "model", r.model_path);
  optional_field(j, "tokenizer", r.tokenizer_path);
  r.text_path = field<std::string>(j, "text");
  optional_field(j, "seq_len", r.seq_len);
  optional_field(j, "batch", r.batch_size);
  optional_field(j, "device", r.device);
  optional_field(j, "dtype", r.dtype);
  return r;
}

Json to_json(const api::EvalReport& r) {
  return {{"ppl", r.perplexity},
          {"mean_loss", r.mean_loss},
          {"tokens", r.text_tokens},
          {"windows", r.windows},
          {"seq_len", r.seq_len},
          {"seconds", r.seconds},
          {"tokens_per_second", r.tokens_per_second},
          {"load_seconds", r.load_seconds},
          {"device", r.device},
          {"dtype", r.dtype},
          {"model", r.model_path},
          {"tokenizer", r.tokenizer_path},
          {"text", r.text_path}};
}

api::EvalReport eval_report_from_json(const Json& j) {
  api::EvalReport r;
  r.perplexity = field<double>(j, "ppl");
  optional_field(j, "mean_loss", r.mean_loss);
  optional_field(j, "tokens", r.text_tokens);
  optional_field(j, "windows", r.windows);
  optional_field(j, "seq_len", r.seq_len);
  optional_field(j, "seconds", r.seconds);
  optional_field(j, "tokens_per_second", r.tokens_per_second);
  optional_field(j, "load_seconds", r.load_seconds);
  optional_field(j, "device", r.device);
  optional_field(j, "dtype", r.dtype);
  optional_field(j, "model", r.model_path);
  optional_field(j, "tokenizer", r.tokenizer_path);
  optional_field(j, "text", r.text_path);
  return r;
}

Json to_json(const api::ExportRequest& r) {
  return {
      {"run_dir", r.run_dir}, {"out", r.out}, {"format", r.format}, {"dtype", r.dtype}, {"force", r.replace_existing}};
}

api::ExportRequest export_request_from_json(const Json& j) {
  api::ExportRequest r;
  r.run_dir = field<std::string>(j, "run_dir");
  r.out = field<std::string>(j, "out");
  optional_field(j, "format", r.format);
  optional_field(j, "dtype", r.dtype);
  optional_field(j, "force", r.replace_existing);
  return r;
}

Json to_json(const exporting::FallbackTensor& t) {
  return {{"tensor", t.tensor}, {"shape", t.shape}, {"type", t.type}, {"reason", t.reason}};
}

Json to_json(const api::ExportResult& r) {
  Json fallbacks = Json::array();
  for (const auto& t : r.fallbacks) fallbacks.push_back(to_json(t));
  return {{"path", r.path},
          {"format", r.format},
          {"dtype", r.dtype},
          {"bytes", r.bytes},
          {"tensors_checked", r.tensors_checked},
          {"self_check", r.self_check},
          {"not_converted", r.not_converted},
          {"fallbacks", fallbacks},
          {"warnings", r.warnings}};
}

api::ExportResult export_result_from_json(const Json& j) {
  api::ExportResult r;
  r.path = field<std::string>(j, "path");
  optional_field(j, "format", r.format);
  optional_field(j, "dtype", r.dtype);
  optional_field(j, "bytes", r.bytes);
  optional_field(j, "tensors_checked", r.tensors_checked);
  optional_field(j, "self_check", r.self_check);
  optional_field(j, "not_converted", r.not_converted);
  optional_field(j, "warnings", r.warnings);
  if (j.contains("fallbacks"))
    for (const auto& t : j.at("fallbacks")) {
      exporting::FallbackTensor f;
      f.tensor = field<std::string>(t, "tensor");
      optional_field(t, "shape", f.shape);
      optional_field(t, "type", f.type);
      optional_field(t, "reason", f.reason);
      r.fallbacks.push_back(f);
    }
  return r;
}

Json to_json(const std::vector<api::ExportFormatInfo>& formats) {
  Json list = Json::array();
  for (const auto& f : formats)
    list.push_back({{"id", f.id}, {"label", f.label}, {"available", f.available}, {"reason", f.reason}});
  return list;
}

std::vector<api::ExportFormatInfo> export_formats_from_json(const Json& j) {
  if (!j.is_array()) throw ProtocolError("the export formats are not a list");
  std::vector<api::ExportFormatInfo> formats;
  for (const auto& f : j) {
    api::ExportFormatInfo info;
    info.id = field<std::string>(f, "id");
    optional_field(f, "label", info.label);
    optional_field(f, "available", info.available);
    optional_field(f, "reason", info.reason);
    formats.push_back(info);
  }
  return formats;
}

Json to_json(const api::LayerDetail& d) {
  return {{"block", d.block},
          {"layer", d.layer},
          {"method", d.method},
          {"bits", d.bits},
          {"rows", d.rows},
          {"cols", d.cols},
          {"group_size", d.group_size},
          {"groups", d.groups},
          {"code_change_min", d.code_change_min},
          {"code_change_counts", d.code_change_counts},
          {"changed_fraction", d.changed_fraction},
          {"scale_ratio", d.scale_ratio},
          {"dst_factors", d.dst_factors},
          {"code_counts", d.code_counts}};
}

api::LayerDetail layer_detail_from_json(const Json& j) {
  api::LayerDetail d;
  d.block = field<std::int64_t>(j, "block");
  d.layer = field<std::string>(j, "layer");
  optional_field(j, "method", d.method);
  optional_field(j, "bits", d.bits);
  optional_field(j, "rows", d.rows);
  optional_field(j, "cols", d.cols);
  optional_field(j, "group_size", d.group_size);
  optional_field(j, "groups", d.groups);
  optional_field(j, "code_change_min", d.code_change_min);
  optional_field(j, "code_change_counts", d.code_change_counts);
  optional_field(j, "changed_fraction", d.changed_fraction);
  optional_field(j, "scale_ratio", d.scale_ratio);
  optional_field(j, "dst_factors", d.dst_factors);
  optional_field(j, "code_counts", d.code_counts);
  return d;
}

Json to_json(const api::ModelSummary& s) {
  return {{"path", s.path},
          {"format", s.format},
          {"config", Json::parse(s.config.to_hf_json_text())},
          {"parameters", s.parameters},
          {"tokenizer", s.tokenizer_path}};
}

api::ModelSummary model_summary_from_json(const Json& j) {
  api::ModelSummary s;
  s.path = field<std::string>(j, "path");
  optional_field(j, "format", s.format);
  s.config = model::LlamaConfig::from_hf_json_text(field<Json>(j, "config").dump(), "the worker's model summary");
  optional_field(j, "parameters", s.parameters);
  optional_field(j, "tokenizer", s.tokenizer_path);
  return s;
}

Json to_json(const std::vector<api::DeviceInfo>& devices) {
  Json list = Json::array();
  for (const auto& d : devices)
    list.push_back({{"id", d.id},
                    {"name", d.name},
                    {"total_bytes", d.total_bytes},
                    {"free_bytes", d.free_bytes},
                    {"cores", d.cores}});
  return list;
}

std::vector<api::DeviceInfo> devices_from_json(const Json& j) {
  if (!j.is_array()) throw ProtocolError("the device list is not a list");
  std::vector<api::DeviceInfo> devices;
  for (const auto& d : j) {
    api::DeviceInfo info;
    info.id = field<std::string>(d, "id");
    optional_field(d, "name", info.name);
    optional_field(d, "total_bytes", info.total_bytes);
    optional_field(d, "free_bytes", info.free_bytes);
    optional_field(d, "cores", info.cores);
    devices.push_back(info);
  }
  return devices;
}

Json to_json(const eval::LayerStats& s) {
  auto j = rundir::layer_stats_json(s);
  j["block"] = s.block;
  return j;
}

eval::LayerStats layer_stats_from_json(const Json& j) {
  eval::LayerStats s;
  s.block = field<std::int64_t>(j, "block");
  s.layer = field<std::string>(j, "layer");
  optional_field(j, "rel_weight_error", s.rel_weight_error);
  optional_field(j, "output_mse", s.output_mse);
  optional_field(j, "flip_ratio", s.flip_ratio);
  optional_field(j, "dst_min", s.dst_min);
  optional_field(j, "dst_max", s.dst_max);
  optional_field(j, "dst_std", s.dst_std);
  return s;
}

Json to_json(const QuantizeResult& r) {
  Json layers = Json::array();
  for (const auto& s : r.report.layers) layers.push_back(to_json(s));
  return {{"run_dir", r.report.run_dir},
          {"blocks", r.report.blocks},
          {"restored_blocks", r.report.restored_blocks},
          {"seconds", r.report.seconds},
          {"calibration_sha256", r.report.calibration_sha256},
          {"placement", r.report.placement},
          {"layers", layers},
          {"loss_rtn", r.report.loss_rtn},
          {"loss", r.report.loss},
          {"ppl", r.perplexity},
          {"peak_gpu_bytes", r.report.peak_gpu_bytes},
          {"peak_rss_bytes", r.report.peak_rss_bytes}};
}

QuantizeResult quantize_result_from_json(const Json& j) {
  QuantizeResult r;
  r.report.run_dir = field<std::string>(j, "run_dir");
  optional_field(j, "blocks", r.report.blocks);
  optional_field(j, "restored_blocks", r.report.restored_blocks);
  optional_field(j, "seconds", r.report.seconds);
  optional_field(j, "calibration_sha256", r.report.calibration_sha256);
  optional_field(j, "placement", r.report.placement);
  if (j.contains("layers"))
    for (const auto& s : field<Json>(j, "layers")) r.report.layers.push_back(layer_stats_from_json(s));
  optional_field(j, "loss_rtn", r.report.loss_rtn);
  optional_field(j, "loss", r.report.loss);
  optional_field(j, "ppl", r.perplexity);
  optional_field(j, "peak_gpu_bytes", r.report.peak_gpu_bytes);
  optional_field(j, "peak_rss_bytes", r.report.peak_rss_bytes);
  return r;
}

Json to_json(const QuantizeRequest& r) {
  return {{"config", Json::parse(r.config.to_json_text())},
          {"run_dir", r.run_dir},
          {"resume", r.resume},
          {"eval_text", r.eval_text}};
}

QuantizeRequest quantize_request_from_json(const Json& j) {
  QuantizeRequest r;
  r.config = pipeline::RunConfig::from_json_text(field<Json>(j, "config").dump(), "the quantize request's config");
  r.run_dir = field<std::string>(j, "run_dir");
  optional_field(j, "resume", r.resume);
  optional_field(j, "eval_text", r.eval_text);
  return r;
}

std::string base64_encode(const char* data, std::size_t size) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  for (std::size_t i = 0; i < size; i += 3) {
    const auto b0 = static_cast<unsigned char>(data[i]);
    const auto b1 = i + 1 < size ? static_cast<unsigned char>(data[i + 1]) : 0u;
    const auto b2 = i + 2 < size ? static_cast<unsigned char>(data[i + 2]) : 0u;
    out += kAlphabet[b0 >> 2];
    out += kAlphabet[((b0 & 0x3) << 4) | (b1 >> 4)];
    out += i + 1 < size ? kAlphabet[((b1 & 0xf) << 2) | (b2 >> 6)] : '=';
    out += i + 2 < size ? kAlphabet[b2 & 0x3f] : '=';
  }
  return out;
}

Json job_message(const std::string& type, std::int64_t job, Json fields) {
  Json j = {{"type", type}};
  if (job >= 0) j["job"] = job;
  j.update(fields);
  return j;
}

}  // namespace tessera::protocol
