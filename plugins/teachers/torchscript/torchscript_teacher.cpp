// torchscript: a teacher from any model saved in Python with torch.jit.save (torchvision,
// timm, a user's own network). Its forward(x) may return the logits, a tuple or list whose
// first element is the logits, or a dict with a "logits" entry (the other tensor entries are
// then available as named features).
#include <ssld/plugin.hpp>
#include <ssld/teacher_support.hpp>

#include <c10/core/GradMode.h>
#include <torch/script.h>

namespace {

class TorchScriptTeacher : public ssld::Teacher {
 public:
  TorchScriptTeacher(const ssld::Options& options, const ssld::Context& context) : input_(options, context) {
    const std::string path = options.get_string("path");
    try {
      module_ = torch::jit::load(path, c10::Device(c10::kCPU));
    } catch (const c10::Error& error) {
      throw ssld::option_error(options, "path", "cannot load TorchScript model '" + path + "': " +
                                                    error.what_without_backtrace());
    }
    module_.eval();
    input_.freeze(named_state(), {});
    identity_ = "torchscript:" + ssld::file_digest(path);
    num_classes_ = options.get_int("num_classes");
    const std::vector<int64_t> probe = options.get_int_list("probe_shape");
    if (num_classes_ <= 0 || options.get_bool("verify_num_classes")) {
      if (probe.size() != 3) throw ssld::option_error(options, "probe_shape", "probe_shape is [channels, height, width]");
      // A one-image forward tells the class count and shows now, not mid-run, that the model runs.
      std::vector<int64_t> shape = {1};
      shape.insert(shape.end(), probe.begin(), probe.end());
      int64_t found = 0;
      try {
        found = run(at::zeros(shape).to(input_.dtype()), {}).logits.size(-1);
      } catch (const std::exception& error) {
        throw ssld::option_error(options, "probe_shape", "the model failed on a zero batch of shape [1, " +
                                 std::to_string(probe[0]) + ", " + std::to_string(probe[1]) + ", " +
                                 std::to_string(probe[2]) + "]: " + error.what());
      }
      if (num_classes_ > 0 && found != num_classes_)
        throw ssld::option_error(options, "num_classes", "the model predicts " + std::to_string(found) +
                                                            " classes, the config says " + std::to_string(num_classes_));
      num_classes_ = found;
    }
  }

  ssld::ModelOutput forward(const at::Tensor& images, const std::vector<std::string>& features) override {
    c10::NoGradGuard no_grad;
    return run(input_.prepare(images), features);
  }
  void to(c10::Device device) override {
    module_.to(device);
    module_.eval();
  }
  int64_t num_classes() const override { return num_classes_; }
  std::string identity() const override { return identity_; }
  ssld::NamedTensors named_state() const override {
    ssld::NamedTensors state;
    for (const auto& item : module_.named_parameters(/*recurse=*/true)) state.emplace_back(item.name, item.value);
    for (const auto& item : module_.named_buffers(/*recurse=*/true)) state.emplace_back(item.name, item.value);
    return state;
  }

 private:
  ssld::ModelOutput run(const at::Tensor& images, const std::vector<std::string>& features) {
    c10::NoGradGuard no_grad;
    const c10::IValue result = module_.forward({images});
    ssld::ModelOutput output;
    if (result.isTensor()) {
      output.logits = result.toTensor();
    } else if (result.isTuple() && !result.toTupleRef().elements().empty() && result.toTupleRef().elements()[0].isTensor()) {
      output.logits = result.toTupleRef().elements()[0].toTensor();
    } else if (result.isList() && result.toListRef().size() > 0 && result.toListRef()[0].isTensor()) {
      output.logits = result.toListRef()[0].toTensor();
    } else if (result.isGenericDict()) {
      for (const auto& entry : result.toGenericDict()) {
        if (!entry.key().isString() || !entry.value().isTensor()) continue;
        const std::string key = entry.key().toStringRef();
        if (key == "logits") output.logits = entry.value().toTensor();
        else if (std::find(features.begin(), features.end(), key) != features.end())
          output.features[key] = entry.value().toTensor();
      }
    }
    if (!output.logits.defined() || output.logits.dim() != 2)
      throw ssld::Error("the TorchScript teacher's forward returned " + std::string(result.tagKind()) +
                        "; expected logits [N, classes], a tuple starting with them, or a dict with \"logits\"");
    for (const auto& name : features)
      if (!output.features.count(name))
        throw ssld::Error("the TorchScript teacher's output has no feature '" + name + "' (return a dict holding it)");
    output.logits = output.logits.to(at::kFloat);
    return output;
  }

  ssld::TeacherInput input_;
  mutable torch::jit::Module module_;
  std::string identity_;
  int64_t num_classes_ = 0;
};

}  // namespace

SSLD_PLUGIN("torchscript_teacher", "0.1.0", registry) {
  ssld::add_component<ssld::Teacher, TorchScriptTeacher>(
      registry, "torchscript",
      "A frozen teacher from a model saved with torch.jit.save in Python (torchvision, timm, your own).",
      ssld::TeacherInput::with_options(
          ssld::Schema()
              .require(ssld::OptionType::Path, "path", "the .pt file torch.jit.save wrote")
              .add_int("num_classes", 0, "classes the model predicts (0: found by a forward of a zero batch)")
              .add_int_list("probe_shape", {3, 224, 224}, "[channels, height, width] of the zero batch that checks the model")
              .add_bool("verify_num_classes", true, "run the zero batch even when num_classes is given")));
}
