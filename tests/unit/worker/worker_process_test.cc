#include "tpdiff/worker/worker_process.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "tpdiff/media/encoder.h"

namespace tpdiff::worker {
namespace {

// Flags are judged before any model loads, so a bad one fails at start-up naming the flag.
WorkerProcessOptions Options() {
  WorkerProcessOptions o;
  o.device = "cpu";
  o.threads = 1;
  o.models_dir = "/nonexistent-models-dir";
  return o;
}

TEST(WorkerProcessTest, AnExplicitNvencWithoutNvencFailsAtStartNamingTheFlag) {
  absl::StatusOr<media::H264Choice> choice = media::ChooseH264Encoder("auto");
  ASSERT_TRUE(choice.ok()) << choice.status();
  if (choice->encoder == media::H264Encoder::kNvenc) GTEST_SKIP() << "NVENC works here";
  WorkerProcessOptions o = Options();
  o.video_encoder = "h264_nvenc";
  const absl::Status status = RunWorkerProcess(o);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()),
              ::testing::StartsWith("--video-encoder=h264_nvenc: NVENC cannot encode here ("));

  // auto falls back to libx264, says so once, and goes on to load the models.
  o.video_encoder = "auto";
  ::testing::internal::CaptureStderr();
  const absl::Status fallback = RunWorkerProcess(o);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(fallback.code(), absl::StatusCode::kNotFound) << fallback;
  EXPECT_THAT(std::string(fallback.message()), ::testing::HasSubstr("loading models"));
  const std::string note = "--video-encoder=auto: h264_nvenc is not usable here (";
  const size_t first = log.find(note);
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find(note, first + 1), std::string::npos) << log;
  EXPECT_NE(log.find("); MP4 is encoded with libx264\n", first), std::string::npos) << log;
}

TEST(WorkerProcessTest, BadEncoderFlagsAreInvalidArguments) {
  WorkerProcessOptions o = Options();
  o.video_encoder = "x265";
  EXPECT_EQ(RunWorkerProcess(o).message(),
            "--video-encoder: \"x265\" is not one of auto, libx264, h264_nvenc");
  o = Options();
  o.encode_queue_depth = -1;
  EXPECT_EQ(RunWorkerProcess(o).message(), "--encode-queue-depth: -1 is below the minimum of 0");
  o = Options();
  o.job_stall_timeout = absl::Seconds(-1);
  EXPECT_EQ(RunWorkerProcess(o).message(), "--job-stall-timeout: must not be negative");
}

}  // namespace
}  // namespace tpdiff::worker
