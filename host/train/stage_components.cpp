#include "train/stage_components.hpp"

#include "teacher_cache/teacher_cache.hpp"

namespace ssld::host {

StageComponents::StageComponents() = default;
StageComponents::~StageComponents() = default;
StageComponents::StageComponents(StageComponents&&) noexcept = default;
StageComponents& StageComponents::operator=(StageComponents&&) noexcept = default;

}  // namespace ssld::host
