// libFuzzer target: request validation (spec::ValidateAndFill, which the front and the
// worker both run) on a GenerateRequest parsed from the fuzz bytes as a serialized proto.
//
// Beyond "does not crash", it checks that a request accepted here is one the worker can run:
// every accepted request is replayed through what the worker does next (Tokenizer::Encode on
// both prompts, StagePlan for the stage list), and its filled-in fields must sit inside the
// documented limits.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "tpdiff/spec/request.h"
#include "tpdiff/spec/stage_plan.h"
#include "tpdiff/spec/tokenizer.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace {

namespace spec = tpdiff::spec;
using tpdiff::v1::GenerateRequest;

[[noreturn]] void Fail(const char* what, const GenerateRequest& request) {
  std::fprintf(stderr, "validation_fuzzer: %s\nrequest: %s\n", what,
               request.ShortDebugString().c_str());
  std::abort();
}

spec::ModelManifest Model(const std::string& name, int frames, int stages) {
  spec::ModelManifest m;
  m.name = name;
  m.kind = "builtin";
  m.frames = frames;
  m.stages = stages;
  m.default_stage_steps.assign(stages, 4);
  m.default_guidance_scale = 3.0;
  return m;
}

struct Fixture {
  Fixture() {
    // Invalid UTF-8 in string fields fails the parse (as on the wire) and logs each time.
    google::protobuf::SetLogHandler(nullptr);
  }
  // The bundled model's shape and a deeper pyramid ("deep" in the request's model field).
  spec::ModelManifest shapes = Model("tpdiff-shapes", 16, 3);
  spec::ModelManifest deep = Model("deep", 64, 5);
  spec::Tokenizer tokenizer = *spec::Tokenizer::FromWords(spec::ShapesVocabulary());
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* fixture = new Fixture();  // never destroyed: libFuzzer exits without cleanup
  GenerateRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  const spec::ModelManifest& model = request.model() == "deep" ? fixture->deep : fixture->shapes;
  absl::StatusOr<GenerateRequest> filled =
      spec::ValidateAndFill(request, model, fixture->tokenizer, /*random_seed=*/0);
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
  if (r.model() != request.model() && !(request.model().empty() && r.model() == model.name)) {
    Fail("model changed", request);
  }
  if (r.seed() == 0) Fail("seed left at 0", request);
  if (r.num_frames() == 0 || r.num_frames() > static_cast<uint32_t>(model.frames)) {
    Fail("num_frames out of range", request);
  }
  if (r.height() != static_cast<uint32_t>(model.height) ||
      r.width() != static_cast<uint32_t>(model.width)) {
    Fail("size mismatch", request);
  }
  if (r.fps() < spec::kMinFps || r.fps() > spec::kMaxFps) Fail("fps", request);
  if (!(r.guidance_scale() > 0.0f && r.guidance_scale() <= spec::kMaxGuidanceScale)) {
    Fail("guidance_scale out of range", request);
  }
  if (r.sampler() == tpdiff::v1::SAMPLER_UNSPECIFIED || r.priority() == tpdiff::v1::PRIORITY_UNSPECIFIED ||
      r.output().format() == tpdiff::v1::VIDEO_FORMAT_UNSPECIFIED ||
      r.preview().format() == tpdiff::v1::VIDEO_FORMAT_UNSPECIFIED || !r.has_cancel_on_disconnect()) {
    Fail("a default was not filled in", request);
  }

  // What the worker does next (worker/src/job_runner.cc): encode, then plan.
  if (!fixture->tokenizer.Encode(r.prompt()).ok()) Fail("worker tokenizer rejects prompt", request);
  if (!r.negative_prompt().empty() && !fixture->tokenizer.Encode(r.negative_prompt()).ok()) {
    Fail("worker tokenizer rejects negative_prompt", request);
  }
  const spec::NoiseSchedule schedule(spec::Parameterization::kFlowMatching);
  if (r.sampler() == tpdiff::v1::SAMPLER_VANILLA) {
    int total = 0;
    for (uint32_t steps : r.stage_steps()) total += static_cast<int>(steps);
    if (!spec::StagePlan::Vanilla(schedule, static_cast<int>(r.num_frames()), total).ok()) {
      Fail("worker rejects the vanilla plan", request);
    }
  } else {
    spec::StagePlanOptions options;
    options.num_frames = static_cast<int>(r.num_frames());
    options.num_stages = r.stage_steps_size();
    options.steps_per_stage.assign(r.stage_steps().begin(), r.stage_steps().end());
    if (!spec::StagePlan::Create(schedule, options).ok()) {
      Fail("worker rejects the stage plan", request);
    }
  }
  return 0;
}
