// tiny_mlp: the smallest useful student, as a complete out-of-tree plugin. A network
// (a torch::nn module), a Student around it, and the registration entry point.
#include <ssld/module_student.hpp>
#include <ssld/plugin.hpp>

#include <torch/nn/modules/linear.h>
#include <torch/nn/functional/activation.h>

namespace {

struct TinyMlpImpl : torch::nn::Module {
  TinyMlpImpl(int64_t inputs, int64_t hidden, int64_t classes)
      : fc1(register_module("fc1", torch::nn::Linear(inputs, hidden))),
        fc2(register_module("fc2", torch::nn::Linear(hidden, classes))) {}

  torch::Tensor forward(const torch::Tensor& images) {
    return fc2->forward(torch::relu(fc1->forward(images.flatten(1))));
  }

  torch::nn::Linear fc1, fc2;
};
TORCH_MODULE(TinyMlp);

class TinyMlpStudent : public ssld::ModuleStudent<TinyMlp> {
 public:
  // The host has validated `options` against the schema below: every key exists, typed.
  TinyMlpStudent(const ssld::Options& options, const ssld::Context&)
      : ModuleStudent(make(options), options.get_int("num_classes")) {}

 private:
  static TinyMlp make(const ssld::Options& options) {
    if (options.get_int("hidden") <= 0) throw ssld::option_error(options, "hidden", "hidden must be positive");
    const int64_t pixels = options.get_int("image_size") * options.get_int("image_size") * options.get_int("in_channels");
    return TinyMlp(pixels, options.get_int("hidden"), options.get_int("num_classes"));
  }
};

}  // namespace

SSLD_PLUGIN("tiny_mlp", "1.0.0", registry) {
  ssld::add_component<ssld::Student, TinyMlpStudent>(
      registry, "tiny_mlp", "A two-layer MLP on flattened pixels (the SDK's example plugin).",
      ssld::Schema()
          .add_int("hidden", 128, "width of the hidden layer")
          .add_int("image_size", 28, "input height and width")
          .add_int("in_channels", 1, "input channels")
          .add_int("num_classes", 10, "number of output classes"));
}
