// ssld: PaddleClas' SSLD loss, the symmetric KL divergence between teacher and student
// predictions, L = 1/2 [KL(p_t || p_s) + KL(p_s || p_t)] with p = softmax(z / T), summed over
// classes and averaged over the batch. It never reads labels, which is what lets SSLD train
// on unlabeled images.
#include <ssld/plugin.hpp>

#include <torch/torch.h>

namespace {

class SsldLoss : public ssld::Loss {
 public:
  SsldLoss(const ssld::Options& options, const ssld::Context&) : temperature_(options.get_float("temperature")) {
    if (temperature_ <= 0.0) throw ssld::option_error(options, "temperature", "temperature must be positive");
  }

  ssld::LossOutput compute(const ssld::LossInputs& inputs) override {
    const torch::Tensor student = inputs.student.logits.to(torch::kFloat32) / temperature_;
    const torch::Tensor teacher = inputs.teacher->logits.detach().to(torch::kFloat32) / temperature_;
    const torch::Tensor log_p_student = torch::log_softmax(student, 1);
    const torch::Tensor log_p_teacher = torch::log_softmax(teacher, 1);
    // KL(t||s) + KL(s||t) = sum_c (p_t - p_s) (log p_t - log p_s)
    const torch::Tensor symmetric_kl =
        ((log_p_teacher.exp() - log_p_student.exp()) * (log_p_teacher - log_p_student)).sum(1);
    const torch::Tensor value = 0.5 * symmetric_kl.mean();
    const torch::Tensor agreement =
        (student.argmax(1) == teacher.argmax(1)).to(torch::kFloat32).mean().detach();
    return {value, {{"agreement", agreement}}};
  }
  bool needs_teacher() const override { return true; }
  bool uses_labels() const override { return false; }

 private:
  double temperature_;
};

}  // namespace

SSLD_PLUGIN("ssld_loss", "0.1.0", registry) {
  ssld::add_component<ssld::Loss, SsldLoss>(
      registry, "ssld",
      "SSLD's label-free loss: 1/2 [KL(p_t||p_s) + KL(p_s||p_t)] on softmax outputs (PaddleClas' SSLD).",
      ssld::Schema().add_float("temperature", 1.0, "softmax temperature T of both distributions (the paper uses 1)"));
}
