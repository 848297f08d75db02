// checkpoint: a teacher made of any student architecture (a nested [teacher.student] table)
// and a weights file ssld wrote. Frozen: eval mode, weights without gradients, in the
// teacher's precision; forward runs under no-grad.
#include <ssld/plugin.hpp>
#include <ssld/teacher_support.hpp>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace {

class CheckpointTeacher : public ssld::Teacher {
 public:
  CheckpointTeacher(const ssld::Options& options, const ssld::Context& context)
      : input_(options, context), weights_(options.get_string("weights")) {
    student_ = ssld::create<ssld::Student>(context, *options.get_table("student"));
    context.load_weights(*student_, weights_);
    student_->train(false);
    input_.freeze(student_->named_parameters(), student_->named_buffers());
    identity_ = "checkpoint:" + ssld::file_digest(weights_);
  }

  ssld::ModelOutput forward(const at::Tensor& images, const std::vector<std::string>& features) override {
    c10::NoGradGuard no_grad;
    ssld::ModelOutput output = student_->forward(input_.prepare(images), features);
    output.logits = output.logits.to(at::kFloat);
    return output;
  }
  void to(c10::Device device) override {
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
};

}  // namespace

SSLD_PLUGIN("checkpoint_teacher", "0.2.0", registry) {
  ssld::add_component<ssld::Teacher, CheckpointTeacher>(
      registry, "checkpoint",
      "A frozen teacher: any student architecture ([teacher.student]) with a weights file written by ssld.",
      ssld::TeacherInput::with_options(
          ssld::Schema()
              .require(ssld::OptionType::Table, "student", "the architecture: a student table with its `type` and options")
              .require(ssld::OptionType::Path, "weights", "safetensors weights written by ssld (a stage's best or last)")));
}
