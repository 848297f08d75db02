#include "stage/feature_probe.hpp"

#include "data/device_batch.hpp"
#include "data/loader.hpp"

#include <ssld/error.hpp>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <tbb/task_arena.h>

namespace ssld::host {

namespace {
FeatureShapes shapes_of(const ModelOutput& output) {
  FeatureShapes shapes;
  for (const auto& [name, tensor] : output.features) shapes[name] = tensor.sizes().vec();
  return shapes;
}
}  // namespace

FeatureProbe probe_features(Student* student, Teacher* teacher, const DataPipeline& train, uint64_t seed,
                            const std::vector<std::string>& student_names,
                            const std::vector<std::string>& teacher_names) {
  if (train.sources.empty() || train.sources.front()->size() == 0)
    throw Error("data.train has no images to probe the models' features with");
  const int64_t size = train.sources.front()->size();
  const std::vector<SampleRef> refs = {{0, 0, 0}, {0, size > 1 ? 1 : 0, 0}};
  tbb::task_arena arena(1);
  const HostBatch host = assemble_batch(*train.samples, refs, /*pin_memory=*/false, arena);
  if (host.images.size(0) == 0) throw Error("data.train's first images are unreadable: cannot probe the models");
  const Batch batch = to_device(host, train, c10::Device(c10::kCPU), seed);
  FeatureProbe probe;
  probe.input = batch.images.sizes().vec();
  const c10::NoGradGuard no_grad;
  if (student && !student_names.empty()) {
    student->train(false);
    try {
      probe.student = shapes_of(student->forward(batch.images, student_names));
    } catch (...) {
      student->train(true);
      throw;
    }
    student->train(true);
  }
  if (teacher && !teacher_names.empty()) probe.teacher = shapes_of(teacher->forward(batch.images, teacher_names));
  return probe;
}

}  // namespace ssld::host
