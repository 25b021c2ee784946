#pragma once
// Export of a finished run as a GGUF v3 file for llama.cpp: llama.* hyperparameters,
// tokenizer.ggml.* from the run's tokenizer (text/gguf_vocabulary.h), the run manifest under
// "tessera.run", and a SHA-256 of the tensor data. Tensor names, ggml dimension order and the q/k
// row permutation follow llama.cpp's convert_hf_to_gguf.py.
//   gguf-f32   every tensor F32: the run's weights exactly
//   gguf-f16   Linear weights F16 (the run's weights rounded to fp16, as the fp16 HF export), rest F32
//   gguf-q4_0 / q4_1 / q5_0 / q5_1 / q8_0  blocks of 32 written from the codes
//              (formats/gguf_blocks.h): d = fp16(scale), for the _1 types m = fp16(-zero * d). That
//              decodes to the run's (q - z) * s only when those are fp16 values (a run made with
//              the matching --target, quant/grid_target.h, always), so a layer is written as blocks
//              only when every weight decodes bit-identically, otherwise as F32 (listed as not
//              converted); a run where no layer can be exact is refused.
//   gguf-q2_k .. q6_k  super-blocks of 256 (one fp16 d, an integer scale per group of 16 or 32),
//              written when every group scale of a super-block is d * k (a run made with the
//              matching --target), under the same rule. A Linear whose input width is not a
//              multiple of 256 is written in llama.cpp's fallback type (Q5_0, Q5_1, Q8_0, or F16;
//              quant/grid_target.h), which the run quantized it on, and listed in the report's
//              fallbacks; general.file_type stays the format's.
// The file is written beside its destination, self-checked (decoded as llama.cpp does and compared
// with the run), and only then renamed into place.
#include <torch/torch.h>

#include <map>
#include <string>

#include "export/export_report.h"
#include "export/run_source.h"
#include "model/llama_model.h"
#include "util/stop_token.h"

namespace tessera::exporting {

// "" when format `id` can hold the run, else why not.
std::string gguf_export_refusal(const RunSource& run, const std::string& id);

ExportReport export_gguf(const std::string& run_dir, const std::string& out_file, const std::string& id,
                         bool replace_existing, const StopToken& stop = StopToken());

struct GgufCheck {
  std::int64_t blocks = 0, f16 = 0, f32 = 0;    // quantized Linears by how they are stored
  std::map<std::string, std::int64_t> by_type;  // block-type Linears by ggml type name ("Q4_K", "Q5_0")
};
// Decodes every quantized Linear of `file` as llama.cpp does and compares it with the run: block
// codes and decoded weights and F32 weights bit-identical, F16 weights identical to the run's in
// fp16. Throws naming the first tensor that differs. (Norms and embeddings are covered by the
// file's tensor_data_sha256, which the importer checks.)
GgufCheck verify_gguf(const RunSource& run, const std::string& file);

// An unquantized model as a llama GGUF file (`tessera convert --out X.gguf`): Linear weights and
// embeddings in `dtype` (fp32, fp16 or bf16: F32, F16 or BF16), norms F32, the tokenizer embedded
// (SentencePiece or llama2.c). Read back and compared tensor by tensor before it is put in place.
ExportReport convert_model_to_gguf(const model::LlamaModel& model, const std::string& tokenizer_path,
                                   const std::string& out_file, const std::string& dtype, bool replace_existing);

}  // namespace tessera::exporting
