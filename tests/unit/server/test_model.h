#ifndef TPDIFF_TESTS_UNIT_SERVER_TEST_MODEL_H_
#define TPDIFF_TESTS_UNIT_SERVER_TEST_MODEL_H_

#include "tpdiff/server/model_registry.h"
#include "tpdiff/spec/model_info.h"
#include "tpdiff/v1/video_generation.pb.h"

namespace tpdiff::server::testing {

// A small model like the bundled one: 16 frames of 32x32, three stages.
inline tpdiff::v1::ModelInfo TinyModel(const std::string& name = "tiny") {
  tpdiff::v1::ModelInfo info;
  info.set_name(name);
  info.set_kind("builtin");
  info.set_parameterization("flow_matching");
  info.set_frames(16);
  info.set_height(32);
  info.set_width(32);
  info.set_channels(3);
  info.set_fps(8);
  for (uint32_t steps : {4, 4, 4}) info.add_default_stage_steps(steps);
  info.set_default_guidance_scale(5.0f);
  for (const char* word : {"a", "red", "blue", "ball", "on", "grass", "bouncing"}) {
    info.add_vocabulary(word);
  }
  return info;
}

// TinyModel as a package read from disk.
inline spec::ModelSpec TinySpec(const std::string& name = "tiny") {
  return *spec::ModelSpecFromInfo(TinyModel(name));
}

inline tpdiff::v1::GenerateRequest ValidRequest() {
  tpdiff::v1::GenerateRequest request;
  request.set_prompt("a red ball bouncing on grass");
  return request;
}

}  // namespace tpdiff::server::testing

#endif  // TPDIFF_TESTS_UNIT_SERVER_TEST_MODEL_H_
