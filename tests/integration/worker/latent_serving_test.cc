// A latent package served for real: the front (tpdiff::server, in process, port 0) and the
// tpdiff-worker binary over gRPC on loopback, lossless PNG frames out, compared with the
// Python reference sampler's decoded frames for the same request (made by the ctest fixture
// latent.reference: TPDIFF_LATENT_REFERENCE holds <name>.safetensors and `request`, the
// request the reference ran, one "key=value" a line, with packages= the packages folder).

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tpdiff/client/commands.h"
#include "tpdiff/media/decoder.h"
#include "tpdiff/model/safetensors.h"
#include "tpdiff/server/clock.h"
#include "tpdiff/server/front_server.h"
#include "tpdiff/v1/video_generation.grpc.pb.h"
#include "serving_helpers.h"

namespace tpdiff::worker {
namespace {

namespace api = ::tpdiff::v1;

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

std::map<std::string, std::string> ReadRequest(const std::string& path) {
  std::map<std::string, std::string> fields;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) fields[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return fields;
}

// Largest difference between decoded frames and the reference's uint8 [T, H, W, 3]. The
// frames may be an integer nearest-neighbour upscale of the reference (previews are).
int MaxLevelDifference(const media::Video& video, const torch::Tensor& reference) {
  const int64_t scale = video.width / reference.size(2);
  torch::Tensor got = torch::from_blob(const_cast<uint8_t*>(video.rgb.data()),
                                       {video.frames, video.height, video.width, 3}, torch::kUInt8)
                          .slice(1, 0, video.height, scale)
                          .slice(2, 0, video.width, scale)
                          .to(torch::kInt);
  EXPECT_EQ(got.sizes(), reference.sizes());
  if (got.sizes() != reference.sizes()) return 255;
  return (got - reference.to(torch::kInt)).abs().max().item<int>();
}

class LatentServingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = Env("TPDIFF_LATENT_REFERENCE");
    ASSERT_FALSE(dir_.empty()) << "TPDIFF_LATENT_REFERENCE is set by ctest (latent.reference)";
    request_ = ReadRequest(dir_ + "/request");
    packages_ = request_["packages"];
    server::FrontServerOptions options;
    options.listen = "127.0.0.1:0";
    options.models_dir = packages_;
    options.dispatcher.heartbeat_interval = absl::Milliseconds(200);
    options.tick_interval = absl::Milliseconds(20);
    server_ = std::make_unique<server::FrontServer>(options, clock_);
    ASSERT_TRUE(server_->Start().ok());
    target_ = "127.0.0.1:" + std::to_string(server_->port());
    stub_ = api::VideoGeneration::NewStub(
        grpc::CreateChannel(target_, grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::ZeroDuration());
  }

  bool WaitForWorkers(size_t n) { return testing::WaitForWorkers(*server_, n); }

  // The fixture's request, with lossless frames out and previews.
  api::GenerateRequest Request(const std::string& model) {
    std::map<std::string, std::string>& fields = request_;
    api::GenerateRequest r;
    r.set_model(model);
    r.set_prompt(fields["prompt"]);
    uint64_t seed = 0;
    EXPECT_TRUE(absl::SimpleAtoi(fields["seed"], &seed));
    r.set_seed(seed);
    float guidance = 0;
    EXPECT_TRUE(absl::SimpleAtof(fields["guidance"], &guidance));
    r.set_guidance_scale(guidance);
    for (absl::string_view s : absl::StrSplit(fields["steps"], ',')) {
      uint32_t steps = 0;
      EXPECT_TRUE(absl::SimpleAtoi(s, &steps));
      r.add_stage_steps(steps);
    }
    r.mutable_output()->set_format(api::VIDEO_FORMAT_PNG_FRAMES);
    r.mutable_output()->set_scale(1);
    r.mutable_preview()->set_enabled(true);
    r.mutable_preview()->set_format(api::VIDEO_FORMAT_PNG_FRAMES);
    return r;
  }

  std::vector<api::JobEvent> GenerateAll(const api::GenerateRequest& request) {
    return testing::GenerateAll(*stub_, request);
  }

  std::string dir_;
  std::map<std::string, std::string> request_;
  std::string packages_;
  server::RealClock clock_;
  std::unique_ptr<server::FrontServer> server_;
  std::string target_;
  std::unique_ptr<api::VideoGeneration::Stub> stub_;
};

TEST_F(LatentServingTest, MiniFlowFramesMatchTheReferenceWithinOneLevel) {
  auto reference = model::ReadSafetensors(dir_ + "/mini-flow.safetensors");
  ASSERT_TRUE(reference.ok()) << reference.status();
  testing::WorkerProcess worker(target_, packages_, "latent-w",
                                {"--insecure", "--models=mini-flow"});
  ASSERT_TRUE(WaitForWorkers(1));

  const std::vector<api::JobEvent> events = GenerateAll(Request("mini-flow"));
  ASSERT_FALSE(events.empty());
  ASSERT_TRUE(events.back().has_completed()) << events.back().DebugString();
  std::string bytes;
  std::vector<api::StagePreview> previews;
  for (const api::JobEvent& e : events) {
    if (e.has_result_chunk()) bytes += e.result_chunk().data();
    if (e.has_stage_preview()) previews.push_back(e.stage_preview());
  }
  absl::StatusOr<media::Video> video = media::DecodePngFrames(bytes);
  ASSERT_TRUE(video.ok()) << video.status();
  const torch::Tensor& frames = reference->tensors.at("frames");
  ASSERT_EQ(frames.sizes(),
            (std::vector<int64_t>{video->frames, video->height, video->width, 3}));
  EXPECT_LE(MaxLevelDifference(*video, frames), 1);

  // One preview per stage, each the decode of the stage's clean estimate at its frame rate.
  const int stages = static_cast<int>(Request("mini-flow").stage_steps_size());
  ASSERT_EQ(static_cast<int>(previews.size()), stages);
  for (const api::StagePreview& p : previews) {
    const int k = stages + 1 - static_cast<int>(p.stage());  // stage number, 1 = full rate
    absl::StatusOr<media::Video> preview = media::DecodePngFrames(p.media().data());
    ASSERT_TRUE(preview.ok()) << preview.status();
    auto it = reference->tensors.find(absl::StrCat("stage", k, ".preview_frames"));
    ASSERT_NE(it, reference->tensors.end()) << "stage " << k;
    ASSERT_EQ(it->second.size(0), preview->frames) << "stage " << k;
    EXPECT_EQ(static_cast<int>(p.frames()), preview->frames);
    EXPECT_LE(MaxLevelDifference(*preview, it->second), 1) << "stage " << k;
  }

  // ListModels gives clients the tokenizer's kind and limit, not the SentencePiece model
  // itself (it travelled in the worker's Hello).
  {
    grpc::ClientContext context;
    api::ListModelsResponse list;
    ASSERT_TRUE(stub_->ListModels(&context, {}, &list).ok());
    bool found = false;
    for (const api::ModelInfo& info : list.models()) {
      if (info.name() != "mini-flow") continue;
      found = true;
      EXPECT_EQ(info.tokenizer_kind(), "sentencepiece");
      EXPECT_EQ(info.max_tokens(), 32u);
      EXPECT_TRUE(info.tokenizer_model().empty()) << info.tokenizer_model().size() << " bytes";
    }
    EXPECT_TRUE(found);
  }

  // `tpdiff models` lists the kind, the tokenizer and its token limit.
  std::ostringstream out, err;
  client::CommandIo io{out, err};
  ASSERT_TRUE(client::RunModels(*stub_, absl::Seconds(10), io).ok()) << err.str();
  EXPECT_THAT(out.str(), ::testing::HasSubstr("TOKENIZER"));
  EXPECT_THAT(out.str(), ::testing::ContainsRegex("mini-flow +latent +flow:velocity +17 +64x64 .* "
                                                  "sentencepiece +32 +1"));
  EXPECT_THAT(out.str(), ::testing::ContainsRegex("mini-vp-v +latent +vp:v +17"));
}

}  // namespace
}  // namespace tpdiff::worker
