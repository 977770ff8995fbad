#include "tpdiff/spec/request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tpdiff/spec/limits.h"

namespace tpdiff::spec {
namespace {

using ::testing::HasSubstr;
using tpdiff::v1::GenerateRequest;

// A small model like the bundled one: 16 frames of 32x32, three stages.
ModelManifest TinyManifest() {
  ModelManifest m;
  m.name = "tiny";
  m.kind = "builtin";
  m.frames = 16;
  m.height = 32;
  m.width = 32;
  m.fps = 8;
  m.stages = 3;
  m.default_stage_steps = {4, 4, 4};
  m.default_guidance_scale = 5.0;
  return m;
}

GenerateRequest ValidRequest() {
  GenerateRequest request;
  request.set_prompt("a red ball bouncing on grass");
  return request;
}

class ValidationTest : public ::testing::Test {
 protected:
  // The INVALID_ARGUMENT message for `request`, or "" when it is accepted.
  std::string Error(const GenerateRequest& request) {
    absl::StatusOr<GenerateRequest> out = ValidateAndFill(request, manifest_, tokenizer_, 42);
    if (out.ok()) return "";
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
    return std::string(out.status().message());
  }
  ModelManifest manifest_ = TinyManifest();
  Tokenizer tokenizer_ =
      *Tokenizer::FromWords({"a", "red", "blue", "ball", "on", "grass", "bouncing"});
};

TEST_F(ValidationTest, FillsDefaults) {
  absl::StatusOr<GenerateRequest> out = ValidateAndFill(ValidRequest(), manifest_, tokenizer_, 42);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->model(), "tiny");
  EXPECT_EQ(out->num_frames(), 16u);
  EXPECT_EQ(out->height(), 32u);
  EXPECT_EQ(out->width(), 32u);
  EXPECT_EQ(out->fps(), 8u);
  EXPECT_THAT(out->stage_steps(), ::testing::ElementsAre(4, 4, 4));
  EXPECT_FLOAT_EQ(out->guidance_scale(), 5.0f);
  EXPECT_EQ(out->seed(), 42u);
  EXPECT_EQ(out->sampler(), tpdiff::v1::SAMPLER_TPDIFF);
  EXPECT_EQ(out->priority(), tpdiff::v1::PRIORITY_STANDARD);
  EXPECT_EQ(out->output().format(), tpdiff::v1::VIDEO_FORMAT_MP4);
  EXPECT_EQ(out->preview().format(), tpdiff::v1::VIDEO_FORMAT_GIF);
  EXPECT_TRUE(out->has_cancel_on_disconnect() && out->cancel_on_disconnect());

  GenerateRequest explicit_request = ValidRequest();
  explicit_request.set_seed(7);
  explicit_request.set_cancel_on_disconnect(false);
  out = ValidateAndFill(explicit_request, manifest_, tokenizer_, 42);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->seed(), 7u);
  EXPECT_FALSE(out->cancel_on_disconnect());
  EXPECT_EQ(ValidateAndFill(ValidRequest(), manifest_, tokenizer_, 0)->seed(), 1u);
}

TEST_F(ValidationTest, EachFieldNamedWithItsLimit) {
  GenerateRequest r = ValidRequest();
  r.set_num_frames(40);
  EXPECT_EQ(Error(r), "num_frames: 40 exceeds the model's maximum of 16");
  r = ValidRequest();
  r.set_num_frames(6);
  EXPECT_THAT(Error(r), HasSubstr("num_frames: 6 is not a multiple of 4"));
  r = ValidRequest();
  r.set_height(64);
  EXPECT_THAT(Error(r), HasSubstr("height: 64"));
  r = ValidRequest();
  r.set_width(31);
  EXPECT_THAT(Error(r), HasSubstr("width: 31"));
  r = ValidRequest();
  r.set_fps(61);
  EXPECT_EQ(Error(r), "fps: 61 is outside 1..60");
  r = ValidRequest();
  for (int i = 0; i < 6; ++i) r.add_stage_steps(1);
  EXPECT_EQ(Error(r), "stage_steps: 6 stages is outside 1..5");
  r = ValidRequest();
  for (uint32_t steps : {4, 101, 4}) r.add_stage_steps(steps);
  EXPECT_EQ(Error(r), "stage_steps[1]: 101 is outside 1..100");
  r = ValidRequest();
  for (uint32_t steps : {4, 0, 4}) r.add_stage_steps(steps);
  EXPECT_EQ(Error(r), "stage_steps[1]: 0 is outside 1..100");
  r = ValidRequest();
  for (int i = 0; i < 4; ++i) r.add_stage_steps(2);
  EXPECT_EQ(Error(r), "stage_steps: 4 stages exceeds the model's maximum of 3");
  r = ValidRequest();
  r.set_guidance_scale(25);
  EXPECT_EQ(Error(r), "guidance_scale: 25 is outside 0..20");
  r = ValidRequest();
  r.set_guidance_scale(-1);
  EXPECT_THAT(Error(r), HasSubstr("guidance_scale: -1"));
  r = ValidRequest();
  r.set_prompt("");
  EXPECT_EQ(Error(r), "prompt: required");
  r = ValidRequest();
  r.set_prompt(std::string(513, 'a'));
  EXPECT_EQ(Error(r), "prompt: 513 bytes exceeds the maximum of 512");
  r = ValidRequest();
  r.set_prompt("a purple ball on Lava purple");
  EXPECT_EQ(Error(r), "prompt: words not in the vocabulary of model \"tiny\": purple, lava");
  r = ValidRequest();
  r.set_negative_prompt("blurry");
  EXPECT_THAT(Error(r), HasSubstr("negative_prompt: words not in the vocabulary"));
  r = ValidRequest();
  r.set_negative_prompt(std::string(600, 'a'));
  EXPECT_THAT(Error(r), HasSubstr("negative_prompt: 600 bytes exceeds the maximum of 512"));
  r = ValidRequest();
  r.set_request_id(std::string(129, 'r'));
  EXPECT_EQ(Error(r), "request_id: 129 bytes exceeds the maximum of 128");
  r = ValidRequest();
  r.set_sampler(static_cast<tpdiff::v1::Sampler>(9));
  EXPECT_EQ(Error(r), "sampler: unknown enum value 9");
  r = ValidRequest();
  r.set_priority(static_cast<tpdiff::v1::Priority>(7));
  EXPECT_EQ(Error(r), "priority: unknown enum value 7");
  r = ValidRequest();
  r.mutable_output()->set_format(static_cast<tpdiff::v1::VideoFormat>(12));
  EXPECT_EQ(Error(r), "output.format: unknown enum value 12");
  r = ValidRequest();
  r.mutable_preview()->set_format(static_cast<tpdiff::v1::VideoFormat>(12));
  EXPECT_EQ(Error(r), "preview.format: unknown enum value 12");
  r = ValidRequest();
  r.mutable_output()->set_scale(17);
  EXPECT_EQ(Error(r), "output.scale: 17 exceeds the maximum of 16");
  r = ValidRequest();
  r.mutable_max_queue_wait()->set_seconds(-5);
  EXPECT_EQ(Error(r), "max_queue_wait: must not be negative");
}

TEST_F(ValidationTest, VanillaNeedsNoFrameMultiple) {
  GenerateRequest r = ValidRequest();
  r.set_sampler(tpdiff::v1::SAMPLER_VANILLA);
  r.set_num_frames(6);
  EXPECT_EQ(Error(r), "");
}

TEST_F(ValidationTest, PromptIsCaseInsensitiveLikeTheTokenizer) {
  GenerateRequest r = ValidRequest();
  r.set_prompt("  A RED   Ball\ton grass ");
  EXPECT_EQ(Error(r), "");
  r.set_prompt(std::string(33 * 2, ' ').replace(0, 0, [] {
    std::string s;
    for (int i = 0; i < 33; ++i) s += "a ";
    return s;
  }()));
  EXPECT_EQ(Error(r), "prompt: 33 words exceeds the maximum of 32");
}

// The tokenizer splits on punctuation too: a prompt the front accepts always encodes on the
// worker, and one the worker cannot encode is refused at admission.
TEST_F(ValidationTest, PunctuationSeparatesWordsLikeTheTokenizer) {
  GenerateRequest r = ValidRequest();
  r.set_prompt("a red ball, bouncing on grass.");
  EXPECT_EQ(Error(r), "");
  ASSERT_TRUE(tokenizer_.Encode(r.prompt()).ok());
  std::string many;
  for (int i = 0; i < 33; ++i) many += "a,";
  r.set_prompt(many);
  EXPECT_EQ(Error(r), "prompt: 33 words exceeds the maximum of 32");
  EXPECT_FALSE(tokenizer_.Encode(r.prompt()).ok());
}

// A model whose default guidance is 0 (allowed in a manifest) fills in 1, not "unset".
TEST_F(ValidationTest, ZeroDefaultGuidanceBecomesOne) {
  manifest_.default_guidance_scale = 0;
  absl::StatusOr<GenerateRequest> out = ValidateAndFill(ValidRequest(), manifest_, tokenizer_, 42);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FLOAT_EQ(out->guidance_scale(), 1.0f);
}

TEST(EchoForMessageTest, ShortValuesAreWholeLongOnesCutWithTheirSize) {
  EXPECT_EQ(EchoForMessage("tiny"), "tiny");
  EXPECT_EQ(EchoForMessage(std::string(kMaxEchoedBytes, 'a')), std::string(kMaxEchoedBytes, 'a'));
  EXPECT_EQ(EchoForMessage(std::string(kMaxEchoedBytes + 1, 'a')),
            std::string(kMaxEchoedBytes, 'a') + "... (65 bytes)");
}

}  // namespace
}  // namespace tpdiff::spec
