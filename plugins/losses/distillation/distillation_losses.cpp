// Distillation losses: terms that compare the student's predictions with the teacher's.
//   ssld: PaddleClas' SSLD loss, 1/2 [KL(p_t || p_s) + KL(p_s || p_t)] (symmetric KL; never
//         reads labels, which is what lets SSLD train on unlabeled images);
//   jsd:  the Jensen-Shannon divergence, 1/2 [KL(p_t || m) + KL(p_s || m)], m = (p_t + p_s) / 2;
//   kl:   Hinton et al.'s KD, T^2 KL(p_t^T || p_s^T);
//   dkd:  decoupled KD (Zhao et al. 2022), alpha TCKD + beta NCKD, T^2-scaled;
//   dist: DIST (Huang et al. 2022), 1 - Pearson correlation between- and within-class.
// p = softmax(z / T); sums over classes, means over the batch. Teacher logits are detached.
#include <ssld/features.hpp>
#include <ssld/plugin.hpp>

#include <torch/torch.h>

namespace {

using torch::Tensor;

// The common part: temperature, a teacher, float32 math, an agreement metric.
class DistillationLoss : public ssld::Loss {
 public:
  explicit DistillationLoss(const ssld::Options& options) : temperature_(options.get_float("temperature")) {
    if (temperature_ <= 0.0) throw ssld::option_error(options, "temperature", "temperature must be positive");
  }

  ssld::LossOutput compute(const ssld::LossInputs& inputs) override {
    if (inputs.teacher == nullptr) throw ssld::Error("this loss needs a teacher's outputs");
    const Tensor student = inputs.student.logits.to(torch::kFloat32);
    const Tensor teacher = inputs.teacher->logits.detach().to(torch::kFloat32);
    if (student.sizes() != teacher.sizes())
      throw ssld::Error("student logits " + ssld::shape_text(student.sizes()) + " and teacher logits " +
                        ssld::shape_text(teacher.sizes()) +
                        " differ: both must predict the same classes");
    const Tensor agreement = (student.argmax(1) == teacher.argmax(1)).to(torch::kFloat32).mean().detach();
    return {divergence(student, teacher, inputs), {{"agreement", agreement}}};
  }
  bool needs_teacher() const override { return true; }
  bool uses_labels() const override { return false; }

 protected:
  virtual Tensor divergence(const Tensor& student, const Tensor& teacher, const ssld::LossInputs& inputs) const = 0;
  double temperature_;
};

ssld::Schema temperature_schema(double default_temperature, const char* doc) {
  return ssld::Schema().add_float("temperature", default_temperature, doc);
}

class SsldLoss : public DistillationLoss {
 public:
  SsldLoss(const ssld::Options& options, const ssld::Context&) : DistillationLoss(options) {}

 protected:
  Tensor divergence(const Tensor& student, const Tensor& teacher, const ssld::LossInputs&) const override {
    const Tensor log_p_s = torch::log_softmax(student / temperature_, 1);
    const Tensor log_p_t = torch::log_softmax(teacher / temperature_, 1);
    // KL(t||s) + KL(s||t) = sum_c (p_t - p_s)(log p_t - log p_s)
    return 0.5 * ((log_p_t.exp() - log_p_s.exp()) * (log_p_t - log_p_s)).sum(1).mean();
  }
};

class JsdLoss : public DistillationLoss {
 public:
  JsdLoss(const ssld::Options& options, const ssld::Context&) : DistillationLoss(options) {}

 protected:
  Tensor divergence(const Tensor& student, const Tensor& teacher, const ssld::LossInputs&) const override {
    const Tensor log_p_s = torch::log_softmax(student / temperature_, 1);
    const Tensor log_p_t = torch::log_softmax(teacher / temperature_, 1);
    const Tensor log_m = (0.5 * (log_p_s.exp() + log_p_t.exp())).clamp_min(1e-30).log();
    const Tensor kl_t = (log_p_t.exp() * (log_p_t - log_m)).sum(1);
    const Tensor kl_s = (log_p_s.exp() * (log_p_s - log_m)).sum(1);
    return 0.5 * (kl_t + kl_s).mean();
  }
};

class KlLoss : public DistillationLoss {
 public:
  KlLoss(const ssld::Options& options, const ssld::Context&) : DistillationLoss(options) {}

 protected:
  Tensor divergence(const Tensor& student, const Tensor& teacher, const ssld::LossInputs&) const override {
    const Tensor log_p_s = torch::log_softmax(student / temperature_, 1);
    const Tensor log_p_t = torch::log_softmax(teacher / temperature_, 1);
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(1).mean() * temperature_ * temperature_;
  }
};

// KL(a || b) of two-class distributions given as probabilities of the first class.
Tensor binary_kl(const Tensor& a, const Tensor& b) {
  const Tensor a1 = a.clamp(1e-8, 1 - 1e-8), b1 = b.clamp(1e-8, 1 - 1e-8);
  return a1 * (a1.log() - b1.log()) + (1 - a1) * ((1 - a1).log() - (1 - b1).log());
}

class DkdLoss : public DistillationLoss {
 public:
  DkdLoss(const ssld::Options& options, const ssld::Context&)
      : DistillationLoss(options), alpha_(options.get_float("alpha")), beta_(options.get_float("beta")) {}
  bool uses_labels() const override { return true; }

 protected:
  // The target class is the label where there is one, the teacher's argmax elsewhere.
  Tensor divergence(const Tensor& student, const Tensor& teacher, const ssld::LossInputs& inputs) const override {
    const Tensor target = torch::where(inputs.label_mask, inputs.labels, teacher.argmax(1));
    const Tensor gt = torch::zeros_like(student).scatter_(1, target.unsqueeze(1), 1.0).to(torch::kBool);
    const Tensor p_s = torch::softmax(student / temperature_, 1), p_t = torch::softmax(teacher / temperature_, 1);
    // Target-class KD: the binary split (target, all others).
    const Tensor tckd = binary_kl((p_t * gt).sum(1), (p_s * gt).sum(1));
    // Non-target-class KD: the distributions over the other classes only.
    const Tensor masked_s = (student / temperature_).masked_fill(gt, -1e9), masked_t = (teacher / temperature_).masked_fill(gt, -1e9);
    const Tensor log_q_s = torch::log_softmax(masked_s, 1), log_q_t = torch::log_softmax(masked_t, 1);
    const Tensor nckd = (log_q_t.exp() * (log_q_t - log_q_s)).masked_fill(gt, 0.0).sum(1);
    return (alpha_ * tckd + beta_ * nckd).mean() * temperature_ * temperature_;
  }

 private:
  double alpha_, beta_;
};

// Pearson correlation of rows of a and b.
Tensor row_correlation(const Tensor& a, const Tensor& b) {
  const Tensor ac = a - a.mean(1, true), bc = b - b.mean(1, true);
  return (ac * bc).sum(1) / (ac.norm(2, 1) * bc.norm(2, 1) + 1e-8);
}

class DistLoss : public DistillationLoss {
 public:
  DistLoss(const ssld::Options& options, const ssld::Context&)
      : DistillationLoss(options), beta_(options.get_float("beta")), gamma_(options.get_float("gamma")) {}

 protected:
  Tensor divergence(const Tensor& student, const Tensor& teacher, const ssld::LossInputs&) const override {
    const Tensor p_s = torch::softmax(student / temperature_, 1), p_t = torch::softmax(teacher / temperature_, 1);
    const Tensor inter = 1 - row_correlation(p_s, p_t).mean();
    const Tensor intra = 1 - row_correlation(p_s.t(), p_t.t()).mean();
    return (beta_ * inter + gamma_ * intra) * temperature_ * temperature_;
  }

 private:
  double beta_, gamma_;
};

}  // namespace

SSLD_PLUGIN("distillation_losses", "0.1.0", registry) {
  using ssld::Loss;
  ssld::add_component<Loss, SsldLoss>(
      registry, "ssld", "SSLD's label-free loss: 1/2 [KL(p_t||p_s) + KL(p_s||p_t)] (PaddleClas' SSLD).",
      temperature_schema(1.0, "softmax temperature T of both distributions (the paper uses 1; no T^2 factor)"));
  ssld::add_component<Loss, JsdLoss>(
      registry, "jsd", "Jensen-Shannon divergence 1/2 [KL(p_t||m) + KL(p_s||m)], m = (p_t + p_s) / 2.",
      temperature_schema(1.0, "softmax temperature T"));
  ssld::add_component<Loss, KlLoss>(registry, "kl", "Hinton et al.'s knowledge distillation: T^2 KL(p_t||p_s) at temperature T.",
                                    temperature_schema(4.0, "softmax temperature T"));
  ssld::add_component<Loss, DkdLoss>(
      registry, "dkd",
      "Decoupled KD (Zhao et al. 2022): alpha TCKD + beta NCKD; the teacher's argmax stands in for missing labels.",
      temperature_schema(4.0, "softmax temperature T")
          .add_float("alpha", 1.0, "weight of the target-class term")
          .add_float("beta", 8.0, "weight of the non-target-class term"));
  ssld::add_component<Loss, DistLoss>(
      registry, "dist", "DIST (Huang et al. 2022): 1 - Pearson correlation of predictions, between and within classes.",
      temperature_schema(1.0, "softmax temperature tau")
          .add_float("beta", 1.0, "weight of the inter-class (per-sample) relation")
          .add_float("gamma", 1.0, "weight of the intra-class (per-class) relation"));
}
