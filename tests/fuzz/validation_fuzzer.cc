// libFuzzer target: the front's request validation (server::ValidateAndFill) on a
// GenerateRequest parsed from the fuzz bytes as a serialized proto.
//
// Beyond "does not crash", it checks the contract between the front and the worker: a request
// the front accepts must be one the worker can run, so every accepted request is replayed
// through the worker's own checks (core::Tokenizer::Encode on both prompts, core::StagePlan
// for the stage list), and its filled-in fields must sit inside the documented limits.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "tpdiff/core/schedule.h"
#include "tpdiff/core/stage_plan.h"
#include "tpdiff/core/tokenizer.h"
#include "tpdiff/server/model_registry.h"
#include "tpdiff/server/validation.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace {

using tpdiff::v1::GenerateRequest;
using tpdiff::v1::ModelInfo;

[[noreturn]] void Fail(const char* what, const GenerateRequest& request) {
  std::fprintf(stderr, "validation_fuzzer: %s\nrequest: %s\n", what,
               request.ShortDebugString().c_str());
  std::abort();
}

ModelInfo Model(const std::string& name, uint32_t frames, int stages, bool vocabulary) {
  ModelInfo info;
  info.set_name(name);
  info.set_kind("builtin");
  info.set_parameterization("flow_matching");
  info.set_frames(frames);
  info.set_height(32);
  info.set_width(32);
  info.set_channels(3);
  info.set_fps(8);
  for (int i = 0; i < stages; ++i) info.add_default_stage_steps(4);
  info.set_default_guidance_scale(3.0f);
  if (vocabulary) {
    for (const std::string& word : tpdiff::core::ShapesVocabulary()) info.add_vocabulary(word);
  }
  return info;
}

struct Fixture {
  Fixture() : tokenizer(*tpdiff::core::Tokenizer::FromWords(tpdiff::core::ShapesVocabulary())) {
    // Invalid UTF-8 in string fields fails the parse (as on the wire) and logs each time.
    google::protobuf::SetLogHandler(nullptr);
    // The bundled model's shape, a deeper pyramid and a model that announced no vocabulary
    // (a worker's Hello may omit it): the front then accepts any words.
    registry.AddFromDisk(Model("tpdiff-shapes", 16, 3, true));
    registry.AddFromDisk(Model("deep", 64, 5, true));
    registry.AddFromWorker(Model("open", 8, 2, false));
  }
  tpdiff::server::ModelRegistry registry{"tpdiff-shapes"};
  tpdiff::core::Tokenizer tokenizer;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* fixture = new Fixture();  // never destroyed: libFuzzer exits without cleanup
  GenerateRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  absl::StatusOr<GenerateRequest> filled =
      tpdiff::server::ValidateAndFill(request, fixture->registry, /*random_seed=*/0);
  if (!filled.ok()) {
    if (filled.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("rejection is not INVALID_ARGUMENT", request);
    }
    if (filled.status().message().find(": ") == absl::string_view::npos) {
      Fail("rejection does not name a field", request);
    }
    return 0;
  }
  const GenerateRequest& r = *filled;
  absl::StatusOr<ModelInfo> model = fixture->registry.Find(r.model());
  if (!model.ok()) Fail("accepted an unknown model", request);
  if (r.seed() == 0) Fail("seed left at 0", request);
  if (r.num_frames() == 0 || r.num_frames() > model->frames()) Fail("num_frames out of range", request);
  if (r.height() != model->height() || r.width() != model->width()) Fail("size mismatch", request);
  if (r.fps() < tpdiff::server::kMinFps || r.fps() > tpdiff::server::kMaxFps) Fail("fps", request);
  if (!(r.guidance_scale() > 0.0f && r.guidance_scale() <= tpdiff::server::kMaxGuidanceScale)) {
    Fail("guidance_scale out of range", request);
  }
  if (r.sampler() == tpdiff::v1::SAMPLER_UNSPECIFIED || r.priority() == tpdiff::v1::PRIORITY_UNSPECIFIED ||
      r.output().format() == tpdiff::v1::VIDEO_FORMAT_UNSPECIFIED ||
      r.preview().format() == tpdiff::v1::VIDEO_FORMAT_UNSPECIFIED || !r.has_cancel_on_disconnect()) {
    Fail("a default was not filled in", request);
  }

  // The worker's checks (worker/src/job_runner.cc): tokenizer and stage plan.
  if (model->vocabulary_size() > 0) {
    if (!fixture->tokenizer.Encode(r.prompt()).ok()) Fail("worker tokenizer rejects prompt", request);
    if (!r.negative_prompt().empty() && !fixture->tokenizer.Encode(r.negative_prompt()).ok()) {
      Fail("worker tokenizer rejects negative_prompt", request);
    }
  }
  const tpdiff::core::NoiseSchedule schedule(tpdiff::core::Parameterization::kFlowMatching);
  if (r.sampler() == tpdiff::v1::SAMPLER_VANILLA) {
    int total = 0;
    for (uint32_t steps : r.stage_steps()) total += static_cast<int>(steps);
    if (!tpdiff::core::StagePlan::Vanilla(schedule, static_cast<int>(r.num_frames()), total).ok()) {
      Fail("worker rejects the vanilla plan", request);
    }
  } else {
    tpdiff::core::StagePlanOptions options;
    options.num_frames = static_cast<int>(r.num_frames());
    options.num_stages = r.stage_steps_size();
    options.steps_per_stage.assign(r.stage_steps().begin(), r.stage_steps().end());
    if (!tpdiff::core::StagePlan::Create(schedule, options).ok()) {
      Fail("worker rejects the stage plan", request);
    }
  }
  return 0;
}
