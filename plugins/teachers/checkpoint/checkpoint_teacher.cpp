// checkpoint: a teacher made of any student architecture (a nested [teacher.student] table)
// and a weights file ssld wrote. Frozen: eval mode, parameters without gradients, forward
// under no-grad. An input adapter resizes and re-normalizes the batch for teachers trained
// with other preprocessing.
#include <ssld/plugin.hpp>

#include <torch/torch.h>

#include <fstream>

namespace {

class CheckpointTeacher : public ssld::Teacher {
 public:
  CheckpointTeacher(const ssld::Options& options, const ssld::Context& context)
      : weights_(options.get_string("weights")), precision_(options.get_string("precision")) {
    student_ = ssld::create<ssld::Student>(context, *options.get_table("student"));
    context.load_weights(*student_, weights_);
    student_->train(false);
    for (auto& [name, parameter] : student_->named_parameters()) parameter.set_requires_grad(false);
    if (precision_ != "fp32" && !context.device().is_cuda())
      throw ssld::option_error(options, "precision", precision_ + " teachers run on CUDA only; use fp32 on the CPU");
    const auto adapter = options.get_table("adapter");
    adapter_size_ = adapter->get_int("size");
    adapter_mean_ = adapter->get_float_list("mean");
    adapter_std_ = adapter->get_float_list("std");
    if (adapter_mean_.size() != adapter_std_.size())
      throw ssld::option_error(options, "adapter", "adapter mean and std need the same number of channels");
    identity_ = "checkpoint:" + content_hash(weights_);
  }

  ssld::ModelOutput forward(const at::Tensor& images, const std::vector<std::string>& features) override {
    torch::NoGradGuard no_grad;
    torch::Tensor input = adapt(images);
    if (precision_ == "bf16") input = input.to(torch::kBFloat16);
    if (precision_ == "fp16") input = input.to(torch::kHalf);
    ssld::ModelOutput output = student_->forward(input, features);
    output.logits = output.logits.to(torch::kFloat32);
    return output;
  }
  void to(c10::Device device) override {
    student_->to(device);
    if (precision_ == "bf16" || precision_ == "fp16") {
      const auto type = precision_ == "bf16" ? torch::kBFloat16 : torch::kHalf;
      for (auto& [name, parameter] : student_->named_parameters()) parameter.set_data(parameter.to(type));
    }
  }
  int64_t num_classes() const override { return student_->num_classes(); }
  std::vector<std::string> feature_names() const override { return student_->feature_names(); }
  std::string identity() const override { return identity_; }

 private:
  // The batch arrives normalized for the student; a teacher trained with other preprocessing
  // gets its own size and mean/std (the adapter), applied to the same augmented image.
  torch::Tensor adapt(const torch::Tensor& images) const {
    torch::Tensor x = images;
    if (adapter_size_ > 0 && (x.size(2) != adapter_size_ || x.size(3) != adapter_size_))
      x = torch::nn::functional::interpolate(
          x, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{adapter_size_, adapter_size_})
                 .mode(torch::kBilinear).align_corners(false));
    if (!adapter_mean_.empty()) {
      const auto options = x.options();
      x = (x - torch::tensor(adapter_mean_, options).view({1, -1, 1, 1})) /
          torch::tensor(adapter_std_, options).view({1, -1, 1, 1});
    }
    return x;
  }

  // FNV-1a over the file: the teacher's identity changes whenever its weights do.
  static std::string content_hash(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    uint64_t hash = 14695981039346656037ull;
    char buffer[1 << 16];
    while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
      for (std::streamsize i = 0; i < in.gcount(); ++i) hash = (hash ^ static_cast<unsigned char>(buffer[i])) * 1099511628211ull;
    }
    char text[17];
    std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(hash));
    return text;
  }

  std::unique_ptr<ssld::Student> student_;
  std::string weights_, precision_, identity_;
  int64_t adapter_size_ = 0;
  std::vector<double> adapter_mean_, adapter_std_;
};

}  // namespace

SSLD_PLUGIN("checkpoint_teacher", "0.1.0", registry) {
  ssld::add_component<ssld::Teacher, CheckpointTeacher>(
      registry, "checkpoint",
      "A frozen teacher: any student architecture ([teacher.student]) with a weights file written by ssld.",
      ssld::Schema()
          .require(ssld::OptionType::Table, "student", "the architecture: a student table with its `type` and options")
          .require(ssld::OptionType::Path, "weights", "safetensors weights written by ssld (a stage's best or last)")
          .add_string("precision", "fp32", "teacher arithmetic (bf16 and fp16 on CUDA only)", {"fp32", "bf16", "fp16"})
          .add_table("adapter",
                     ssld::Schema()
                         .add_int("size", 0, "resize the batch to size x size for the teacher (0: as is)")
                         .add_float_list("mean", {}, "then subtract this per-channel mean (in the batch's units)")
                         .add_float_list("std", {}, "and divide by this per-channel std"),
                     "input adapter for a teacher trained with other preprocessing"));
}
