#include "text/sentencepiece_tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>

#include "text/sentencepiece_bridge.h"
#include "util/error.h"

namespace tessera::text {
namespace {

// The bridge's functions, resolved once per process.
struct Bridge {
  decltype(&tessera_spm_load) load;
  decltype(&tessera_spm_free) free;
  decltype(&tessera_spm_encode) encode;
  decltype(&tessera_spm_piece_size) piece_size;
  decltype(&tessera_spm_bos_id) bos_id;
  decltype(&tessera_spm_eos_id) eos_id;
  decltype(&tessera_spm_is_byte) is_byte;
  decltype(&tessera_spm_is_control) is_control;
  decltype(&tessera_spm_id_to_piece) id_to_piece;
  decltype(&tessera_spm_score) score;
};

std::vector<std::string> bridge_candidates() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("TESSERA_SPM_BRIDGE")) paths.push_back(env);
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    paths.push_back((exe.parent_path() / "libtessera_spm_bridge.so").string());
    paths.push_back((exe.parent_path() / "../lib/libtessera_spm_bridge.so").string());
    paths.push_back((exe.parent_path() / "../lib/tessera/libtessera_spm_bridge.so").string());
  }
  paths.push_back(TESSERA_SPM_BRIDGE_PATH);  // the build tree
  return paths;
}

const Bridge& bridge() {
  static const Bridge b = [] {
    void* lib = nullptr;
    std::string tried, last_error;
    for (const auto& path : bridge_candidates()) {
      if (!std::filesystem::exists(path)) continue;
      lib = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (lib != nullptr) break;
      last_error = ::dlerror();
      tried += " " + path;
    }
    if (lib == nullptr)
      throw Error("SentencePiece support is not available: cannot load libtessera_spm_bridge.so" +
                  (last_error.empty() ? std::string(" (not found beside the program)") : " (" + last_error + ")"));
    auto sym = [&](const char* name) {
      void* f = ::dlsym(lib, name);
      if (f == nullptr) throw Error(std::string("SentencePiece bridge lacks ") + name);
      return f;
    };
    Bridge r{};
    r.load = reinterpret_cast<decltype(r.load)>(sym("tessera_spm_load"));
    r.free = reinterpret_cast<decltype(r.free)>(sym("tessera_spm_free"));
    r.encode = reinterpret_cast<decltype(r.encode)>(sym("tessera_spm_encode"));
    r.piece_size = reinterpret_cast<decltype(r.piece_size)>(sym("tessera_spm_piece_size"));
    r.bos_id = reinterpret_cast<decltype(r.bos_id)>(sym("tessera_spm_bos_id"));
    r.eos_id = reinterpret_cast<decltype(r.eos_id)>(sym("tessera_spm_eos_id"));
    r.is_byte = reinterpret_cast<decltype(r.is_byte)>(sym("tessera_spm_is_byte"));
    r.is_control = reinterpret_cast<decltype(r.is_control)>(sym("tessera_spm_is_control"));
    r.id_to_piece = reinterpret_cast<decltype(r.id_to_piece)>(sym("tessera_spm_id_to_piece"));
    r.score = reinterpret_cast<decltype(r.score)>(sym("tessera_spm_score"));
    return r;
  }();
  return b;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& path) : path_(path) {
  char error[512] = {0};
  handle_ = bridge().load(path.c_str(), error, sizeof(error));
  if (handle_ == nullptr) throw Error(path + ": not a SentencePiece model (" + error + ")");
  vocab_size_ = bridge().piece_size(handle_);
  bos_id_ = bridge().bos_id(handle_);
  eos_id_ = bridge().eos_id(handle_);
}

SentencePieceTokenizer::~SentencePieceTokenizer() {
  if (handle_ != nullptr) bridge().free(handle_);
}

std::vector<std::int32_t> SentencePieceTokenizer::encode(const std::string& text, bool add_bos, bool add_eos) const {
  char error[512] = {0};
  // A first guess of one id per byte is always enough for SentencePiece (at most one piece per byte).
  std::vector<int> ids(text.size() + 1);
  const long n = bridge().encode(handle_, text.data(), text.size(), ids.data(), ids.size(), error, sizeof(error));
  if (n < 0) throw Error(path_ + ": encoding failed (" + error + ")");
  if (static_cast<std::size_t>(n) > ids.size()) {
    ids.resize(static_cast<std::size_t>(n));
    bridge().encode(handle_, text.data(), text.size(), ids.data(), ids.size(), error, sizeof(error));
  }
  std::vector<std::int32_t> out;
  out.reserve(static_cast<std::size_t>(n) + 2);
  if (add_bos && bos_id_ >= 0) out.push_back(bos_id_);
  out.insert(out.end(), ids.begin(), ids.begin() + n);
  if (add_eos && eos_id_ >= 0) out.push_back(eos_id_);
  return out;
}

std::string SentencePieceTokenizer::piece(std::int32_t id) const {
  if (id < 0 || id >= vocab_size_) throw Error("token id " + std::to_string(id) + " out of range");
  return bridge().id_to_piece(handle_, id);
}

float SentencePieceTokenizer::score(std::int32_t id) const {
  if (id < 0 || id >= vocab_size_) throw Error("token id " + std::to_string(id) + " out of range");
  return bridge().score(handle_, id);
}

bool SentencePieceTokenizer::is_byte(std::int32_t id) const { return bridge().is_byte(handle_, id) != 0; }

std::string SentencePieceTokenizer::decode_token(std::int32_t previous, std::int32_t token) const {
  if (token < 0 || token >= vocab_size_)
    throw Error("token id " + std::to_string(token) + " is outside the tokenizer's vocabulary (" +
                std::to_string(vocab_size_) + ")");
  if (bridge().is_control(handle_, token)) return "";
  const std::string piece = bridge().id_to_piece(handle_, token);
  if (bridge().is_byte(handle_, token))  // "<0xNN>"
    return std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
  // "▁" (U+2581) stands for a space; the first word after BOS has no leading space.
  std::string out;
  for (std::size_t i = 0; i < piece.size();) {
    if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {
      out.push_back(' ');
      i += 3;
    } else {
      out.push_back(piece[i++]);
    }
  }
  if ((previous < 0 || previous == bos_id_) && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

}  // namespace tessera::text
