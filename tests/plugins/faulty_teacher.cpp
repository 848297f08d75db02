// A teacher that breaks the frozen-teacher contract on purpose, for the trainer's guard:
// fault = "drift" changes a weight at every forward (like BatchNorm left in training mode),
// "grad" leaves its weight taking gradients, "none" behaves; `nan_calls` lists forward calls
// (0-based) whose logits are NaN, a non-finite loss that leaves the student's forward alone.
#include <ssld/plugin.hpp>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>

namespace {

class FaultyTeacher : public ssld::Teacher {
 public:
  FaultyTeacher(const ssld::Options& options, const ssld::Context&)
      : fault_(options.get_string("fault")),
        weight_(at::full({10, options.get_int("inputs")}, 0.01)),
        bias_(at::zeros({10})),
        nan_calls_(options.get_int_list("nan_calls")) {
    if (fault_ == "grad") weight_.set_requires_grad(true);
  }
  ssld::ModelOutput forward(const at::Tensor& images, const std::vector<std::string>&) override {
    c10::NoGradGuard no_grad;
    if (fault_ == "drift") weight_.add_(1e-3);
    at::Tensor logits = at::addmm(bias_, images.flatten(1), weight_.t());
    if (std::find(nan_calls_.begin(), nan_calls_.end(), calls_++) != nan_calls_.end()) logits.fill_(NAN);
    return {logits, {}};
  }
  void to(c10::Device device) override {
    weight_.set_data(weight_.to(device));
    bias_.set_data(bias_.to(device));
  }
  int64_t num_classes() const override { return 10; }
  std::string identity() const override { return "faulty:" + fault_; }
  ssld::NamedTensors named_state() const override { return {{"weight", weight_}, {"bias", bias_}}; }

 private:
  std::string fault_;
  at::Tensor weight_, bias_;
  std::vector<int64_t> nan_calls_;
  int64_t calls_ = 0;
};

}  // namespace

SSLD_PLUGIN(SSLD_TEST_PLUGIN_NAME, "0.0.1", registry) {
  ssld::add_component<ssld::Teacher, FaultyTeacher>(
      registry, "faulty", "Test teacher that changes its weights or keeps gradients.",
      ssld::Schema()
          .add_string("fault", "none", "how to misbehave", {"none", "drift", "grad"})
          .add_int("inputs", 784, "flattened input size")
          .add_int_list("nan_calls", {}, "forward calls (0-based) that return NaN logits"));
}
