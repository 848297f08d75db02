// torchscript: models saved in Python with torch.jit.save (torchvision, timm, a user's own
// network), as a frozen teacher or as a trainable student. forward(x) may return the logits, a
// tuple or list whose first element is the logits, or a dict with a "logits" entry (its other
// tensor entries are then available as named features). A trained student goes back to Python
// as TorchScript with `ssld export --torchscript <the same file>`.
#include <ssld/inference_graph.hpp>
#include <ssld/plugin.hpp>
#include <ssld/teacher_support.hpp>

#include <c10/core/GradMode.h>
#include <c10/util/accumulate.h>
#include <torch/script.h>

#include <optional>

namespace {

// What both components share: the loaded module, the interpretation of its output, and the
// class count found by a forward of a zero batch.
class ScriptedModel {
 public:
  explicit ScriptedModel(const ssld::Options& options) : path_(options.get_string("path")) {
    try {
      module_ = torch::jit::load(path_, c10::Device(c10::kCPU));
    } catch (const c10::Error& error) {
      throw ssld::option_error(options, "path", "cannot load TorchScript model '" + path_ + "': " +
                                                    error.what_without_backtrace());
    }
    num_classes_ = options.get_int("num_classes");
    if (num_classes_ > 0 && !options.get_bool("verify_num_classes")) return;
    const std::vector<int64_t> probe = options.get_int_list("probe_shape");
    if (probe.size() != 3) throw ssld::option_error(options, "probe_shape", "probe_shape is [channels, height, width]");
    // A one-image forward tells the class count and shows now, not mid-run, that the model runs.
    std::vector<int64_t> shape = {1};
    shape.insert(shape.end(), probe.begin(), probe.end());
    const bool training = module_.is_training();
    module_.eval();
    int64_t found = 0;
    try {
      c10::NoGradGuard no_grad;
      found = run(at::zeros(shape), {}).logits.size(-1);  // before any precision change: fp32
    } catch (const std::exception& error) {
      throw ssld::option_error(options, "probe_shape", "the model failed on a zero batch of shape [1, " +
                                                           std::to_string(probe[0]) + ", " + std::to_string(probe[1]) +
                                                           ", " + std::to_string(probe[2]) + "]: " + error.what());
    }
    module_.train(training);
    if (num_classes_ > 0 && found != num_classes_)
      throw ssld::option_error(options, "num_classes", "the model predicts " + std::to_string(found) +
                                                          " classes, the config says " + std::to_string(num_classes_));
    num_classes_ = found;
  }

  static ssld::Schema options(ssld::Schema schema) {
    return schema.require(ssld::OptionType::Path, "path", "the .pt file torch.jit.save wrote")
        .add_int("num_classes", 0, "classes the model predicts (0: found by a forward of a zero batch)")
        .add_int_list("probe_shape", {3, 224, 224}, "[channels, height, width] of the zero batch that checks the model")
        .add_bool("verify_num_classes", true, "run the zero batch even when num_classes is given");
  }

  ssld::ModelOutput run(const at::Tensor& images, const std::vector<std::string>& features) {
    const c10::IValue result = (optimized_ ? *optimized_ : module_).forward({images});
    ssld::ModelOutput output;
    if (result.isTensor()) {
      output.logits = result.toTensor();
    } else if (result.isTuple() && !result.toTupleRef().elements().empty() &&
               result.toTupleRef().elements()[0].isTensor()) {
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
      throw ssld::Error("the TorchScript model '" + path_ + "' returned " + std::string(result.tagKind()) +
                        "; expected logits [N, classes], a tuple starting with them, or a dict with \"logits\"");
    for (const auto& name : features)
      if (!output.features.count(name))
        throw ssld::Error("the TorchScript model '" + path_ + "' has no output '" + name + "' (return a dict holding it)");
    return output;
  }

  ssld::NamedTensors parameters() const {
    ssld::NamedTensors out;
    for (const auto& item : module_.named_parameters(/*recurse=*/true)) out.emplace_back(item.name, item.value);
    return out;
  }
  ssld::NamedTensors buffers() const {
    ssld::NamedTensors out;
    for (const auto& item : module_.named_buffers(/*recurse=*/true)) out.emplace_back(item.name, item.value);
    return out;
  }

  torch::jit::Module& module() { return module_; }
  // From now on `run` uses this module (a frozen, optimized copy); parameters() and buffers()
  // stay the loaded module's. nullopt: back to the loaded module.
  void run_with(std::optional<torch::jit::Module> module) { optimized_ = std::move(module); }
  bool optimized() const { return optimized_.has_value(); }
  const std::string& path() const { return path_; }
  int64_t num_classes() const { return num_classes_; }

 private:
  std::string path_;
  mutable torch::jit::Module module_;
  std::optional<torch::jit::Module> optimized_;
  int64_t num_classes_ = 0;
};

class TorchScriptTeacher : public ssld::Teacher {
 public:
  TorchScriptTeacher(const ssld::Options& options, const ssld::Context& context)
      : input_(options, context), model_(options) {
    model_.module().eval();
    input_.freeze(model_.parameters(), model_.buffers());
    identity_ = "torchscript:" + ssld::file_digest(model_.path());
    const ssld::InferenceOptimization mode = ssld::inference_optimization(options);
    if (mode != ssld::InferenceOptimization::Off) optimize_for_inference(options, context, mode);
  }

  ssld::ModelOutput forward(const at::Tensor& images, const std::vector<std::string>& features) override {
    c10::NoGradGuard no_grad;
    ssld::ModelOutput output = model_.run(input_.prepare(images), features);
    output.logits = output.logits.to(at::kFloat);
    return output;
  }
  void to(c10::Device device) override {
    // A frozen module's weights are constants of its graph, which Module::to does not move.
    if (!device.is_cpu()) model_.run_with(std::nullopt);
    model_.module().to(device);
    model_.module().eval();
  }
  int64_t num_classes() const override { return model_.num_classes(); }
  std::string identity() const override { return identity_; }
  ssld::NamedTensors named_state() const override {
    ssld::NamedTensors state = model_.parameters();
    for (auto& buffer : model_.buffers()) state.push_back(std::move(buffer));
    return state;
  }

 private:
  // torch::jit::freeze + optimize_for_inference (Python's torch.jit.freeze and
  // torch.jit.optimize_for_inference) of the loaded module, decided on a probe batch of
  // `probe_shape` by the rule every teacher shares (ssld/inference_graph.hpp); CPU and fp32
  // only. Only `forward` survives freezing.
  void optimize_for_inference(const ssld::Options& options, const ssld::Context& context,
                              ssld::InferenceOptimization mode) {
    if (!context.device().is_cpu() || input_.dtype() != at::kFloat) {
      if (mode == ssld::InferenceOptimization::On)
        context.log(ssld::LogLevel::Warning, "optimize = \"on\" applies to fp32 teachers on the CPU; not applied");
      return;
    }
    std::vector<int64_t> shape = {8};
    for (int64_t size : options.get_int_list("probe_shape")) shape.push_back(size);
    c10::NoGradGuard no_grad;
    try {
      const at::Tensor probe =
          at::sin(0.37 * at::arange(c10::multiply_integers(shape), at::kDouble)).to(at::kFloat).view(shape);
      torch::jit::Module frozen = torch::jit::freeze(model_.module());
      frozen = torch::jit::optimize_for_inference(frozen);
      auto run_with = [this](std::optional<torch::jit::Module> module) {
        return [this, module](const at::Tensor& x) {
          model_.run_with(module);
          return model_.run(x, {}).logits;
        };
      };
      const ssld::LogitsFunction loaded = run_with(std::nullopt), optimized = run_with(frozen);
      const ssld::InferenceChoice choice = ssld::choose_inference_graph(mode, loaded, optimized, probe, loaded(probe));
      model_.run_with(choice.use_optimized ? std::optional<torch::jit::Module>(frozen) : std::nullopt);
      context.log(choice.level, choice.message);
    } catch (const std::exception& error) {
      model_.run_with(std::nullopt);
      context.log(ssld::LogLevel::Warning, std::string("the teacher could not be frozen and optimized (") +
                                               error.what() + "); it runs as loaded");
    }
  }

  ssld::TeacherInput input_;
  ScriptedModel model_;
  std::string identity_;
};

class TorchScriptStudent : public ssld::Student {
 public:
  TorchScriptStudent(const ssld::Options& options, const ssld::Context&) : model_(options) {
    for (auto& [name, parameter] : model_.parameters()) parameter.set_requires_grad(true);
    model_.module().train(true);
  }

  ssld::ModelOutput forward(const at::Tensor& images, const std::vector<std::string>& features) override {
    return model_.run(images, features);
  }
  ssld::NamedTensors named_parameters() override { return model_.parameters(); }
  ssld::NamedTensors named_buffers() override { return model_.buffers(); }
  void train(bool on) override { model_.module().train(on); }
  void to(c10::Device device) override { model_.module().to(device); }
  int64_t num_classes() const override { return model_.num_classes(); }

 private:
  ScriptedModel model_;
};

}  // namespace

SSLD_PLUGIN("torchscript_models", "0.2.0", registry) {
  ssld::add_component<ssld::Teacher, TorchScriptTeacher>(
      registry, "torchscript",
      "A frozen teacher from a model saved with torch.jit.save in Python (torchvision, timm, your own).",
      ssld::TeacherInput::with_options(ssld::with_inference_optimization(ScriptedModel::options(ssld::Schema()))));
  ssld::add_component<ssld::Student, TorchScriptStudent>(
      registry, "torchscript",
      "A student scripted in Python (torch.jit.script + save), trained as it is; `ssld export --torchscript` "
      "writes it back.",
      ScriptedModel::options(ssld::Schema()));
}
