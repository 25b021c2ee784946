// TesseraQ's compacted Linear (methods/tesseraq_linear.h): the soft weight, the gradients from
// dL/dW and Adam must be those of the method's formula
//   W = s * 2 rsig(v) * (clamp(B + h + z, 0, qmax) - z),  h = rsig(nu) soft / fixed rounding hard,
// composed of libtorch ops with autograd and torch::optim::Adam; and on CUDA the kernels must give
// the libtorch-op implementation's results. Cases: odd shapes, a ragged last group, per-channel,
// 2/3/4/8 bits (8 uses int16 codes), all-soft, partly hard and all-hard layers.
#include <torch/torch.h>

#include <cstdio>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "methods/tesseraq_linear.h"
#include "tessera_test.h"
#include "test_device.h"

using namespace tessera;

namespace {

struct Case {
  std::int64_t rows, cols, group;
  int bits;
  double soft_fraction;       // 1: no hardening
  int scale_bits = 0;         // > 0: s * delta rounded to fp16 values (a GGUF grid target)
  int superblock_levels = 0;  // > 0: a GGUF k-quant target (s * delta = d * k per 256 columns)
  bool mins = false;          // with superblock_levels: asymmetric, offsets dmin * m (Q2_K/Q4_K/Q5_K)
  std::string name() const {
    return std::to_string(rows) + "x" + std::to_string(cols) + " g" + std::to_string(group) + " W" +
           std::to_string(bits) + " soft " + std::to_string(soft_fraction) +
           (scale_bits ? " scale bits " + std::to_string(scale_bits) : "") +
           (superblock_levels ? " k-quant levels " + std::to_string(superblock_levels) : "") + (mins ? " mins" : "");
  }
};

const std::vector<Case> kCases = {
    {24, 80, 32, 2, 0.6},                // ragged last group
    {17, 72, 8, 3, 1.0},                 // odd rows, all soft
    {16, 64, 0, 4, 0.3},                 // per-channel
    {33, 136, 128, 2, 0.05},             // ragged, mostly hard
    {8, 256, 128, 8, 0.5},               // int16 codes
    {12, 96, 32, 3, 0.0},                // all hard
    {24, 96, 32, 4, 0.6, 7},             // GGUF Q4_1 target: scales of 7 significant bits
    {16, 512, 16, 3, 0.6, 0, 31},        // GGUF Q3_K target: two super-blocks per row
    {16, 512, 32, 4, 0.6, 0, 63, true},  // GGUF Q4_K target: fractional zero points
};

// A layer in a trained-looking state: nu and v moved, some elements saturated, hardened to the case.
methods::TesseraqLinear make_layer(const Case& c, torch::Device device) {
  torch::manual_seed(1234 + c.rows + c.cols + c.bits);
  const auto w = torch::randn({c.rows, c.cols}) * 0.05;
  auto l = methods::TesseraqLinear::init(
      w.to(device), {c.bits, c.group, c.superblock_levels > 0 && !c.mins, c.scale_bits, c.superblock_levels});
  torch::NoGradGuard no_grad;
  l.soft_nu.add_(torch::randn({l.soft_count()}).to(device) * 1.5);
  l.v.add_(torch::randn(l.v.sizes()).to(device) * 0.5);
  if (c.soft_fraction < 1.0) l.harden(c.soft_fraction);
  return l;
}

// The method's formula, with B + the rounding of hard elements = the layer's codes; nu is dense
// [O, I] (hard positions unused).
torch::Tensor formula(const methods::TesseraqLinear& l, const torch::Tensor& nu, const torch::Tensor& v) {
  auto soft = torch::zeros({l.rows() * l.cols()}, l.soft_nu.options().dtype(torch::kBool));
  soft.index_fill_(0, l.soft_index.to(torch::kInt64), true);
  soft = soft.view({l.rows(), l.cols()});
  const auto h = torch::where(soft, methods::rectified_sigmoid(nu), torch::zeros_like(nu));
  // s * delta on the scales a GGUF target allows (straight through the rounding).
  const auto group_step = quant::representable_scales(l.scale * (2.0 * methods::rectified_sigmoid(v)), l.spec);
  const auto step = quant::expand_groups(group_step, l.group, l.cols());
  const auto z = quant::expand_groups(l.zero, l.group, l.cols());
  auto w = step * (torch::clamp(l.codes.to(torch::kFloat32) + h, 0.0, l.qmax()) - z);
  if (!l.spec.superblock_offsets()) return w;
  // k-quant offsets: the offset z * step moved onto the dmin * m lattice, straight through.
  const auto offset = quant::group_offsets(group_step.detach(), l.zero, l.spec);
  return w + quant::expand_groups((group_step * l.zero - offset).detach(), l.group, l.cols());
}

// The layer's variables as dense autograd leaves.
struct Leaves {
  torch::Tensor nu, v;
};

Leaves leaves(const methods::TesseraqLinear& l) {
  torch::NoGradGuard no_grad;
  auto nu = torch::zeros({l.rows() * l.cols()}, l.soft_nu.options());
  nu.index_copy_(0, l.soft_index.to(torch::kInt64), l.soft_nu);
  return {nu.view({l.rows(), l.cols()}).clone().set_requires_grad(true), l.v.clone().set_requires_grad(true)};
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return a.numel() == 0
             ? 0.0
             : (a.to(torch::kCPU, torch::kFloat64) - b.to(torch::kCPU, torch::kFloat64)).abs().max().item<double>();
}

#define CHECK_CLOSE(a, b, tol, what)                                                                             \
  do {                                                                                                           \
    const double d_ = max_diff((a), (b));                                                                        \
    std::printf("%-40s %-24s max diff %.3g (tolerance %.3g)\n", c.name().c_str(), std::string(what).c_str(), d_, \
                static_cast<double>(tol));                                                                       \
    QVERIFY2(d_ <= (tol), (c.name() + ": " + (what) + " differs by " + std::to_string(d_)).c_str());             \
  } while (0)

}  // namespace

class TestTesseraqLinear : public QObject {
  Q_OBJECT
  TESSERA_TEST_FRIEND

 private slots:
  void composedOpsMatchTheFormulaWithAutogradAndTorchAdam() {
    for (const auto& c : kCases) {
      auto l = make_layer(c, torch::kCPU);
      l.use_kernels = false;
      auto r = leaves(l);
      const auto reference = formula(l, r.nu, r.v);
      CHECK_CLOSE(l.weight(), reference, 1e-7, "weight");

      // Gradients of sum(W * probe), i.e. dL/dW = probe.
      torch::manual_seed(5);
      const auto probe = torch::randn({l.rows(), l.cols()});
      (reference * probe).sum().backward();
      const auto g = l.gradients(probe);
      const auto soft = l.soft_index.to(torch::kInt64);
      CHECK_CLOSE(g.nu, r.nu.grad().flatten().index_select(0, soft), 1e-6, "dL/dnu");
      CHECK_CLOSE(g.v, r.v.grad(), 1e-5, "dL/dv");
      if (c.soft_fraction > 0) QVERIFY2(g.nu.abs().sum().item<double>() > 0, c.name().c_str());
      QVERIFY2(g.v.abs().sum().item<double>() > 0, c.name().c_str());

      // Two Adam steps against torch::optim::Adam on the dense variables (hard elements have zero
      // gradient there and their nu is never read).
      methods::TesseraqAdam adam;
      adam.lr_nu = 1e-2;
      adam.lr_v = 5e-3;
      adam.weight_decay_v = 1e-2;
      r = leaves(l);
      std::vector<torch::optim::OptimizerParamGroup> groups;
      groups.emplace_back(std::vector<torch::Tensor>{r.nu},
                          std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(adam.lr_nu)));
      groups.emplace_back(std::vector<torch::Tensor>{r.v},
                          std::make_unique<torch::optim::AdamOptions>(
                              torch::optim::AdamOptions(adam.lr_v).weight_decay(adam.weight_decay_v)));
      torch::optim::Adam torch_adam(groups, torch::optim::AdamOptions(1e-3));
      auto steps = torch::zeros({1}, torch::kInt64);
      for (int step = 0; step < 2; ++step) {
        torch_adam.zero_grad();
        (formula(l, r.nu, r.v) * probe).sum().backward();
        torch_adam.step();
        l.weight();  // the step's forward, as in training
        l.adam_step(probe, adam, methods::adam_step_coefficients(torch::tensor(1.0f), steps, adam, false));
      }
      CHECK_CLOSE(l.soft_nu, r.nu.detach().flatten().index_select(0, soft), 1e-6, "nu after Adam");
      CHECK_CLOSE(l.v, r.v.detach(), 1e-6, "v after Adam");
    }
  }

  void nonFiniteLossLeavesTheLayerUnchanged() {
    const Case c{24, 80, 32, 2, 0.6};
    auto l = make_layer(c, torch::kCPU);
    const auto nu = l.soft_nu.clone(), v = l.v.clone();
    auto steps = torch::zeros({1}, torch::kInt64);
    const auto coefficients =
        methods::adam_step_coefficients(torch::tensor(std::numeric_limits<float>::quiet_NaN()), steps, {}, false);
    l.adam_step(torch::ones({24, 80}), {}, coefficients);
    QVERIFY(torch::equal(l.soft_nu, nu) && torch::equal(l.v, v));
    QCOMPARE(steps.item<std::int64_t>(), std::int64_t(0));
  }

  void cudaKernelsMatchTheComposedOps() {
    if (!tessera_test::cuda_wanted()) QSKIP("no CUDA device (set TESSERA_TEST_DEVICE=cuda on the GPU machine)");
    const torch::Device cuda(torch::kCUDA, 0);
    for (const auto& c : kCases) {
      auto k = make_layer(c, cuda);
      auto t = make_layer(c, cuda);
      t.use_kernels = false;
      QVERIFY2(k.runs_kernels(), "this build has no TesseraQ CUDA kernels (TESSERA_CUDA_KERNELS)");
      QVERIFY(!t.runs_kernels());
      // The kernels' sigmoid may differ from libtorch's in the last fp32 bit, which can move a
      // rounding to bf16/fp16 by one unit.
      const double w_max = t.weight().abs().max().item<double>();
      for (auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kHalf}) {
        CHECK_CLOSE(k.weight(dtype), t.weight(dtype), (dtype == torch::kFloat32 ? 1e-6 : 8e-3) * w_max,
                    std::string("weight ") + c10::toString(dtype));
      }
      torch::manual_seed(6);
      const auto probe = torch::randn({c.rows, c.cols}).to(cuda);
      for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
        const auto g = probe.to(dtype);
        const auto gk = k.gradients(g), gt = t.gradients(g);
        CHECK_CLOSE(gk.nu, gt.nu, 1e-5 * (1.0 + gt.nu.abs().max().item<double>()),
                    std::string("dL/dnu ") + c10::toString(dtype));
        CHECK_CLOSE(gk.v, gt.v, 1e-4 * (1.0 + gt.v.abs().max().item<double>()),
                    std::string("dL/dv ") + c10::toString(dtype));
      }
      // Adam: three steps with device-side coefficients, the middle one with a NaN loss (skipped).
      methods::TesseraqAdam adam;
      adam.lr_nu = 1e-2;
      adam.weight_decay_v = 1e-2;
      auto steps_k = torch::zeros({1}, torch::TensorOptions().dtype(torch::kInt64).device(cuda));
      auto steps_t = torch::zeros({1}, torch::kInt64);
      for (float loss : {1.0f, std::numeric_limits<float>::quiet_NaN(), 2.0f}) {
        const auto lk = torch::tensor(loss).to(cuda);
        k.weight(torch::kBFloat16);
        t.weight(torch::kBFloat16);
        k.adam_step(probe.to(torch::kBFloat16), adam, methods::adam_step_coefficients(lk, steps_k, adam, true));
        t.adam_step(probe.to(torch::kBFloat16), adam, methods::adam_step_coefficients(lk.cpu(), steps_t, adam, false));
      }
      QCOMPARE(steps_k.item<std::int64_t>(), std::int64_t(2));
      // Adam's first steps move every variable by about lr whatever the gradient's size, so an
      // element whose gradient is ~0 may move differently on the two paths: allow one in 1000.
      for (auto [a, b, what] :
           {std::make_tuple(k.soft_nu, t.soft_nu, "nu after Adam"), std::make_tuple(k.v, t.v, "v after Adam")}) {
        if (a.numel() == 0) continue;
        const auto d = (a - b.to(a.device())).abs();
        const double off = (d > 1e-5).to(torch::kFloat64).mean().item<double>();
        std::printf("%-40s %-24s max diff %.3g, fraction off by > 1e-5: %.2g\n", c.name().c_str(), what,
                    d.max().item<double>(), off);
        QVERIFY2(off <= 1e-3 && d.max().item<double>() <= 4 * adam.lr_nu, (c.name() + ": " + what).c_str());
      }
      // Hardening and final codes on the same state agree (hardening is shared code, on the device).
      QVERIFY2(torch::equal(k.final_codes(), t.final_codes()), c.name().c_str());
      // After a hardening the soft list is shorter; the kernels' index of it by group must follow.
      // The kernels sum in a fixed order, so the same state gives bit-identical gradients.
      k.harden(0.5);
      t.codes = k.codes.clone();
      t.soft_index = k.soft_index.clone();
      t.soft_nu = k.soft_nu.clone();
      t.v = k.v.clone();
      k.weight(torch::kBFloat16);
      const auto g = probe.to(torch::kBFloat16);
      const auto gk = k.gradients(g), gt = t.gradients(g), again = k.gradients(g);
      CHECK_CLOSE(gk.nu, gt.nu, 1e-5 * (1.0 + gt.nu.abs().max().item<double>()), "dL/dnu after hardening");
      CHECK_CLOSE(gk.v, gt.v, 1e-4 * (1.0 + gt.v.abs().max().item<double>()), "dL/dv after hardening");
      QVERIFY2(torch::equal(gk.nu, again.nu) && torch::equal(gk.v, again.v),
               (c.name() + ": gradients not reproducible").c_str());
    }
  }
};

TESSERA_TEST_MAIN(TestTesseraqLinear, composedOpsMatchTheFormulaWithAutogradAndTorchAdam,
                  nonFiniteLossLeavesTheLayerUnchanged, cudaKernelsMatchTheComposedOps)
#ifdef TESSERA_TEST_WITH_QT
#include "test_tesseraq_linear.moc"
#endif
