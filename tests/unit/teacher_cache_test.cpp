// The teacher cache's storage: codecs, epoch files (round trip, damage, atomic completion),
// key folders, and the TeacherCache's fill / read / refuse logic.
#include "teacher_cache/teacher_cache.hpp"

#include "test_support.hpp"
#include "weights/torch_file.hpp"

#include <ssld/error.hpp>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

using namespace ssld::host;
using ssld::test::error_of;
using ssld::test::TempDir;

namespace {

at::Tensor random_logits(int64_t n, int64_t classes, uint64_t seed) {
  at::manual_seed(seed);
  return at::randn({n, classes}) * 3.0;
}

TeacherCacheSettings settings_in(const TempDir& dir, const std::string& format = "fp32", const std::string& mode = "fill") {
  TeacherCacheSettings settings;
  settings.store = (dir / "store").string();
  settings.format = format;
  settings.top_k = 3;
  settings.mode = ssld::host::kCacheModeNames.parse(mode, "mode");
  return settings;
}

nlohmann::json key_for(const std::string& teacher) { return {{"teacher", {{"identity", teacher}}}, {"seed", 0}}; }

}  // namespace

TEST(SoftLabelCodec, Fp32IsExactAndFp16IsClose) {
  const at::Tensor logits = random_logits(5, 10, 1);
  const SoftLabelCodec fp32("fp32", 10, 0);
  EXPECT_EQ(fp32.bytes_per_sample(), 40);
  EXPECT_TRUE(fp32.decode(fp32.encode(logits).data(), 5).equal(logits));
  const SoftLabelCodec fp16("fp16", 10, 0);
  const at::Tensor back = fp16.decode(fp16.encode(logits).data(), 5);
  EXPECT_EQ(back.scalar_type(), at::kFloat);
  EXPECT_LT((back - logits).abs().max().item<double>(), 1e-2);
}

TEST(SoftLabelCodec, TopKKeepsTheLargestProbabilitiesAndSpreadsTheRest) {
  const at::Tensor logits = random_logits(4, 10, 2);
  const SoftLabelCodec codec("topk", 10, 3);
  EXPECT_EQ(codec.bytes_per_sample(), 18);
  const at::Tensor probabilities = codec.decode(codec.encode(logits).data(), 4).softmax(1);
  const at::Tensor original = logits.softmax(1);
  const auto [top, indices] = original.topk(3, 1);
  EXPECT_TRUE(probabilities.gather(1, indices).allclose(top, 0, 2e-3));
  for (int64_t i = 0; i < 4; ++i) {
    const double rest = (1.0 - top[i].sum().item<double>()) / 7.0;
    at::Tensor others = at::ones({10}, at::kBool);
    others.index_put_({indices[i]}, false);
    EXPECT_TRUE(probabilities[i].masked_select(others).allclose(at::full({7}, rest), 0, 2e-3));
  }
  EXPECT_TRUE(probabilities.sum(1).allclose(at::ones({4}), 0, 1e-5));
}

TEST(SoftLabelCodec, RefusesUnknownFormatsAndImpossibleK) {
  EXPECT_NE(error_of<ssld::Error>([] { SoftLabelCodec("bf8", 10, 0); }).find("unknown format 'bf8'"), std::string::npos);
  EXPECT_NE(error_of<ssld::Error>([] { SoftLabelCodec("topk", 10, 10); }).find("top_k = 10"), std::string::npos);
}

TEST(EpochFile, RoundTripsEveryStepWithItsIds) {
  TempDir dir;
  const SoftLabelCodec codec("fp32", 6, 0);
  const auto path = dir / "epoch_00000.bin";
  std::vector<at::Tensor> logits = {random_logits(4, 6, 3), random_logits(4, 6, 4), random_logits(2, 6, 5)};
  {
    EpochWriter writer(path, 42, codec, 3);
    for (int64_t step = 0; step < 3; ++step)
      writer.append(at::arange(step * 10, step * 10 + logits[step].size(0), at::kLong), codec.encode(logits[step]));
    EXPECT_FALSE(std::filesystem::exists(path));  // readers see complete epochs only
    writer.finish();
  }
  ASSERT_TRUE(std::filesystem::exists(path));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);  // no partial file left
  const EpochReader reader(path, 42, codec);
  EXPECT_EQ(reader.steps(), 3);
  for (int64_t step = 2; step >= 0; --step) {  // any order: one seek per step
    const SoftLabelRecord record = reader.read(step);
    EXPECT_TRUE(record.ids.equal(at::arange(step * 10, step * 10 + logits[step].size(0), at::kLong)));
    EXPECT_TRUE(record.logits.equal(logits[step]));
  }
  EXPECT_NE(error_of<ssld::Error>([&] { EpochReader(path, 43, codec); }).find("another key"), std::string::npos);
}

// scripts/read_teacher_cache.py (python3 + numpy) reads each format as ssld does, and names the
// file it cannot read.
TEST(EpochFile, ThePythonReaderReadsWhatSsldStored) {
  TempDir dir;
  std::vector<std::string> args = {SSLD_SOURCE_DIR "/tests/unit/fixtures/check_teacher_cache_reader.py",
                                   SSLD_SOURCE_DIR "/scripts", (dir / "expected.pth").string()};
  ssld::NamedTensors expected;
  int file = 0;
  for (const std::string format : {"fp32", "fp16", "topk"}) {
    const SoftLabelCodec codec(format, 7, format == "topk" ? 3 : 0);
    const auto path = dir / (format + ".bin");
    std::vector<at::Tensor> ids, values;
    EpochWriter writer(path, 99, codec, 3);
    for (int64_t step = 0; step < 3; ++step) {
      const at::Tensor step_ids = at::arange(0, 5 - step, at::kLong) * 1000003 + step;  // ids are keys, not rows
      const std::vector<uint8_t> encoded = codec.encode(random_logits(5 - step, 7, static_cast<uint64_t>(step)));
      writer.append(step_ids, encoded);
      ids.push_back(step_ids);
      values.push_back(codec.decode(encoded.data(), step_ids.numel()));
    }
    writer.finish();
    expected.emplace_back("ids." + std::to_string(file), at::cat(ids));
    expected.emplace_back("values." + std::to_string(file), at::cat(values));
    args.push_back(path.string());
    ++file;
  }
  write_torch_file((dir / "expected.pth").string(), expected);
  const auto checked = ssld::test::run_program("/usr/bin/python3", args);
  EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;

  // Damage: a cut file and a foreign one are refused with the file's name, exit status 2.
  const std::string bytes = ssld::test::read_file(dir / "fp32.bin");
  dir.write("cut.bin", bytes.substr(0, bytes.size() - 20));
  dir.write("foreign.bin", "PNG and other things, not soft labels at all.....................");
  for (const char* name : {"cut.bin", "foreign.bin"}) {
    const auto refused = ssld::test::run_program(
        "/usr/bin/python3", {SSLD_SOURCE_DIR "/scripts/read_teacher_cache.py", (dir / name).string()});
    EXPECT_EQ(refused.exit_code, 2) << name;
    EXPECT_NE(refused.err.find((dir / name).string()), std::string::npos) << refused.err;
  }
}

TEST(EpochFile, AnUnfinishedEpochLeavesNothingAndDamageIsDetected) {
  TempDir dir;
  const SoftLabelCodec codec("fp16", 6, 0);
  const auto path = dir / "epoch_00000.bin";
  {
    EpochWriter writer(path, 1, codec, 2);
    writer.append(at::arange(4, at::kLong), codec.encode(random_logits(4, 6, 6)));
  }  // interrupted before its last step
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 0);

  {
    EpochWriter writer(path, 1, codec, 2);
    for (int step = 0; step < 2; ++step) writer.append(at::arange(4, at::kLong), codec.encode(random_logits(4, 6, 7)));
    writer.finish();
  }
  std::string bytes = ssld::test::read_file(path);
  std::string flipped = bytes;
  flipped[48 + 16 + 32 + 3] ^= 0x10;  // inside step 0's payload
  std::ofstream(path, std::ios::binary | std::ios::trunc) << flipped;
  const EpochReader reader(path, 1, codec);
  EXPECT_NE(error_of<ssld::Error>([&] { reader.read(0); }).find("checksum mismatch"), std::string::npos);
  EXPECT_NO_THROW(reader.read(1));

  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() - 20);
  EXPECT_NE(error_of<ssld::Error>([&] { EpochReader(path, 1, codec); }).find("truncated"), std::string::npos);
}

TEST(SoftLabelStore, OneFolderPerKeyAndForeignKeysAreNamed) {
  TempDir dir;
  const SoftLabelStore a(dir / "store", key_for("checkpoint:aaaa"));
  const SoftLabelStore b(dir / "store", key_for("checkpoint:bbbb"));
  EXPECT_NE(a.folder(), b.folder());
  a.write_key();
  const auto lines = b.other_stores();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("teacher.identity: \"checkpoint:aaaa\" there, \"checkpoint:bbbb\" here"), std::string::npos);
  // A key.json that does not match its folder (edited by hand) is refused.
  std::ofstream(a.folder() / "key.json") << key_for("checkpoint:zzzz").dump();
  EXPECT_NE(error_of<ssld::Error>([&] { SoftLabelStore(dir / "store", key_for("checkpoint:aaaa")); })
                .find("holds another key"),
            std::string::npos);
}

TEST(TeacherCache, ComputesOnceThenReadsTheSameLogits) {
  TempDir dir;
  const int64_t steps = 3;
  std::vector<at::Tensor> teacher = {random_logits(4, 5, 8), random_logits(4, 5, 9), random_logits(4, 5, 10)};
  auto ids_of = [](int64_t step) { return at::arange(step * 4, step * 4 + 4, at::kLong); };
  int computed = 0;
  std::vector<at::Tensor> first;
  {
    TeacherCache cache(settings_in(dir), key_for("t"), SoftLabelCodec("fp32", 5, 0), steps, "val");
    for (int64_t step = 0; step < steps; ++step)
      first.push_back(cache.logits(0, step, ids_of(step), [&] { ++computed; return teacher[step]; }));
    EXPECT_TRUE(cache.store().has_epoch(0));
  }
  TeacherCache cache(settings_in(dir, "fp32", "read"), key_for("t"), SoftLabelCodec("fp32", 5, 0), steps, "val");
  EXPECT_NO_THROW(cache.require_epochs(0, 1));
  for (int64_t step = 0; step < steps; ++step)
    EXPECT_TRUE(cache.logits(0, step, ids_of(step), [&] { ++computed; return at::Tensor(); }).equal(first[step]));
  EXPECT_EQ(computed, 3);
  EXPECT_EQ(cache.steps_read(), 3);
  // Another batch at the same position: the store is stale and refused.
  const std::string stale = error_of<ssld::Error>([&] { cache.logits(0, 1, ids_of(2), [] { return at::Tensor(); }); });
  EXPECT_NE(stale.find("holds other samples than this run's batch"), std::string::npos) << stale;
  // Epoch 2 is missing: read mode names it and how the other store differs.
  TeacherCache other(settings_in(dir, "fp32", "read"), key_for("t2"), SoftLabelCodec("fp32", 5, 0), steps, "val");
  const std::string missing = error_of<ssld::Error>([&] { other.require_epochs(0, 2); });
  EXPECT_NE(missing.find("no soft labels for epoch(s) 1, 2"), std::string::npos) << missing;
  EXPECT_NE(missing.find("teacher.identity: \"t\" there, \"t2\" here"), std::string::npos) << missing;
  EXPECT_NE(missing.find("ssld cache-teacher"), std::string::npos) << missing;
}

TEST(TeacherCache, LossyFormatsGiveTheFillingRunWhatLaterRunsRead) {
  TempDir dir;
  const at::Tensor teacher = random_logits(4, 5, 11);
  TeacherCache filling(settings_in(dir, "fp16"), key_for("t"), SoftLabelCodec("fp16", 5, 0), 1, "val");
  const at::Tensor seen = filling.logits(0, 0, at::arange(4, at::kLong), [&] { return teacher; });
  EXPECT_FALSE(seen.equal(teacher));
  TeacherCache reading(settings_in(dir, "fp16"), key_for("t"), SoftLabelCodec("fp16", 5, 0), 1, "val");
  EXPECT_TRUE(reading.logits(0, 0, at::arange(4, at::kLong), [] { return at::Tensor(); }).equal(seen));
}

TEST(TeacherCache, AnEpochEnteredMidWayIsNotStored) {
  TempDir dir;
  TeacherCache cache(settings_in(dir), key_for("t"), SoftLabelCodec("fp32", 5, 0), 3, "val");
  for (int64_t step = 1; step < 3; ++step)  // resumed at step 1
    cache.logits(0, step, at::arange(4, at::kLong), [] { return random_logits(4, 5, 12); });
  EXPECT_FALSE(cache.store().has_epoch(0));
  EXPECT_EQ(cache.steps_computed(), 2);
}

TEST(TeacherCache, KeepsTheTeacherAccuracyPerValidationPipeline) {
  TempDir dir;
  const TeacherCache cache(settings_in(dir), key_for("t"), SoftLabelCodec("fp32", 5, 0), 1, "val-a");
  EXPECT_FALSE(cache.teacher_accuracy());
  cache.save_teacher_accuracy(Accuracy{91.5, 99.0, 100});
  EXPECT_EQ(cache.teacher_accuracy()->top1, 91.5);
  EXPECT_EQ(cache.teacher_accuracy()->samples, 100);
  const TeacherCache other_val(settings_in(dir), key_for("t"), SoftLabelCodec("fp32", 5, 0), 1, "val-b");
  EXPECT_FALSE(other_val.teacher_accuracy());
}
