// OFD, "A Comprehensive Overhaul of Feature Distillation" (Heo et al. 2019): the student's map
// through a connector (1x1 conv + BatchNorm) against the teacher's pre-ReLU map clipped from
// below by a per-channel margin (margin ReLU), with the partial L2 distance that ignores the
// places where the teacher is negative and the student already below it.
#include "feature_loss.hpp"

#include <cmath>

namespace ssld::feature {
namespace {

using torch::Tensor;

class OfdLoss : public FeatureLoss {
 public:
  OfdLoss(const ssld::Options& options, const ssld::Context&) : FeatureLoss(options, Connector::Always) {}

 protected:
  void build(const std::vector<Shape>& student, const std::vector<Shape>& teacher) override {
    for (size_t i = 0; i < student.size(); ++i) {
      if (teacher[i].size() != 4) refuse(i, student[i], teacher[i], "OFD compares [N, C, H, W] maps");
      margins_.push_back(modules_.register_buffer("margin" + std::to_string(i), torch::zeros({teacher[i][1]})));
    }
    // 0 until the first training batch has set the margins; then 1 (saved, so a resumed run
    // keeps the margins it trained with).
    margins_set_ = modules_.register_buffer("margins_set", torch::zeros({}, torch::kInt64));
  }

  Tensor term(const std::vector<Tensor>& s, const std::vector<Tensor>& t, const ssld::LossInputs&) override {
    if (!margins_known_ && margins_set_.item<int64_t>() == 0) {  // one read of the buffer per run
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < t.size(); ++i) margins_[i].copy_(margin_of(t[i]));
      margins_set_.fill_(1);
    }
    margins_known_ = true;
    Tensor total;
    for (size_t i = 0; i < s.size(); ++i) {
      const Tensor target = torch::max(t[i], margins_[i].view({1, -1, 1, 1}));
      const Tensor counted = ((s[i] > target) | (target > 0)).to(s[i].scalar_type());
      const Tensor pair = ((s[i] - target).pow(2) * counted).sum() / static_cast<double>(s[i].size(0));
      total = total.defined() ? total + pair : pair;
    }
    return total;
  }

 private:
  // The paper reads each channel's pre-ReLU distribution N(m, s^2) off the teacher's BatchNorm
  // (bias, weight); a loss sees only features, so m and s are the channel's mean and standard
  // deviation over the first training batch. The margin is E[x | x < 0] = m - s phi(m/s) /
  // Phi(-m/s), or -3 s where Phi(-m/s) <= 0.001 (the paper's cut).
  static Tensor margin_of(const Tensor& map) {
    const Tensor m = map.mean({0, 2, 3}).to(torch::kDouble);
    const Tensor s = map.std({0, 2, 3}, /*unbiased=*/false).to(torch::kDouble).clamp_min(1e-12);
    const Tensor z = m / s;
    const Tensor below = 0.5 * torch::erfc(z / std::sqrt(2.0));  // Phi(-m/s)
    const Tensor density = torch::exp(-0.5 * z.pow(2)) / std::sqrt(2.0 * M_PI);
    const Tensor expected = m - s * density / below.clamp_min(1e-300);
    return torch::where(below > 0.001, expected, -3.0 * s).to(map.scalar_type());
  }

  std::vector<Tensor> margins_;
  Tensor margins_set_;
  bool margins_known_ = false;
};

}  // namespace

void add_ofd(ssld::Registry& registry) {
  ssld::add_component<ssld::Loss, OfdLoss>(
      registry, "ofd",
      "Overhaul of feature distillation (Heo et al. 2019): connector, margin ReLU on the teacher's pre-ReLU map, "
      "partial L2 distance.",
      feature_schema(1e-3, "multiplies the summed distances, each summed over the map and averaged over the batch "
                           "(mdistiller: 0.001)",
                     /*connector_option=*/false));
}

}  // namespace ssld::feature
