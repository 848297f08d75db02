// ensemble: a teacher made of other teachers ([[teacher.members]], any teacher type, each with
// its own precision and adapter), combined as the weighted average of their probabilities
// (returned as log-probabilities, so softmax gives the average back) or of their logits.
#include <ssld/plugin.hpp>
#include <ssld/teacher_support.hpp>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <numeric>

namespace {

class EnsembleTeacher : public ssld::Teacher {
 public:
  EnsembleTeacher(const ssld::Options& options, const ssld::Context& context)
      : average_probabilities_(options.get_string("combine") == "probabilities") {
    const auto tables = options.get_table_list("members");
    if (tables.empty()) throw ssld::option_error(options, "members", "an ensemble needs at least one member");
    for (const auto& table : tables) members_.push_back(ssld::create<ssld::Teacher>(context, *table));
    weights_ = options.get_float_list("weights");
    if (weights_.empty()) weights_.assign(members_.size(), 1.0);
    if (weights_.size() != members_.size())
      throw ssld::option_error(options, "weights", std::to_string(weights_.size()) + " weights for " +
                                                       std::to_string(members_.size()) + " members");
    const double total = std::accumulate(weights_.begin(), weights_.end(), 0.0);
    for (double weight : weights_)
      if (weight < 0 || total <= 0) throw ssld::option_error(options, "weights", "weights must be >= 0 with a positive sum");
    for (double& weight : weights_) weight /= total;

    identity_ = std::string("ensemble:") + (average_probabilities_ ? "probabilities" : "logits");
    for (size_t i = 0; i < members_.size(); ++i) {
      if (members_[i]->num_classes() != members_[0]->num_classes())
        throw ssld::option_error(options, "members", "member " + std::to_string(i) + " predicts " +
                                                         std::to_string(members_[i]->num_classes()) + " classes, member 0 " +
                                                         std::to_string(members_[0]->num_classes()));
      identity_ += "|" + std::to_string(weights_[i]) + "*" + members_[i]->identity();
    }
  }

  ssld::ModelOutput forward(const at::Tensor& images, const std::vector<std::string>& features) override {
    if (!features.empty()) throw ssld::Error("an ensemble teacher provides no intermediate features");
    c10::NoGradGuard no_grad;
    at::Tensor combined;
    for (size_t i = 0; i < members_.size(); ++i) {
      const at::Tensor logits = members_[i]->forward(images, {}).logits;
      const at::Tensor term = (average_probabilities_ ? logits.softmax(1) : logits) * weights_[i];
      combined = combined.defined() ? combined + term : term;
    }
    // The smallest normal float keeps log() finite where every member gives a class zero probability.
    if (average_probabilities_) combined = combined.clamp_min(std::numeric_limits<float>::min()).log();
    return ssld::ModelOutput{combined, {}};
  }
  void to(c10::Device device) override {
    for (auto& member : members_) member->to(device);
  }
  int64_t num_classes() const override { return members_[0]->num_classes(); }
  std::string identity() const override { return identity_; }
  ssld::NamedTensors named_state() const override {
    ssld::NamedTensors state;
    for (size_t i = 0; i < members_.size(); ++i)
      for (auto& [name, tensor] : members_[i]->named_state())
        state.emplace_back("members." + std::to_string(i) + "." + name, tensor);
    return state;
  }

 private:
  bool average_probabilities_;
  std::vector<std::unique_ptr<ssld::Teacher>> members_;
  std::vector<double> weights_;
  std::string identity_;
};

}  // namespace

SSLD_PLUGIN("ensemble_teacher", "0.1.0", registry) {
  ssld::add_component<ssld::Teacher, EnsembleTeacher>(
      registry, "ensemble", "A weighted average of several teachers' predictions.",
      ssld::Schema()
          .require(ssld::OptionType::TableList, "members", "the teachers: tables with their own `type` and options")
          .add_float_list("weights", {}, "one weight per member (normalized to sum 1); empty: equal")
          .add_string("combine", "probabilities", "average the members' probabilities or their raw logits",
                      {"probabilities", "logits"}));
}
