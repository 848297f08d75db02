#include "feature_loss.hpp"

namespace ssld::feature {

namespace {

const at::Tensor& feature(const ssld::ModelOutput& output, const std::string& name, const char* side) {
  auto found = output.features.find(name);
  if (found == output.features.end()) throw ssld::Error(std::string("the ") + side + " did not give feature '" + name + "'");
  return found->second;
}

template <class Dict>
ssld::NamedTensors pairs_of(const Dict& dict) {
  ssld::NamedTensors out;
  for (const auto& item : dict) out.emplace_back(item.key(), item.value());
  return out;
}

}  // namespace

FeatureLoss::FeatureLoss(const ssld::Options& options, Connector connector)
    : student_(options.get_string_list("student")), teacher_(options.get_string_list("teacher")),
      factor_(options.get_float("factor")), connect_(connector == Connector::Always || (connector == Connector::Optional && options.get_bool("connector"))) {
  if (student_.empty() || student_.size() != teacher_.size())
    throw ssld::option_error(options, "student", "give one teacher feature per student feature (" +
                                                     std::to_string(student_.size()) + " student, " +
                                                     std::to_string(teacher_.size()) + " teacher)");
}

ssld::LossOutput FeatureLoss::compute(const ssld::LossInputs& inputs) {
  if (inputs.teacher == nullptr) throw ssld::Error("this loss needs a teacher's features");
  if (!prepared_) throw ssld::Error("the feature loss was not prepared with its features' shapes (a host bug)");
  std::vector<at::Tensor> s, t;
  for (size_t i = 0; i < student_.size(); ++i) {
    t.push_back(feature(*inputs.teacher, teacher_[i], "teacher").detach().to(torch::kFloat32));
    const at::Tensor raw = feature(inputs.student, student_[i], "student").to(torch::kFloat32);
    s.push_back(connect_ ? ssld::connect(connectors_[i], raw, t.back()) : raw);
  }
  return {term(s, t, inputs) * factor_, {}};
}

at::Tensor FeatureLoss::term(const std::vector<at::Tensor>& s, const std::vector<at::Tensor>& t,
                             const ssld::LossInputs&) {
  at::Tensor total;
  for (size_t i = 0; i < s.size(); ++i) {
    const at::Tensor pair = pair_loss(i, s[i], t[i]);
    total = total.defined() ? total + pair : pair;
  }
  return total;
}

void FeatureLoss::prepare(const ssld::FeatureShapes& student, const ssld::FeatureShapes& teacher, int64_t dataset_size) {
  if (prepared_) throw ssld::Error("the feature loss was prepared twice (a host bug)");
  dataset_size_ = dataset_size;
  std::vector<Shape> s, t;
  for (size_t i = 0; i < student_.size(); ++i) {
    s.push_back(student.at(student_[i]));
    t.push_back(teacher.at(teacher_[i]));
    if (!connect_) continue;
    const std::string why = ssld::connector_mismatch(s[i], t[i]);
    if (!why.empty()) refuse(i, s[i], t[i], why);
    connectors_.push_back(modules_.register_module("connector" + std::to_string(i), ssld::make_connector(s[i], t[i])));
    s[i] = t[i];  // what build and term see
  }
  build(s, t);
  prepared_ = true;
}

void FeatureLoss::build(const std::vector<Shape>& student, const std::vector<Shape>& teacher) {
  for (size_t i = 0; i < student.size(); ++i) check_pair(i, student[i], teacher[i]);
}

ssld::NamedTensors FeatureLoss::named_parameters() { return pairs_of(modules_.named_parameters()); }
ssld::NamedTensors FeatureLoss::named_buffers() {
  ssld::NamedTensors buffers = pairs_of(modules_.named_buffers());
  buffers.insert(buffers.end(), host_buffers_.begin(), host_buffers_.end());
  return buffers;
}

at::Tensor FeatureLoss::host_buffer(const std::string& name, at::Tensor value) {
  host_buffers_.emplace_back(name, value);
  return value;
}

void FeatureLoss::refuse(size_t i, const Shape& s, const Shape& t, const std::string& why) const {
  throw ssld::Error("student feature '" + student_[i] + "' " + ssld::shape_text(s) + " and teacher feature '" +
                    teacher_[i] + "' " + ssld::shape_text(t) + " cannot be compared: " + why);
}

ssld::Schema feature_schema(double factor, const char* factor_doc, bool connector_option) {
  ssld::Schema schema = ssld::Schema()
      .require(ssld::OptionType::StringList, "student", "student feature names, e.g. [\"layer2\", \"layer3\"]")
      .require(ssld::OptionType::StringList, "teacher", "teacher feature names, one per student feature")
      .add_float("factor", factor, factor_doc);
  if (connector_option)
    schema.add_bool("connector", false,
                    "pass each student feature through a trainable connector first (1x1 conv + BatchNorm to the "
                    "teacher's channels and resized to its size for maps, Linear for vectors)");
  return schema;
}

}  // namespace ssld::feature
