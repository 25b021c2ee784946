// Loading real checkpoints (llama2.c and Hugging Face), converting between them, and rejecting
// damaged ones with messages that name the defect.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "api/model_jobs.h"
#include "formats/tensor_bytes.h"
#include "io/safetensors.h"
#include "model/hf_checkpoint.h"
#include "model/llama2c_checkpoint.h"
#include "model/model_loader.h"
#include "tessera_test.h"
#include "test_data.h"

namespace fs = std::filesystem;
using namespace tessera;

namespace {

using tessera_test::kStories;
const char* kTinyStoriesHf = "models/TinyStories-656K";

void copy_prefix(const std::string& from, const std::string& to, std::size_t bytes) {
  std::ifstream in(from, std::ios::binary);
  std::string buf(bytes, '\0');
  in.read(buf.data(), static_cast<std::streamsize>(bytes));
  std::ofstream(to, std::ios::binary).write(buf.data(), static_cast<std::streamsize>(bytes));
}

// A copy of the TinyStories-656K folder whose config.json is edited by `edit`.
std::string hf_copy_with_config(const std::string& src, const std::string& name,
                                const std::function<void(nlohmann::json&)>& edit) {
  const auto dir = tessera_test::fresh_temp_dir(name);
  fs::copy_file(fs::path(src) / "model.safetensors", fs::path(dir) / "model.safetensors");
  nlohmann::json config;
  std::ifstream(fs::path(src) / "config.json") >> config;
  edit(config);
  std::ofstream(fs::path(dir) / "config.json") << config.dump(2);
  return dir;
}

// Rewrites the folder's model.safetensors with one tensor replaced (or removed when undefined).
void replace_tensor(const std::string& dir, const std::string& name, const torch::Tensor& t) {
  const std::string path = dir + "/model.safetensors";
  io::SafetensorsWriter w;
  {
    io::SafetensorsFile f(path);
    for (const auto& [n, view] : f.tensors()) {
      if (n == name) continue;
      w.add(n, view.dtype, view.shape, view.data, view.nbytes);
    }
  }
  if (t.defined()) formats::add_tensor(w, name, t);
  w.write_to_file(path);
}

}  // namespace

class TestModelLoading : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void llama2cHeaderGivesStories260KArchitecture() {
    TESSERA_REQUIRE_DATA(path, kStories);
    const auto m = model::load_llama2c_checkpoint(path);
    const auto& c = m.config();
    QCOMPARE(c.hidden_size, std::int64_t(64));
    QCOMPARE(c.intermediate_size, std::int64_t(172));
    QCOMPARE(c.num_layers, std::int64_t(5));
    QCOMPARE(c.num_heads, std::int64_t(8));
    QCOMPARE(c.num_kv_heads, std::int64_t(4));
    QCOMPARE(c.vocab_size, std::int64_t(512));
    QCOMPARE(c.max_position_embeddings, std::int64_t(512));
    QVERIFY(c.tie_word_embeddings);
    QVERIFY(!m.weights().lm_head.defined());
    QCOMPARE(m.weights().blocks[0].k_proj.size(0), std::int64_t(32));  // GQA: 4 kv heads x 8
  }

  void truncatedLlama2cFileIsRejected() {
    TESSERA_REQUIRE_DATA(path, kStories);
    const auto dir = tessera_test::fresh_temp_dir("trunc-bin");
    copy_prefix(path, dir + "/cut.bin", fs::file_size(path) - 1000);
    TESSERA_VERIFY_THROWS_WITH(model::load_llama2c_checkpoint(dir + "/cut.bin"), "truncated llama2.c checkpoint");
    copy_prefix(path, dir + "/header.bin", 20);
    TESSERA_VERIFY_THROWS_WITH(model::load_llama2c_checkpoint(dir + "/header.bin"), "too short");
  }

  void hfFolderLoadsTinyStories656K() {
    TESSERA_REQUIRE_DATA(dir, kTinyStoriesHf);
    const auto m = model::load_model(dir);
    const auto& c = m.config();
    QCOMPARE(c.hidden_size, std::int64_t(128));
    QCOMPARE(c.num_layers, std::int64_t(2));
    QCOMPARE(c.num_heads, std::int64_t(8));
    QCOMPARE(c.num_kv_heads, std::int64_t(4));
    QCOMPARE(c.intermediate_size, std::int64_t(384));
    QCOMPARE(c.vocab_size, std::int64_t(2048));
    QVERIFY(c.tie_word_embeddings);
    auto logits = m.forward(torch::tensor({{1, 100, 200, 300}}, torch::kInt64));
    QVERIFY(torch::isfinite(logits).all().item<bool>());
  }

  void convertedFolderGivesIdenticalLogits() {
    TESSERA_REQUIRE_DATA(path, kStories);
    const auto out = tessera_test::fresh_temp_dir("convert") + "/stories260K-hf";
    api::convert_model(path, "", out, "fp32", false);
    QVERIFY(fs::exists(out + "/config.json"));
    QVERIFY(fs::exists(out + "/tokenizer.bin"));
    const auto a = model::load_llama2c_checkpoint(path);
    const auto b = model::load_model(out);
    auto ids = torch::randint(0, 512, {2, 64}, torch::kInt64);
    QVERIFY(torch::equal(a.forward(ids), b.forward(ids)));
    // A second convert to the same place must refuse rather than overwrite silently.
    TESSERA_VERIFY_THROWS_WITH(api::convert_model(path, "", out, "fp32", false), "already exists");
  }

  void bf16AndFp16CheckpointsLoad() {
    TESSERA_REQUIRE_DATA(path, kStories);
    const auto base = tessera_test::fresh_temp_dir("half");
    const auto a = model::load_llama2c_checkpoint(path);
    model::save_hf_checkpoint(a, base + "/bf16", torch::kBFloat16, false);
    model::save_hf_checkpoint(a, base + "/fp16", torch::kFloat16, false);
    const auto b = model::load_model(base + "/bf16");
    const auto h = model::load_model(base + "/fp16");
    QCOMPARE(io::SafetensorsFile(base + "/bf16/model.safetensors").tensor("model.norm.weight").dtype, io::DType::BF16);
    QVERIFY(torch::equal(b.weights().blocks[2].up_proj,
                         a.weights().blocks[2].up_proj.to(torch::kBFloat16).to(torch::kFloat32)));
    QVERIFY(torch::equal(h.weights().embed_tokens, a.weights().embed_tokens.to(torch::kFloat16).to(torch::kFloat32)));
  }

  void shardedCheckpointLoadsThroughIndex() {
    TESSERA_REQUIRE_DATA(src, kTinyStoriesHf);
    const auto dir = tessera_test::fresh_temp_dir("sharded");
    fs::copy_file(fs::path(src) / "config.json", fs::path(dir) / "config.json");
    io::SafetensorsFile f(src + "/model.safetensors");
    io::SafetensorsWriter first, second;
    nlohmann::json map;
    int i = 0;
    for (const auto& [name, view] : f.tensors()) {
      auto& w = (i++ % 2 == 0) ? first : second;
      w.add(name, view.dtype, view.shape, view.data, view.nbytes);
      map[name] = (i % 2 == 1) ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    }
    first.write_to_file(dir + "/model-00001-of-00002.safetensors");
    second.write_to_file(dir + "/model-00002-of-00002.safetensors");
    std::ofstream(dir + "/model.safetensors.index.json") << nlohmann::json{{"weight_map", map}}.dump();
    const auto a = model::load_model(src);
    const auto b = model::load_model(dir);
    auto ids = torch::tensor({{1, 5, 9, 33, 400}}, torch::kInt64);
    QVERIFY(torch::equal(a.forward(ids), b.forward(ids)));
    // One block alone (what a layer inspection reads) is that block of the whole model.
    const auto one = model::load_block_weights(dir, 1);
    QVERIFY(torch::equal(one.q_proj, a.weights().blocks[1].q_proj));
    QVERIFY(torch::equal(one.down_proj, a.weights().blocks[1].down_proj));
    QVERIFY(torch::equal(one.post_attention_norm, a.weights().blocks[1].post_attention_norm));
    TESSERA_VERIFY_THROWS_WITH(model::load_block_weights(dir, 2), "there is no block 2");
    // An index naming a shard outside the folder (absolute, "..", a sub-path) or a non-string entry.
    for (const nlohmann::json& bad :
         {nlohmann::json("../model-00001-of-00002.safetensors"), nlohmann::json("/etc/passwd"),
          nlohmann::json("sub/x.safetensors"), nlohmann::json(7)}) {
      auto m = map;
      m["model.norm.weight"] = bad;
      std::ofstream(dir + "/model.safetensors.index.json") << nlohmann::json{{"weight_map", m}}.dump();
      TESSERA_VERIFY_THROWS_WITH(model::load_model(dir),
                                 bad.is_string() ? "which is not a file name inside" : "not a file name");
    }
  }

  // config.json's num_hidden_layers below the checkpoint's layers silently dropped layers.
  void fewerConfigLayersThanStoredAreRefused() {
    TESSERA_REQUIRE_DATA(src, kTinyStoriesHf);
    const auto dir =
        hf_copy_with_config(src, "cfg-fewer-layers", [](nlohmann::json& c) { c["num_hidden_layers"] = 1; });
    TESSERA_VERIFY_THROWS_WITH(model::load_model(dir),
                               "the checkpoint holds 2 layers, config.json's num_hidden_layers says 1");
  }

  void configMissingKeyIsNamed() {
    TESSERA_REQUIRE_DATA(src, kTinyStoriesHf);
    const auto dir = hf_copy_with_config(src, "cfg-missing", [](nlohmann::json& c) { c.erase("num_hidden_layers"); });
    TESSERA_VERIFY_THROWS_WITH(model::load_model(dir), "missing required key \"num_hidden_layers\"");
  }

  void configInconsistentHeadsIsRejected() {
    TESSERA_REQUIRE_DATA(src, kTinyStoriesHf);
    const auto dir = hf_copy_with_config(src, "cfg-heads", [](nlohmann::json& c) { c["num_key_value_heads"] = 3; });
    TESSERA_VERIFY_THROWS_WITH(model::load_model(dir), "not a multiple of num_key_value_heads");
  }

  // Sizes whose products overflow 64 bits (the parameter count of `info` wrapped before).
  void absurdSizesAreRejected() {
    TESSERA_REQUIRE_DATA(src, kTinyStoriesHf);
    auto dir =
        hf_copy_with_config(src, "cfg-absurd", [](nlohmann::json& c) { c["intermediate_size"] = 1000000000000LL; });
    TESSERA_VERIFY_THROWS_WITH(model::load_model(dir), "intermediate_size 1000000000000 is absurd");
    dir = hf_copy_with_config(src, "cfg-absurd-layers", [](nlohmann::json& c) { c["num_hidden_layers"] = 1 << 30; });
    TESSERA_VERIFY_THROWS_WITH(model::load_model(dir), "num_hidden_layers 1073741824 is absurd");
  }

  void missingTensorIsNamed() {
    TESSERA_REQUIRE_DATA(src, kTinyStoriesHf);
    const auto dir = hf_copy_with_config(src, "missing-tensor", [](nlohmann::json&) {});
    replace_tensor(dir, "model.layers.1.mlp.up_proj.weight", {});
    TESSERA_VERIFY_THROWS_WITH(model::load_model(dir), "model.layers.1.mlp.up_proj.weight");
  }

  void wrongShapeIsNamed() {
    TESSERA_REQUIRE_DATA(src, kTinyStoriesHf);
    const auto dir = hf_copy_with_config(src, "wrong-shape", [](nlohmann::json&) {});
    replace_tensor(dir, "model.layers.0.self_attn.k_proj.weight", torch::zeros({128, 128}));
    TESSERA_VERIFY_THROWS_WITH(model::load_model(dir), "has shape [128, 128], config.json implies [64, 128]");
  }

  void nanWeightsAreRejected() {
    TESSERA_REQUIRE_DATA(src, kTinyStoriesHf);
    const auto dir = hf_copy_with_config(src, "nan", [](nlohmann::json&) {});
    auto w = torch::zeros({128});
    w[7] = std::numeric_limits<float>::quiet_NaN();
    replace_tensor(dir, "model.norm.weight", w);
    TESSERA_VERIFY_THROWS_WITH(model::load_model(dir), "model.norm.weight\" contains NaN");
  }

  void integerWeightsAreRejected() {
    TESSERA_REQUIRE_DATA(src, kTinyStoriesHf);
    const auto dir = hf_copy_with_config(src, "int-weights", [](nlohmann::json&) {});
    replace_tensor(dir, "model.norm.weight", torch::zeros({128}, torch::kInt32));
    TESSERA_VERIFY_THROWS_WITH(model::load_model(dir), "must be F32, F16 or BF16");
  }

  void unknownFormatsAreRejected() {
    const auto dir = tessera_test::fresh_temp_dir("unknown");
    TESSERA_VERIFY_THROWS_WITH(model::load_model(dir), "no config.json");
    std::ofstream(dir + "/weights.onnx") << "ONNX";
    TESSERA_VERIFY_THROWS_WITH(model::load_model(dir + "/weights.onnx"), "unknown model format");
    // .gguf is a known format now (GGUF import); a file that only has the magic is refused as such.
    std::ofstream(dir + "/weights.gguf") << "GGUF";
    TESSERA_VERIFY_THROWS_WITH(model::load_model(dir + "/weights.gguf"), "truncated GGUF file");
    TESSERA_VERIFY_THROWS_WITH(model::load_model(dir + "/nope.bin"), "does not exist");
  }

  void rejectsUnsupportedModelType() {
    TESSERA_VERIFY_THROWS_WITH(model::LlamaConfig::from_hf_json_text(R"({"model_type":"gpt2","hidden_size":8})", "cfg"),
                               "not a LLaMA-family decoder");
  }
};

TESSERA_TEST_MAIN(TestModelLoading, llama2cHeaderGivesStories260KArchitecture, truncatedLlama2cFileIsRejected,
                  hfFolderLoadsTinyStories656K, convertedFolderGivesIdenticalLogits, bf16AndFp16CheckpointsLoad,
                  shardedCheckpointLoadsThroughIndex, configMissingKeyIsNamed, configInconsistentHeadsIsRejected,
                  absurdSizesAreRejected, missingTensorIsNamed, wrongShapeIsNamed, nanWeightsAreRejected,
                  integerWeightsAreRejected, unknownFormatsAreRejected, rejectsUnsupportedModelType,
                  fewerConfigLayersThanStoredAreRefused)
#ifdef TESSERA_TEST_WITH_QT
#include "test_model_loading.moc"
#endif
