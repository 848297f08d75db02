// Builds everything one stage's config describes: the student (optionally initialized from a
// weights file), the teacher, the weighted losses, the data pipelines and the [train]
// settings. Shared by `ssld check` (which only builds) and `ssld train`.
#pragma once

#include "components/component_factory.hpp"
#include "train/trainer.hpp"

namespace ssld::host {

struct AssemblyOptions {
  bool require_training = true;  // student, losses and data.train must be present
  // false (`ssld check`): weights an earlier stage has not written yet are not loaded, and a
  // teacher made of them is not built.
  bool weights_must_exist = true;
  // A data-parallel run: this rank's shard of data.train and data.val (and of the teacher cache).
  Sharding sharding;
};

// Every problem goes to `diagnostics`; the components built so far are returned either way.
StageComponents assemble_stage(const TomlValue& config, const ComponentFactory& factory, const AssemblyOptions& options,
                               Diagnostics& diagnostics);

}  // namespace ssld::host
