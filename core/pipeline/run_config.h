#pragma once
// Everything that defines a quantization run, as JSON that round-trips. validate() checks every
// field and names the one at fault.
#include <cstdint>
#include <string>
#include <vector>

#include "quant/quant_spec.h"

namespace tessera::pipeline {

struct RunConfig {
  std::string model;           // llama2.c .bin or Hugging Face folder
  std::string tokenizer;       // "" = the one beside the model
  std::string calib;           // calibration corpus (text or JSON lines)
  std::string method = "rtn";  // rtn | awq | omniquant | tesseraq
  quant::WeightQuantSpec weight;
  // "" or a GGUF grid target (quant/grid_target.h, e.g. "gguf-q4_0"): `weight` is then exactly that
  // block type's grid (bits, group 32, symmetric or not, fp16 scales) and the run exports to it
  // bit-exactly. Written to JSON only when set, so that other runs keep their identity.
  std::string target;
  int act_bits = 0;  // 0 = activations not quantized (A16)
  std::int64_t samples = 128;
  std::int64_t seq_len = 512;
  std::uint64_t seed = 42;
  std::string device = "cpu";
  std::int64_t batch_size = 8;  // calibration windows per forward pass
  // dtype of the matmuls while TesseraQ trains (parameters and loss stay fp32): auto = bf16 on
  // CUDA, fp32 on the CPU | fp32 | bf16. OmniQuant trains in fp32 on every device (its parameters
  // are few, and the measured 4x of bf16 matters for TesseraQ's 5,000 steps per block).
  std::string train_dtype = "auto";
  // AWQ (tesseraq-method.md section 2)
  int awq_grid = 20;            // alpha grid points 0, 1/n, ...
  bool awq_clip = true;         // LLMC asymmetric clip search after scaling
  int awq_clip_grid = 20;       // ratio step 1/grid
  double awq_max_shrink = 0.5;  // ratios 1.0 down to 1 - max_shrink (exclusive)
  std::int64_t awq_clip_tokens = 512;
  // OmniQuant (tesseraq-method.md section 3; defaults of the official scripts)
  std::int64_t oq_epochs = 0;   // 0 = the scripts' choice: 40 at 2 bits, else 20
  double oq_lwc_lr = 1e-2;      // learnable weight clipping logits (AdamW, wd 0)
  std::string oq_let = "auto";  // learnable equivalent transformation: auto (on when abits > 0) | on | off
  double oq_let_lr = 5e-3;
  double oq_alpha = 0.5;             // LET scale init a^alpha / w^(1-alpha)
  std::string oq_aug_loss = "auto";  // auto (on at 2 bits) | on | off
  std::int64_t oq_batch = 1;         // calibration samples per step (fixed order)
  // TesseraQ (tesseraq-method.md section 4)
  std::string tq_init = "awq";          // awq (AWQ scales + v1 clip) | omniquant (LWC logits) | none
  std::string tq_schedule = "paper20";  // paper20 | paper10 | comma list of soft fractions
  std::int64_t tq_steps = 250;          // Adam steps per PAR iteration
  std::int64_t tq_batch = 4;            // calibration samples per step
  double tq_lr = 1e-3;                  // rounding variables (weight decay 0)
  double tq_scale_lr = 1e-3;            // DST variables
  double tq_scale_wd = 1e-4;            // DST weight decay (coupled L2, torch.optim.Adam)
  std::int64_t tq_log_every = 10;       // StepLoss event every n steps (OmniQuant's too)

  void validate() const;
  // Sets `weight` to the target's grid; throws naming the target when it is unknown.
  void apply_target();
  std::int64_t omniquant_epochs() const;  // oq_epochs with "0 = auto" resolved
  // TesseraQ's matmuls in bf16: train_dtype "bf16", or "auto" on CUDA.
  bool trains_in_bf16(bool on_cuda) const { return train_dtype == "bf16" || (train_dtype == "auto" && on_cuda); }
  bool omniquant_let() const;       // oq_let resolved
  bool omniquant_aug_loss() const;  // oq_aug_loss resolved
  // The PAR soft fractions of tq_schedule (4.5); throws naming the bad entry.
  std::vector<double> par_thresholds() const;
  std::string to_json_text() const;
  // Missing keys keep the value of `base`; a preset (resources/presets/*.json) is such a partial
  // config applied over the defaults or over the user's model and data choices.
  static RunConfig from_json_text(const std::string& text, const std::string& source, const RunConfig& base);
  static RunConfig from_json_text(const std::string& text, const std::string& source);
  static RunConfig from_file(const std::string& path);
  // The fields that change the numbers (not device placement or batch size of the forward pass).
  std::string identity_json() const;
};

}  // namespace tessera::pipeline
