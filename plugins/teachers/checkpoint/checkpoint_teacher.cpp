// checkpoint: a teacher made of any student architecture (a nested [teacher.student] table)
// and a weights file ssld wrote. Frozen: eval mode, weights without gradients, in the
// teacher's precision; forward runs under no-grad. On the CPU in fp32 its logits come from a
// frozen inference graph of the network (BatchNorm folded into the convolutions) where that
// is equal within 1e-4 (and, with optimize = "auto", faster) (ssld/inference_graph.hpp).
#include <ssld/inference_graph.hpp>
#include <ssld/plugin.hpp>
#include <ssld/teacher_support.hpp>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <map>
#include <optional>

namespace {

// The network's frozen inference graphs, one per batch shape (a trace fixes the shape it saw),
// made at the first batch of each shape and checked against the network on it. The first
// shape also decides, with `auto`, whether the graphs are faster here at all.
class InferenceGraphs {
 public:
  InferenceGraphs(ssld::InferenceOptimization mode, std::function<void(ssld::LogLevel, const std::string&)> log)
      : mode_(mode), log_(std::move(log)) {}

  // The graph for batches shaped like `batch`, or null to run the network as loaded.
  torch::jit::Module* find(const at::Tensor& batch, const ssld::LogitsFunction& network) {
    if (!enabled_ || !batch.device().is_cpu() || batch.scalar_type() != at::kFloat) return nullptr;
    const std::vector<int64_t> shape = batch.sizes().vec();
    if (auto found = graphs_.find(shape); found != graphs_.end()) return found->second ? &*found->second : nullptr;
    if (graphs_.size() >= kMaxShapes) return nullptr;  // e.g. many last-batch sizes: no more traces
    std::optional<torch::jit::Module>& graph = graphs_[shape];
    try {
      at::Tensor reference;
      torch::jit::Module traced = ssld::trace_for_inference(network, batch, reference);
      const bool first = graphs_.size() == 1;
      const ssld::InferenceChoice choice = ssld::choose_inference_graph(
          first ? mode_ : ssld::InferenceOptimization::On, network,
          [&traced](const at::Tensor& x) { return traced.forward({x}).toTensor(); }, batch, reference);
      if (first || !choice.use_optimized) log_(choice.level, choice.message);
      if (first && !choice.use_optimized) enabled_ = false;
      if (choice.use_optimized) graph = std::move(traced);
    } catch (const std::exception& error) {
      enabled_ = false;
      log_(ssld::LogLevel::Warning,
           std::string("the network could not be traced into an inference graph (") + error.what() +
               "); it runs as loaded");
    }
    return graph ? &*graph : nullptr;
  }
  // A graph's weights are constants of the device it was traced on.
  void clear() { graphs_.clear(); }

 private:
  static constexpr size_t kMaxShapes = 4;
  ssld::InferenceOptimization mode_;
  std::function<void(ssld::LogLevel, const std::string&)> log_;
  bool enabled_ = mode_ != ssld::InferenceOptimization::Off;
  std::map<std::vector<int64_t>, std::optional<torch::jit::Module>> graphs_;
};

class CheckpointTeacher : public ssld::Teacher {
 public:
  CheckpointTeacher(const ssld::Options& options, const ssld::Context& context)
      : input_(options, context),
        weights_(options.get_string("weights")),
        graphs_(ssld::inference_optimization(options), context.logger()) {
    student_ = ssld::create<ssld::Student>(context, *options.get_table("student"));
    context.load_weights(*student_, weights_);
    student_->train(false);
    input_.freeze(student_->named_parameters(), student_->named_buffers());
    identity_ = "checkpoint:" + ssld::file_digest(weights_);
  }

  ssld::ModelOutput forward(const at::Tensor& images, const std::vector<std::string>& features) override {
    c10::NoGradGuard no_grad;
    const at::Tensor batch = input_.prepare(images);
    if (features.empty()) {
      const ssld::LogitsFunction network = [this](const at::Tensor& x) { return student_->forward(x, {}).logits; };
      if (torch::jit::Module* graph = graphs_.find(batch, network))
        return ssld::ModelOutput{graph->forward({batch}).toTensor(), {}};
    }
    ssld::ModelOutput output = student_->forward(batch, features);
    output.logits = output.logits.to(at::kFloat);
    return output;
  }
  void to(c10::Device device) override {
    graphs_.clear();
    student_->to(device);
    student_->train(false);
  }
  int64_t num_classes() const override { return student_->num_classes(); }
  std::vector<std::string> feature_names() const override { return student_->feature_names(); }
  std::string identity() const override { return identity_; }
  ssld::NamedTensors named_state() const override {
    ssld::NamedTensors state = student_->named_parameters();
    for (auto& buffer : student_->named_buffers()) state.push_back(std::move(buffer));
    return state;
  }

 private:
  ssld::TeacherInput input_;
  std::unique_ptr<ssld::Student> student_;
  std::string weights_, identity_;
  InferenceGraphs graphs_;
};

}  // namespace

SSLD_PLUGIN("checkpoint_teacher", "0.2.0", registry) {
  ssld::add_component<ssld::Teacher, CheckpointTeacher>(
      registry, "checkpoint",
      "A frozen teacher: any student architecture ([teacher.student]) with a weights file written by ssld.",
      ssld::TeacherInput::with_options(ssld::with_inference_optimization(
          ssld::Schema()
              .require(ssld::OptionType::Table, "student", "the architecture: a student table with its `type` and options")
              .require(ssld::OptionType::Path, "weights", "safetensors weights written by ssld (a stage's best or last)"))));
}
