// `ssld eval CONFIG`: top-1/top-5 of a student (with --weights, or its `weights`) or of the
// teacher alone on data.val, optionally writing per-sample predictions to CSV.
#include "cli/command_setup.hpp"
#include "cli/commands.hpp"
#include "stage/stage_plan.hpp"
#include "eval/evaluation.hpp"
#include "stage/assembly.hpp"
#include "weights/safetensors.hpp"
#include "weights/state_dict.hpp"

#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>
#include <iostream>

namespace ssld::host {

namespace {

// A CSV field as RFC 4180 writes it: quoted, with quotes doubled, when it holds a comma, a
// quote or a line break (a file name may).
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

}  // namespace

int run_eval(const EvalCommand& command) {
  Diagnostics diagnostics;
  const auto setup = set_up_command(command.config, command.overrides, diagnostics);
  PlannedStage selected = select_stage(setup->root, setup->run, command.config, command.stage, diagnostics);
  Stage& stage = selected.stage;
  AssemblyOptions options;
  options.require_training = false;
  StageComponents components = assemble_stage(stage.config, *setup->factory, options, diagnostics);
  if (!components.val) diagnostics.add(SourcePlace{command.config, 0, 0}, "the config has no [data.val] to evaluate on");
  if (command.teacher && !components.teacher)
    diagnostics.add(SourcePlace{command.config, 0, 0}, "--teacher: stage '" + stage.name + "' has no teacher");
  if (!command.teacher && !components.student)
    diagnostics.add(SourcePlace{command.config, 0, 0}, "stage '" + stage.name + "' has no [student]");
  diagnostics.throw_if_any();

  std::function<at::Tensor(const at::Tensor&)> predict;
  std::string what;
  if (command.teacher) {
    components.teacher->to(setup->device);
    predict = [&](const at::Tensor& images) { return components.teacher->forward(images, {}).logits; };
    what = "teacher " + components.teacher->identity();
  } else {
    Student& student = *components.student;
    if (!command.weights.empty()) load_state_dict(student, read_weights(command.weights), command.weights);
    student.to(setup->device);
    student.train(false);
    predict = [&](const at::Tensor& images) { return student.forward(images, {}).logits; };
    what = "student " + stage.config.at("student").at("type").as_string().str +
           (command.weights.empty() ? "" : " (" + command.weights + ")");
  }

  std::ofstream csv;
  PredictionSink sink;
  if (!command.predictions.empty()) {
    csv.open(command.predictions);
    if (!csv) throw Error("cannot write '" + command.predictions + "'");
    csv << "id,source,label,top1,top2,top3,top4,top5,p1,p2,p3,p4,p5\n";
    sink = [&](const Batch& batch, const at::Tensor& logits, const std::vector<std::string>& origins) {
      const int64_t k = std::min<int64_t>(5, logits.size(1));
      const auto [probabilities, classes] = logits.softmax(1).topk(k, 1);
      const at::Tensor p = probabilities.cpu(), c = classes.cpu(), ids = batch.ids.cpu(), labels = batch.labels.cpu();
      for (int64_t i = 0; i < logits.size(0); ++i) {
        csv << ids[i].item<int64_t>() << "," << csv_field(origins.at(static_cast<size_t>(i))) << ","
            << labels[i].item<int64_t>();
        for (int64_t j = 0; j < 5; ++j) csv << "," << (j < k ? std::to_string(c[i][j].item<int64_t>()) : "");
        for (int64_t j = 0; j < 5; ++j) {
          char text[16];
          std::snprintf(text, sizeof(text), "%.5f", j < k ? p[i][j].item<double>() : 0.0);
          csv << "," << (j < k ? text : "");
        }
        csv << "\n";
      }
    };
  }
  const Accuracy accuracy = evaluate(*components.val, setup->device, static_cast<uint64_t>(setup->run.seed), predict, sink);
  std::printf("%s on data.val (%lld labeled images): top-1 %.2f%%, top-5 %.2f%%\n", what.c_str(),
              static_cast<long long>(accuracy.samples), accuracy.top1, accuracy.top5);
  if (!command.predictions.empty()) std::printf("predictions: %s\n", command.predictions.c_str());
  return 0;
}

}  // namespace ssld::host
