// The built-in components the host itself names, with the options it writes. They are part of
// the contract between the host and the plugins shipped in plugins/: stage references become a
// `checkpoint` teacher, `--dry-run` puts a `synthetic` dataset in place of every dataset and
// reads the channel count from a `normalize`, and pipelines without a [sampler] get `random`
// (data.train) or `sequential` (data.val, `ssld mine`'s candidates). A plugin that replaces one
// of them keeps its name and these options. tests/e2e/cli_test.cpp checks the built-in plugins
// register every one of them.
#pragma once

namespace ssld::host::builtin {

// plugins/teachers/checkpoint: a student architecture (its [student] table) with its weights.
inline constexpr const char* kCheckpointTeacher = "checkpoint";
inline constexpr const char* kCheckpointStudent = "student";
inline constexpr const char* kCheckpointWeights = "weights";

// plugins/datasets/synthetic: generated images.
inline constexpr const char* kSyntheticDataset = "synthetic";
inline constexpr const char* kSyntheticCount = "count";
inline constexpr const char* kSyntheticSize = "size";
inline constexpr const char* kSyntheticChannels = "channels";
inline constexpr const char* kSyntheticClasses = "num_classes";

// plugins/augment/batch: normalize's `mean` has one value per channel.
inline constexpr const char* kNormalizeAugmentation = "normalize";
inline constexpr const char* kNormalizeMean = "mean";

// plugins/samplers/standard.
inline constexpr const char* kRandomSampler = "random";
inline constexpr const char* kSequentialSampler = "sequential";

}  // namespace ssld::host::builtin
