// What every feature distillation loss of this plugin shares: the feature pairs (`student[i]`
// with `teacher[i]`), the `factor`, the owned modules (connectors, embeddings, memories) and
// the plumbing the host calls (prepare, parameters, buffers, device, mode). A loss overrides
// `build` (make its trainable parts from the probed shapes, refuse what it cannot compare) and
// `term` (the unscaled loss of all pairs; by default the sum of `pair_loss`).
#pragma once

#include <ssld/connector.hpp>
#include <ssld/plugin.hpp>

#include <torch/torch.h>

#include <string>
#include <vector>

namespace ssld::feature {

using Shape = std::vector<int64_t>;

// Whether the student's features pass through the automatic connector (ssld/connector.hpp).
enum class Connector {
  Never,     // the loss brings its own parts (VID, CRD, ReviewKD)
  Optional,  // the `connector` option says (the parameter-free losses)
  Always,    // the method's own connector (FitNet, OFD)
};

class FeatureLoss : public ssld::Loss {
 public:
  FeatureLoss(const ssld::Options& options, Connector connector);

  ssld::LossOutput compute(const ssld::LossInputs& inputs) override;
  bool needs_teacher() const override { return true; }
  bool uses_labels() const override { return false; }
  std::vector<std::string> student_features() const override { return student_; }
  std::vector<std::string> teacher_features() const override { return teacher_; }

  void prepare(const ssld::FeatureShapes& student, const ssld::FeatureShapes& teacher, int64_t dataset_size) override;
  ssld::NamedTensors named_parameters() override;
  ssld::NamedTensors named_buffers() override;
  void train(bool on) override { modules_.train(on); }
  void to(c10::Device device) override { modules_.to(device); }

 protected:
  // Makes the loss's trainable parts; throws (refuse) for shapes it cannot compare. The shapes
  // are the connected student's when the loss connects. Default: check_pair on each pair.
  virtual void build(const std::vector<Shape>& student, const std::vector<Shape>& teacher);
  virtual void check_pair(size_t i, const Shape& s, const Shape& t) { (void)i, (void)s, (void)t; }
  // The loss of all pairs before `factor`; `s` connected when the loss connects, `t` detached,
  // both float32. Default: the sum of pair_loss.
  virtual at::Tensor term(const std::vector<at::Tensor>& s, const std::vector<at::Tensor>& t,
                          const ssld::LossInputs& inputs);
  virtual at::Tensor pair_loss(size_t i, const at::Tensor& s, const at::Tensor& t) {
    (void)i, (void)s, (void)t;
    throw ssld::Error("this feature loss defines neither term nor pair_loss (a plugin bug)");
  }

  [[noreturn]] void refuse(size_t i, const Shape& s, const Shape& t, const std::string& why) const;
  // State that stays on the CPU whatever the device (counters, an id map), so the host reads it
  // every step without waiting on the device; saved and restored with the module's buffers.
  at::Tensor host_buffer(const std::string& name, at::Tensor value);

  std::vector<std::string> student_, teacher_;
  double factor_;
  int64_t dataset_size_ = 0;
  torch::nn::Module modules_;  // every owned module, parameter and buffer is registered here

 private:
  bool connect_;
  bool prepared_ = false;
  ssld::NamedTensors host_buffers_;
  std::vector<torch::nn::Sequential> connectors_;  // one per pair when connect_
};

// The options every feature loss has; `connector_option` adds the `connector` switch (losses
// that compare shape-independent statistics can still ask for it).
ssld::Schema feature_schema(double factor, const char* factor_doc, bool connector_option = true);

// Registration of the losses defined in the other files of this plugin.
void add_ofd(ssld::Registry& registry);
void add_crd(ssld::Registry& registry);
void add_reviewkd(ssld::Registry& registry);

}  // namespace ssld::feature
