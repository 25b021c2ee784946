#pragma once
// C interface of the SentencePiece bridge module (see core/CMakeLists.txt for why it exists).
#include <cstddef>

extern "C" {
// Returns a handle, or null with a message in `error`.
void* tessera_spm_load(const char* path, char* error, std::size_t error_size);
void tessera_spm_free(void* handle);
// Encodes `text`; returns the number of ids written, or -1 with a message in `error`. When the
// result is larger than `capacity`, nothing is written and the needed size is returned.
long tessera_spm_encode(void* handle, const char* text, std::size_t length, int* ids, std::size_t capacity, char* error,
                        std::size_t error_size);
int tessera_spm_piece_size(void* handle);
int tessera_spm_bos_id(void* handle);
int tessera_spm_eos_id(void* handle);
int tessera_spm_is_byte(void* handle, int id);
int tessera_spm_is_control(void* handle, int id);
const char* tessera_spm_id_to_piece(void* handle, int id);
float tessera_spm_score(void* handle, int id);
}
