#include "export/gguf_export.h"

#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <tuple>
#include <vector>

#include "formats/gguf_blocks.h"
#include "formats/gguf_file.h"
#include "io/atomic_file.h"
#include "model/gguf_import.h"
#include "model/model_loader.h"
#include "model/rotary_layout.h"
#include "quant/grid_target.h"
#include "quant/group_quantizer.h"
#include "text/gguf_vocabulary.h"
#include "util/error.h"
#include "util/log.h"
#include "util/version.h"

namespace fs = std::filesystem;

namespace tessera::exporting {
namespace {

// llama.cpp's tensor names (llama-arch.cpp LLM_TENSOR_NAMES for LLM_ARCH_LLAMA).
const char* gguf_linear(model::LinearKind kind) {
  switch (kind) {
    case model::LinearKind::Q:
      return "attn_q";
    case model::LinearKind::K:
      return "attn_k";
    case model::LinearKind::V:
      return "attn_v";
    case model::LinearKind::O:
      return "attn_output";
    case model::LinearKind::Gate:
      return "ffn_gate";
    case model::LinearKind::Up:
      return "ffn_up";
    case model::LinearKind::Down:
      return "ffn_down";
  }
  return "?";
}

std::string gguf_name(std::int64_t block, model::LinearKind kind) {
  return "blk." + std::to_string(block) + "." + gguf_linear(kind) + ".weight";
}

formats::GgmlType linear_type(const std::string& id) {
  if (id == "gguf-f32") return formats::GgmlType::F32;
  if (id == "gguf-f16") return formats::GgmlType::F16;
  if (const auto* b = formats::gguf_block_type(id)) return b->type;
  throw Error("unknown GGUF export format \"" + id + "\" (gguf-f32, gguf-f16, " + quant::grid_target_ids() + ")");
}

bool is_block_type(formats::GgmlType t) { return formats::gguf_block_type(t) != nullptr; }

// The type one Linear is written in when the format's is `type`: llama.cpp's own choice
// (llama-quant.cpp, llama_tensor_get_type): a k-quant needs rows of whole 256-weight super-blocks,
// other rows get its fallback type, or F16 (quant::linear_grid, which the run quantized them
// with). A Linear the run left unquantized holds fp16 values: F16 holds it exactly in every block
// type's file. `reason` is "" for the format's own type.
formats::GgmlType tensor_type(formats::GgmlType type, const quant::QuantizedLinear& q, std::string* reason) {
  reason->clear();
  const auto* bt = formats::gguf_block_type(type);
  if (!bt || !bt->k_quant()) return type;
  const auto* target = quant::find_grid_target(bt->format_id);
  const auto grid = quant::linear_grid(target->spec, q.in_features());
  *reason = grid.reason;
  if (!grid.fallback()) return type;
  if (!grid.quantized) return formats::GgmlType::F16;
  for (const auto& b : formats::gguf_block_types())
    if (formats::ggml_type_name(b.type) == grid.gguf_type) return b.type;
  throw Error("no GGUF block type " + grid.gguf_type);
}

// llama_ftype: ALL_F32 0, MOSTLY_F16 1, the block types' own.
std::uint32_t file_type(formats::GgmlType t) {
  if (const auto* b = formats::gguf_block_type(t)) return b->llama_file_type;
  return t == formats::GgmlType::F16 ? 1 : 0;
}

// Rows in ggml's q/k order (llama.cpp permutes Hugging Face's rotate_half rows back to pairs).
torch::Tensor ggml_rows(const torch::Tensor& t, model::LinearKind kind, const model::LlamaConfig& c) {
  if (kind == model::LinearKind::Q) return model::half_to_interleaved_rotary(t, c.num_heads);
  if (kind == model::LinearKind::K) return model::half_to_interleaved_rotary(t, c.num_kv_heads);
  return t;
}

quant::QuantizedLinear ggml_rows(const quant::QuantizedLinear& q, model::LinearKind kind, const model::LlamaConfig& c) {
  auto r = q;
  r.codes = ggml_rows(q.codes, kind, c);
  r.scale = ggml_rows(q.scale, kind, c);
  r.zero = ggml_rows(q.zero, kind, c);
  return r;
}

bool is_fp16(float x) { return static_cast<float>(c10::Half(x)) == x; }

// The fp16 unit u of one k-quant super-block's values x (its group scales, lowest 1, or its group
// offsets, lowest 0): every x = u * k with k in lowest..highest (bt.scale_max). A run made with the
// matching --target gives its largest value k = highest, so the first candidate is the one; smaller
// k are tried for runs made otherwise. 0 when every value is 0 (offsets only); -1 when none fits.
float superblock_unit(const float* x, int groups, int lowest, int highest) {
  float top = 0;
  for (int g = 0; g < groups; ++g) top = std::max(top, x[g]);
  if (top == 0 && lowest == 0) return 0;
  for (int k = highest; k >= 1; --k) {
    const float u = top / static_cast<float>(k);
    if (!(u > 0) || !is_fp16(u) || u * static_cast<float>(k) != top) continue;
    bool all = true;
    for (int g = 0; g < groups && all; ++g) {
      const float kg = std::nearbyint(x[g] / u);
      all = kg >= static_cast<float>(lowest) && kg <= static_cast<float>(highest) && u * kg == x[g];
    }
    if (all) return u;
  }
  return -1;
}

// The blocks of a layer whose rows are already in ggml order, or why they would not decode to the
// run's weights bit for bit (the conditions read only scales and zero points; a run made with the
// matching --target, quant/grid_target.h, meets them by construction):
// - 32-weight types: d = fp16(s), for the _1 types m = fp16(-z d). llama.cpp computes y = (q -
//   2^(b-1)) d or y = q d + m in fp32; when s and -z s are fp16 values those products are exact
//   and equal the run's (q - z) s (at most 8 + 11 significant bits).
// - k-quants: the group scales of each super-block are d * k (superblock_unit). Q3_K / Q6_K: the
//   zero points are 2^(b-1). With mins (Q2_K / Q4_K / Q5_K): the offsets z s (quant::group_offsets
//   for a run on the target's grid, where z is fractional) are dmin * m (the same); llama.cpp's
//   (d k) q - dmin m is then the run's weight: d k, (d k) q and dmin m are exact, one rounding.
// - IQ4_NL (the Q2_K / Q3_K fallback, codes on its levels): d = fp16(s), zero points 0; llama.cpp's
//   d * level is the run's s * level.
std::string block_encoding(const quant::QuantizedLinear& q, formats::GgmlType type, std::vector<std::uint8_t>* bytes) {
  const auto& bt = *formats::gguf_block_type(type);
  if (q.spec.bits != bt.bits) return std::to_string(q.spec.bits) + "-bit codes";
  const bool levels = bt.form == formats::GgufBlockForm::Levels;
  if (q.spec.nonuniform() != levels)
    return levels ? "uniform codes, not IQ4_NL's levels" : "codes on IQ4_NL's levels, not uniform ones";
  const auto k = q.in_features(), g = q.spec.effective_group(k);
  const bool symmetric = bt.form != formats::GgufBlockForm::Offset;
  const double half = std::pow(2.0, bt.bits - 1);
  if (k % bt.weights != 0 || (bt.k_quant() ? g != bt.group : g % bt.weights != 0))
    return "input dimension " + std::to_string(k) + " / group size " + std::to_string(g) + " is not whole " +
           std::to_string(bt.weights) + "-weight blocks" +
           (bt.k_quant() ? " with groups of " + std::to_string(bt.group) : std::string());
  const auto n = q.out_features(), blocks_per_row = k / bt.weights;
  torch::Tensor d, m;  // per (row, group): what the block stores
  std::int64_t inexact = 0;
  torch::Tensor offsets;  // k-quants with mins: per (row, group)
  if (bt.k_quant()) {
    const bool with_mins = bt.form == formats::GgufBlockForm::ScaledWithMins;
    const auto scale = q.scale.contiguous();
    if (with_mins)
      offsets =
          (q.spec.superblock_offsets() ? quant::group_offsets(q.scale, q.zero, q.spec) : q.zero * q.scale).contiguous();
    d = torch::zeros({n, blocks_per_row}, torch::kFloat32);
    if (with_mins) m = torch::zeros({n, blocks_per_row}, torch::kFloat32);
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t b = 0; b < blocks_per_row; ++b) {
        const auto at = r * blocks_per_row + b;
        const float db = superblock_unit(scale.data_ptr<float>() + at * bt.groups(), bt.groups(), 1, bt.scale_max);
        const float mb =
            with_mins ? superblock_unit(offsets.data_ptr<float>() + at * bt.groups(), bt.groups(), 0, bt.scale_max) : 0;
        const bool fits = db > 0 && mb >= 0;
        d.data_ptr<float>()[at] = fits ? db : 0.f;
        if (with_mins) m.data_ptr<float>()[at] = fits ? mb : 0.f;
        if (!fits) inexact += bt.groups();
      }
    if (!with_mins) inexact += (q.zero != half).sum().item<std::int64_t>();
  } else {
    d = q.scale.to(torch::kFloat16).to(torch::kFloat32);
    m = (-q.zero * d).to(torch::kFloat16).to(torch::kFloat32);
    const auto off = levels      ? (d != q.scale).logical_or(q.zero != 0)
                     : symmetric ? (d != q.scale).logical_or(q.zero != half)
                                 : (d != q.scale).logical_or(m != -q.zero * q.scale);
    inexact = off.sum().item<std::int64_t>();
  }
  if (inexact > 0)
    return std::to_string(inexact) + " of " + std::to_string(q.scale.numel()) + " groups" +
           (bt.form == formats::GgufBlockForm::ScaledWithMins
                ? " have scales or offsets that are not an fp16 super-scale times 1.." + std::to_string(bt.scale_max) +
                      " / super-min times 0.." + std::to_string(bt.scale_max)
            : bt.k_quant() ? " have scales that are not an fp16 super-scale times 1.." + std::to_string(bt.scale_max) +
                                 " or a zero point other than " + std::to_string(1 << (bt.bits - 1))
            : symmetric ? " have a scale that is not an fp16 value or a zero point other than " +
                              std::to_string(levels ? 0 : 1 << (bt.bits - 1))
                        : " have a scale or -zero*scale that is not an fp16 value");
  if (!bytes) return "";
  const auto codes = q.codes.contiguous(), scale = q.scale.contiguous(), dc = d.contiguous();
  const auto mc = m.defined() ? m.contiguous() : m;
  bytes->assign(static_cast<std::size_t>(n * blocks_per_row) * bt.bytes, 0);
  const auto weights = static_cast<std::size_t>(bt.weights);
  formats::GgufBlock block;
  for (std::int64_t r = 0; r < n; ++r) {
    for (std::int64_t b = 0; b < blocks_per_row; ++b) {
      std::memcpy(block.codes.data(), codes.data_ptr<std::uint8_t>() + r * k + b * bt.weights, weights);
      if (bt.k_quant()) {
        block.d = dc.data_ptr<float>()[r * blocks_per_row + b];
        const float* s = scale.data_ptr<float>() + (r * blocks_per_row + b) * bt.groups();
        for (int j = 0; j < bt.groups(); ++j)
          block.scales[static_cast<std::size_t>(j)] = static_cast<int>(s[j] / block.d);
        if (bt.form == formats::GgufBlockForm::ScaledWithMins) {
          block.dmin = mc.data_ptr<float>()[r * blocks_per_row + b];
          const float* o = offsets.data_ptr<float>() + (r * blocks_per_row + b) * bt.groups();
          for (int j = 0; j < bt.groups(); ++j)
            block.mins[static_cast<std::size_t>(j)] =
                block.dmin > 0 ? static_cast<int>(std::nearbyint(o[j] / block.dmin)) : 0;
        }
      } else {
        const auto at = r * dc.size(1) + (b * bt.weights) / g;
        block.d = dc.data_ptr<float>()[at];
        if (!symmetric) block.m = mc.data_ptr<float>()[at];
      }
      formats::pack_gguf_block(bt, block, bytes->data() + static_cast<std::size_t>(r * blocks_per_row + b) * bt.bytes);
    }
  }
  return "";
}

torch::ScalarType float_dtype(formats::GgmlType type) {
  return type == formats::GgmlType::F16    ? torch::kFloat16
         : type == formats::GgmlType::BF16 ? torch::kBFloat16
                                           : torch::kFloat32;
}

std::vector<std::uint8_t> float_bytes(const torch::Tensor& t, formats::GgmlType type) {
  const auto c = t.to(float_dtype(type)).contiguous();
  std::vector<std::uint8_t> out(static_cast<std::size_t>(c.numel()) * c.element_size());
  std::memcpy(out.data(), c.data_ptr(), out.size());
  return out;
}

std::vector<std::uint64_t> ggml_ne(const torch::Tensor& t) {
  std::vector<std::uint64_t> ne;
  for (auto i = t.dim() - 1; i >= 0; --i) ne.push_back(static_cast<std::uint64_t>(t.size(i)));
  return ne;
}

std::string model_refusal(const model::LlamaConfig& c) {
  if (c.architecture != "llama" && c.architecture != "mistral")
    return "GGUF export writes the llama architecture; this model is " + c.architecture;
  if (c.attention_bias) return "GGUF llama has no q/k/v bias; this model has one";
  if (c.rope_scaling.type == "llama3")
    return "llama3 rope scaling needs a rope_freqs tensor, which this exporter does not write";
  return "";
}

using Vocab = text::GgufVocabulary;  // text/gguf_vocabulary.h

// Why `type` cannot hold the run at all (architecture, tokenizer, bits and group size); "" when it
// can. Fills `vocab` with the tokenizer data when given.
std::string settings_refusal(const RunSource& run, formats::GgmlType type, const model::LlamaConfig& c, Vocab* vocab) {
  auto why = model_refusal(c);
  if (!why.empty()) return why;
  try {
    auto v = text::gguf_vocabulary(run.manifest.tokenizer, c.vocab_size);
    if (vocab) *vocab = std::move(v);
  } catch (const Error& e) {
    return e.what();
  }
  const auto* bt = formats::gguf_block_type(type);
  if (!bt) return "";
  const auto& w = run.config.weight;
  const bool symmetric =
      bt->form == formats::GgufBlockForm::Symmetric || bt->form == formats::GgufBlockForm::ScaledSymmetric;
  const bool group_fits = bt->k_quant() ? w.group_size == bt->group : w.group_size > 0 && w.group_size % 32 == 0;
  // A k-quant file's Linears are in its type or llama.cpp's fallback for their width; a run holds
  // exactly those grids only when made on the k-quant's own (quant::linear_grid).
  const bool kquant_grid = !bt->k_quant() || w.superblock_levels == bt->scale_max;
  if (w.bits != bt->bits || w.symmetric != symmetric || !group_fits || !kquant_grid)
    return "GGUF " + formats::ggml_type_name(type) + " needs " + std::to_string(bt->bits) + "-bit " +
           (symmetric ? "symmetric" : "asymmetric") + " codes with " +
           (bt->k_quant() ? "groups of " + std::to_string(bt->group)
                          : std::string("a group size that is a multiple of 32")) +
           " (quantize with --target " + bt->format_id + "); this run is " + w.label();
  return "";
}

// Why a block type cannot hold the run: not one of its layers has a bit-exact block encoding
// (reads only scales and zero points). "" when at least one has.
std::string exactness_refusal(const RunSource& run, formats::GgmlType type) {
  std::int64_t exact = 0, total = 0;
  std::string first;
  run.for_each_linear([&](std::int64_t, model::LinearKind, const quant::QuantizedLinear& q) {
    ++total;
    std::string fallback;
    const auto as = tensor_type(type, q, &fallback);
    if (!q.quantized() || !is_block_type(as)) return;
    const auto r = block_encoding(q, as, nullptr);
    if (r.empty())
      ++exact;
    else if (first.empty())
      first = r;
  });
  if (exact > 0) return "";
  const auto& bt = *formats::gguf_block_type(type);
  return "GGUF " + formats::ggml_type_name(type) + " stores its scales as fp16: none of the run's " +
         std::to_string(total) + " layers would decode bit-identically (e.g. " + first + "); quantize with --target " +
         bt.format_id + ", or use gguf-f32 or gptq";
}

// Why `type` cannot hold the run, everything checked; fills `vocab` when given.
std::string refusal(const RunSource& run, formats::GgmlType type, Vocab* vocab) {
  auto why = settings_refusal(run, type, model::read_model_config(run.config.model), vocab);
  if (why.empty() && is_block_type(type)) why = exactness_refusal(run, type);
  return why;
}

// general.*, llama.* and tokenizer.ggml.* of a llama GGUF file.
void add_llama_header(formats::GgufWriter& g, const model::LlamaConfig& c, const Vocab& vocab, const std::string& name,
                      std::uint32_t llama_file_type) {
  g.add_string("general.architecture", "llama");
  g.add_string("general.name", name);
  g.add_u32("general.alignment", 32);
  g.add_u32("general.quantization_version", 2);  // GGML_QNT_VERSION
  g.add_u32("general.file_type", llama_file_type);
  g.add_u32("llama.context_length", static_cast<std::uint32_t>(c.max_position_embeddings));
  g.add_u32("llama.embedding_length", static_cast<std::uint32_t>(c.hidden_size));
  g.add_u32("llama.block_count", static_cast<std::uint32_t>(c.num_layers));
  g.add_u32("llama.feed_forward_length", static_cast<std::uint32_t>(c.intermediate_size));
  g.add_u32("llama.rope.dimension_count", static_cast<std::uint32_t>(c.head_dim));
  g.add_u32("llama.attention.head_count", static_cast<std::uint32_t>(c.num_heads));
  g.add_u32("llama.attention.head_count_kv", static_cast<std::uint32_t>(c.num_kv_heads));
  if (c.head_dim * c.num_heads != c.hidden_size) {
    g.add_u32("llama.attention.key_length", static_cast<std::uint32_t>(c.head_dim));
    g.add_u32("llama.attention.value_length", static_cast<std::uint32_t>(c.head_dim));
  }
  g.add_f32("llama.attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  g.add_f32("llama.rope.freq_base", static_cast<float>(c.rope_theta));
  if (c.rope_scaling.type == "linear") {
    g.add_string("llama.rope.scaling.type", "linear");
    g.add_f32("llama.rope.scaling.factor", static_cast<float>(c.rope_scaling.factor));
  }
  g.add_u32("llama.vocab_size", static_cast<std::uint32_t>(c.vocab_size));
  text::add_gguf_vocabulary(g, vocab);
}

}  // namespace

std::string gguf_export_refusal(const RunSource& run, const std::string& id) {
  return refusal(run, linear_type(id), nullptr);
}

GgufCheck verify_gguf(const RunSource& run, const std::string& path) {
  const formats::GgufFile f(path);
  const auto c = model::gguf_llama_config(f);
  if (c.num_layers != static_cast<std::int64_t>(run.blocks.size()))
    throw Error("self-check failed: " + path + " has " + std::to_string(c.num_layers) + " blocks, the run " +
                std::to_string(run.blocks.size()));
  GgufCheck check;
  run.for_each_linear([&](std::int64_t k, model::LinearKind kind, const quant::QuantizedLinear& q) {
    const auto name = gguf_name(k, kind);
    const auto& t = f.tensor(name);
    const auto rows = q.quantized() ? ggml_rows(q, kind, c) : q;
    auto expected = q.quantized() ? rows.dequantize() : ggml_rows(q.dequantize(), kind, c);
    if (is_block_type(t.type)) {
      if (!q.quantized())
        throw Error("self-check failed: " + name + " is unquantized in the run but not F16 in the file");
      require_identical(model::gguf_block_codes(t), rows.codes, name + " (codes)");
      ++check.blocks;
      ++check.by_type[formats::ggml_type_name(t.type)];
    } else if (t.type == formats::GgmlType::F16) {
      expected = expected.to(torch::kFloat16).to(torch::kFloat32);
      ++check.f16;
    } else {
      ++check.f32;
    }
    require_identical(model::decode_gguf_tensor(t), expected, name + " (decoded as llama.cpp does)");
  });
  return check;
}

ExportReport export_gguf(const std::string& run_dir, const std::string& out_file, const std::string& id,
                         bool replace_existing, const StopToken& stop) {
  const auto type = linear_type(id);
  const auto run = RunSource::load(run_dir);
  Vocab vocab;
  const auto why = refusal(run, type, &vocab);  // before the model is read
  if (!why.empty()) throw Error(id + " cannot hold the run " + run_dir + ": " + why);
  if (fs::exists(out_file) && !replace_existing)
    throw Error(out_file + " already exists; choose another output path or remove it first");
  const auto model = run.model();  // embeddings and the run's norms
  const auto& c = model.config();

  formats::GgufWriter g;
  add_llama_header(g, c, vocab, "tessera export of " + fs::path(run_dir).filename().string(), file_type(type));
  g.add_string("tessera.version", kVersion);
  g.add_string("tessera.run", run.manifest_text());

  ExportReport report;
  report.path = out_file;
  report.format = id;
  // Linear weights in the format's type; embeddings follow F16 for gguf-f16, else F32; norms F32.
  const formats::GgmlType float_type = type == formats::GgmlType::F16 ? formats::GgmlType::F16 : formats::GgmlType::F32;
  report.dtype = type == formats::GgmlType::F16 ? "fp16" : "fp32";
  const auto& w = model.weights();
  g.add_tensor("token_embd.weight", ggml_ne(w.embed_tokens), float_type, float_bytes(w.embed_tokens, float_type));
  for (std::int64_t k = 0; k < c.num_layers; ++k) {
    stop.throw_if_stopped();
    const auto& b = w.blocks[static_cast<std::size_t>(k)];
    const auto& qb = run.blocks[static_cast<std::size_t>(k)];
    const std::string p = "blk." + std::to_string(k) + ".";
    g.add_tensor(p + "attn_norm.weight", ggml_ne(b.input_norm), formats::GgmlType::F32,
                 float_bytes(b.input_norm, formats::GgmlType::F32));
    g.add_tensor(p + "ffn_norm.weight", ggml_ne(b.post_attention_norm), formats::GgmlType::F32,
                 float_bytes(b.post_attention_norm, formats::GgmlType::F32));
    for (auto kind : model::kAllLinears) {
      const auto& q = qb.linears.at(kind);
      const auto name = gguf_name(k, kind);
      std::string fallback;
      const auto as = tensor_type(type, q, &fallback);
      auto list_fallback = [&](formats::GgmlType written) {
        if (!fallback.empty())
          report.fallbacks.push_back(
              {name, {q.in_features(), q.out_features()}, formats::ggml_type_name(written), fallback});
      };
      if (!q.quantized()) {  // fp16 values: F16 unless the format is F32
        const auto weight = ggml_rows(q.dequantize(), kind, c);
        const auto stored = type == formats::GgmlType::F32 ? type : formats::GgmlType::F16;
        g.add_tensor(name, ggml_ne(weight), stored, float_bytes(weight, stored));
        list_fallback(stored);
        continue;
      }
      const auto rows = ggml_rows(q, kind, c);
      if (is_block_type(as)) {
        std::vector<std::uint8_t> bytes;
        const auto r = block_encoding(rows, as, &bytes);
        if (r.empty()) {
          g.add_tensor(
              name, {static_cast<std::uint64_t>(rows.in_features()), static_cast<std::uint64_t>(rows.out_features())},
              as, std::move(bytes));
          list_fallback(as);
          continue;
        }
        report.not_converted.push_back(name + ": " + r + "; written as F32");
      } else if (as != type) {  // F16 fallback of a Linear the run quantized (not on the target's grid)
        report.not_converted.push_back(name + ": " + fallback + ", llama.cpp's F16, which does not hold the run's " +
                                       q.spec.label() + " weights; written as F32");
      }
      const auto weight = rows.dequantize();
      g.add_tensor(name, ggml_ne(weight), float_type, float_bytes(weight, float_type));
    }
  }
  g.add_tensor("output_norm.weight", ggml_ne(w.final_norm), formats::GgmlType::F32,
               float_bytes(w.final_norm, formats::GgmlType::F32));
  if (!c.tie_word_embeddings)
    g.add_tensor("output.weight", ggml_ne(w.lm_head), float_type, float_bytes(w.lm_head, float_type));
  g.add_string("tessera.tensor_data_sha256", g.tensor_data_sha256());

  // Written beside the destination, checked, then renamed: a file that fails is never in place.
  io::write_file_atomically(
      out_file, [&](std::ostream& out) { g.write(out); },
      [&](const std::string& tmp) {
        stop.throw_if_stopped();
        const auto check = verify_gguf(run, tmp);
        report.tensors_checked = check.blocks + check.f16 + check.f32;
        std::string parts;
        auto part = [&](std::int64_t n, const std::string& what) {
          if (n > 0) parts += (parts.empty() ? "" : ", ") + std::to_string(n) + " " + what;
        };
        if (check.blocks > 0) {  // "30 Q4_K", with llama.cpp's fallbacks "30 Q4_K, 5 Q5_0"
          for (const auto& [name, n] : check.by_type)
            parts += (parts.empty() ? "" : ", ") + std::to_string(n) + " " + name;
          parts += " (codes and decoded weights bit-identical)";
        }
        part(check.f32, "F32 (bit-identical)");
        part(check.f16, "F16 (identical to the run's weights in fp16)");
        report.self_check =
            std::to_string(report.tensors_checked) + " Linear weights decoded as llama.cpp does: " + parts;
        report.bytes = static_cast<std::int64_t>(fs::file_size(tmp));
      });
  logger()->info("exported {} to {} as {} ({} bytes); self-check: {}", run_dir, out_file, id, report.bytes,
                 report.self_check);
  if (!report.fallbacks.empty())
    logger()->info("{} tensors in llama.cpp's fallback types (e.g. {}: {}, {})", report.fallbacks.size(),
                   report.fallbacks.front().tensor, report.fallbacks.front().type, report.fallbacks.front().reason);
  return report;
}

}  // namespace tessera::exporting

namespace tessera::exporting {

ExportReport convert_model_to_gguf(const model::LlamaModel& model, const std::string& tokenizer_path,
                                   const std::string& out_file, const std::string& dtype, bool replace_existing) {
  const auto& c = model.config();
  const auto why = model_refusal(c);
  if (!why.empty()) throw Error("cannot write " + out_file + ": " + why);
  formats::GgmlType type = formats::GgmlType::F32;
  std::uint32_t llama_file_type = 0;  // llama_ftype: ALL_F32 0, MOSTLY_F16 1, MOSTLY_BF16 32
  if (dtype == "fp16")
    type = formats::GgmlType::F16, llama_file_type = 1;
  else if (dtype == "bf16")
    type = formats::GgmlType::BF16, llama_file_type = 32;
  else if (dtype != "fp32")
    throw Error("a GGUF conversion is fp32, fp16 or bf16, not " + dtype);
  if (tokenizer_path.empty())
    throw Error("GGUF embeds the tokenizer: pass --tokenizer (none was found beside the model)");
  const auto vocab = text::gguf_vocabulary(tokenizer_path, c.vocab_size);
  if (fs::exists(out_file) && !replace_existing)
    throw Error(out_file + " already exists; choose another output path or pass --force");

  formats::GgufWriter g;
  add_llama_header(g, c, vocab, "tessera convert of " + fs::path(out_file).stem().string(), llama_file_type);
  g.add_string("tessera.version", kVersion);
  // Every tensor as written (fp32, ggml row order) with its ggml type, for the self-check.
  std::vector<std::tuple<std::string, torch::Tensor, formats::GgmlType>> written;
  auto add = [&](const std::string& name, const torch::Tensor& t, formats::GgmlType as) {
    const auto f = t.to(torch::kCPU, torch::kFloat32).contiguous();
    g.add_tensor(name, ggml_ne(f), as, float_bytes(f, as));
    written.emplace_back(name, f, as);
  };
  const auto& w = model.weights();
  add("token_embd.weight", w.embed_tokens, type);
  for (std::int64_t k = 0; k < c.num_layers; ++k) {
    const auto& b = w.blocks[static_cast<std::size_t>(k)];
    const std::string p = "blk." + std::to_string(k) + ".";
    add(p + "attn_norm.weight", b.input_norm, formats::GgmlType::F32);
    add(p + "ffn_norm.weight", b.post_attention_norm, formats::GgmlType::F32);
    for (auto kind : model::kAllLinears)
      add(gguf_name(k, kind), ggml_rows(b.linear(kind).to(torch::kFloat32), kind, c), type);
  }
  add("output_norm.weight", w.final_norm, formats::GgmlType::F32);
  if (!c.tie_word_embeddings) add("output.weight", w.lm_head, type);
  g.add_string("tessera.tensor_data_sha256", g.tensor_data_sha256());

  ExportReport report;
  report.path = out_file;
  report.format = "gguf-" + dtype;
  report.dtype = dtype;
  io::write_file_atomically(
      out_file, [&](std::ostream& out) { g.write(out); },
      [&](const std::string& tmp) {
        // Read back as llama.cpp decodes it: every tensor equals the model's in the file's type.
        const formats::GgufFile f(tmp);
        for (const auto& [name, expected, as] : written)
          require_identical(model::decode_gguf_tensor(f.tensor(name)), expected.to(float_dtype(as)).to(torch::kFloat32),
                            name + " (decoded as llama.cpp does)");
        report.tensors_checked = static_cast<std::int64_t>(written.size());
        report.self_check = std::to_string(written.size()) + " tensors read back identical to the model's in " +
                            formats::ggml_type_name(type) + " (norms F32)";
        report.bytes = static_cast<std::int64_t>(fs::file_size(tmp));
      });
  logger()->info("converted to {} ({}, {} bytes); self-check: {}", out_file, formats::ggml_type_name(type),
                 report.bytes, report.self_check);
  return report;
}

}  // namespace tessera::exporting
