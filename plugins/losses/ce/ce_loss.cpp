// ce: cross-entropy on hard labels, with label smoothing. Unlabeled samples (label_mask false)
// take no part; a batch without labels contributes 0. With mixup/cutmix the target is the
// same mix of the two samples' labels (both must be labeled for a mixed sample to count).
#include <ssld/plugin.hpp>

#include <torch/torch.h>

namespace {

class CrossEntropyLoss : public ssld::Loss {
 public:
  CrossEntropyLoss(const ssld::Options& options, const ssld::Context&) : smoothing_(options.get_float("label_smoothing")) {
    if (smoothing_ < 0 || smoothing_ >= 1) throw ssld::option_error(options, "label_smoothing", "must lie in [0, 1)");
  }

  ssld::LossOutput compute(const ssld::LossInputs& inputs) override {
    const torch::Tensor logits = inputs.student.logits.to(torch::kFloat32);
    const int64_t classes = logits.size(1);
    const torch::Tensor log_p = torch::log_softmax(logits, 1);
    const torch::Tensor safe_labels = inputs.labels.clamp_min(0);
    auto per_sample = [&](const torch::Tensor& labels) {  // smoothed CE against `labels`
      const torch::Tensor nll = -log_p.gather(1, labels.unsqueeze(1)).squeeze(1);
      return (1 - smoothing_) * nll - smoothing_ / static_cast<double>(classes) * log_p.sum(1);
    };
    torch::Tensor loss = per_sample(safe_labels);
    torch::Tensor mask = inputs.label_mask;
    if (inputs.mix_index.defined()) {
      loss = inputs.mix_lambda * loss + (1 - inputs.mix_lambda) * per_sample(safe_labels.index_select(0, inputs.mix_index));
      mask = mask & inputs.label_mask.index_select(0, inputs.mix_index);
    }
    const torch::Tensor weights = mask.to(torch::kFloat32);
    const torch::Tensor value = (loss * weights).sum() / weights.sum().clamp_min(1.0);
    const torch::Tensor correct = (logits.argmax(1) == inputs.labels).to(torch::kFloat32) * weights;
    return {value, {{"top1", (correct.sum() / weights.sum().clamp_min(1.0)).detach()}}};
  }
  bool needs_teacher() const override { return false; }
  bool uses_labels() const override { return true; }

 private:
  double smoothing_;
};

}  // namespace

SSLD_PLUGIN("ce_loss", "0.1.0", registry) {
  ssld::add_component<ssld::Loss, CrossEntropyLoss>(
      registry, "ce", "Cross-entropy on hard labels (label smoothing option); unlabeled samples are ignored.",
      ssld::Schema().add_float("label_smoothing", 0.0, "epsilon of label smoothing (SSLD recommends none)"));
}
