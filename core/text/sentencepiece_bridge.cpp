#include "text/sentencepiece_bridge.h"

#include <sentencepiece_processor.h>

#include <cstring>
#include <string>
#include <vector>

namespace {
void set_error(char* error, std::size_t size, const std::string& message) {
  if (error == nullptr || size == 0) return;
  std::strncpy(error, message.c_str(), size - 1);
  error[size - 1] = '\0';
}
sentencepiece::SentencePieceProcessor* processor(void* h) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(h);
}
}  // namespace

extern "C" {

void* tessera_spm_load(const char* path, char* error, std::size_t error_size) {
  auto* p = new sentencepiece::SentencePieceProcessor();
  const auto status = p->Load(path);
  if (!status.ok()) {
    set_error(error, error_size, status.ToString());
    delete p;
    return nullptr;
  }
  return p;
}

void tessera_spm_free(void* handle) { delete processor(handle); }

long tessera_spm_encode(void* handle, const char* text, std::size_t length, int* ids, std::size_t capacity, char* error,
                        std::size_t error_size) {
  std::vector<int> out;
  const auto status = processor(handle)->Encode(std::string(text, length), &out);
  if (!status.ok()) {
    set_error(error, error_size, status.ToString());
    return -1;
  }
  if (out.size() <= capacity) std::copy(out.begin(), out.end(), ids);
  return static_cast<long>(out.size());
}

int tessera_spm_piece_size(void* handle) { return processor(handle)->GetPieceSize(); }
int tessera_spm_bos_id(void* handle) { return processor(handle)->bos_id(); }
int tessera_spm_eos_id(void* handle) { return processor(handle)->eos_id(); }
int tessera_spm_is_byte(void* handle, int id) { return processor(handle)->IsByte(id) ? 1 : 0; }
int tessera_spm_is_control(void* handle, int id) { return processor(handle)->IsControl(id) ? 1 : 0; }
const char* tessera_spm_id_to_piece(void* handle, int id) { return processor(handle)->IdToPiece(id).c_str(); }
float tessera_spm_score(void* handle, int id) { return processor(handle)->GetScore(id); }
}
