#include "tpdiff/worker/job_runner.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "prometheus/registry.h"
#include "recording_sink.h"
#include "tiny_package.h"
#include "tpdiff/common/clock.h"
#include "tpdiff/core/device.h"
#include "tpdiff/media/decoder.h"
#include "tpdiff/media/encoder.h"
#include "tpdiff/worker/metrics.h"
#include "tpdiff/worker/models.h"

namespace tpdiff::worker {
namespace {

namespace api = ::tpdiff::v1;
namespace wv1 = ::tpdiff::worker::v1;
using testing::RecordingSink;

// Holds every job that reaches it until `n` jobs have: only `n` slots running at once get
// all of them there (the wait is bounded so that a bug fails instead of hanging).
class StartGate {
 public:
  explicit StartGate(int n) : n_(n) {}
  void Arrive() {
    absl::MutexLock lock(&mu_);
    ++started_;
    mu_.AwaitWithTimeout(absl::Condition(this, &StartGate::AllArrived), absl::Seconds(60));
  }
  int started() {
    absl::MutexLock lock(&mu_);
    return started_;
  }

 private:
  bool AllArrived() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return started_ >= n_; }
  const int n_;
  absl::Mutex mu_;
  int started_ ABSL_GUARDED_BY(mu_) = 0;
};

// The tiny model, with a hook the test sets that runs before every network call of every
// slot's denoiser: it can record that a job samples, or hold the sampler inside a call.
class HookedModel : public model::LoadedModel {
 public:
  using Hook = std::function<void()>;
  HookedModel(std::unique_ptr<model::LoadedModel> inner, std::shared_ptr<Hook> hook)
      : inner_(std::move(inner)), hook_(std::move(hook)) {}
  const spec::ModelManifest& manifest() const override { return inner_->manifest(); }
  const spec::Tokenizer& tokenizer() const override { return inner_->tokenizer(); }
  torch::Device device() const override { return inner_->device(); }
  std::unique_ptr<core::Denoiser> NewDenoiser() const override {
    return std::make_unique<Denoiser>(inner_->NewDenoiser(), hook_);
  }

 private:
  class Denoiser : public core::Denoiser {
   public:
    Denoiser(std::unique_ptr<core::Denoiser> inner, std::shared_ptr<Hook> hook)
        : inner_(std::move(inner)), hook_(std::move(hook)) {}
    absl::StatusOr<torch::Tensor> Predict(const core::DenoiserInput& input) override {
      if (*hook_) (*hook_)();
      return inner_->Predict(input);
    }

   private:
    std::unique_ptr<core::Denoiser> inner_;
    std::shared_ptr<Hook> hook_;
  };
  std::unique_ptr<model::LoadedModel> inner_;
  std::shared_ptr<Hook> hook_;
};

class JobRunnerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto dir = testing::WriteTinyPackage("tiny");
    ASSERT_TRUE(dir.ok()) << dir.status();
    models_dir_ = new std::string(*dir);
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*models_dir_);
    delete models_dir_;
  }

  std::unique_ptr<JobRunner> MakeRunner(int slots = 1, size_t chunk_bytes = size_t{1} << 20) {
    JobRunnerOptions options;
    options.result_chunk_bytes = chunk_bytes;
    return MakeRunnerWith(options, slots);
  }

  // The tiny model behind hook_; worker_id and metrics are filled in.
  std::unique_ptr<JobRunner> MakeRunnerWith(JobRunnerOptions options, int slots = 1) {
    auto models = LoadModels(*models_dir_, {"tiny"}, torch::kCPU, &metrics_);
    EXPECT_TRUE(models.ok()) << models.status();
    if (!models.ok()) return nullptr;
    models->at("tiny") = std::make_unique<HookedModel>(std::move(models->at("tiny")), hook_);
    options.worker_id = "w1";
    options.metrics = &metrics_;
    return std::make_unique<JobRunner>(*std::move(models), slots, sink_, options);
  }

  // With the stall watchdog on `clock`.
  std::unique_ptr<JobRunner> MakeWatchedRunner(const common::Clock& clock,
                                               absl::Duration timeout) {
    JobRunnerOptions options;
    options.job_stall_timeout = timeout;
    options.clock = &clock;
    return MakeRunnerWith(options);
  }

  // Every job's Started event waits at `gate`.
  void HoldJobsAt(StartGate& gate) {
    sink_.on_emit = [&gate](const wv1::WorkerEvent& e) {
      if (e.event().has_started()) gate.Arrive();
    };
  }

  static wv1::Assign MakeAssign(const std::string& id, std::vector<uint32_t> steps = {2, 2, 2}) {
    wv1::Assign a;
    a.set_job_id(id);
    a.set_attempt(1);
    a.mutable_queue_time()->set_seconds(3);
    api::GenerateRequest* r = a.mutable_request();
    r->set_model("tiny");
    r->set_prompt("a red circle moving left");
    r->set_seed(42);
    r->set_num_frames(16);
    r->set_fps(8);
    r->set_guidance_scale(2.0f);
    for (uint32_t s : steps) r->add_stage_steps(s);
    r->mutable_preview()->set_enabled(true);
    r->mutable_output()->set_format(api::VIDEO_FORMAT_MP4);
    return a;
  }

  static std::string Reassemble(const std::vector<api::JobEvent>& events) {
    std::string bytes;
    for (const auto& e : events) {
      if (!e.has_result_chunk()) continue;
      EXPECT_EQ(e.result_chunk().offset(), bytes.size());
      bytes += e.result_chunk().data();
    }
    return bytes;
  }

  static std::string* models_dir_;
  std::shared_ptr<HookedModel::Hook> hook_ = std::make_shared<HookedModel::Hook>();
  prometheus::Registry registry_;
  WorkerMetrics metrics_{registry_};
  RecordingSink sink_;
};

std::string* JobRunnerTest::models_dir_ = nullptr;

TEST_F(JobRunnerTest, RunsAJobWithProgressPreviewsChunksAndTimings) {
  auto runner = MakeRunner(/*slots=*/1, /*chunk_bytes=*/4096);
  ASSERT_NE(runner, nullptr);
  runner->Assign(MakeAssign("job-1", {2, 3, 2}));
  const std::vector<api::JobEvent> events = sink_.WaitForEnd("job-1");
  ASSERT_FALSE(events.empty());
  ASSERT_TRUE(events.back().has_completed()) << events.back().DebugString();
  ASSERT_TRUE(events.front().has_started());
  EXPECT_EQ(events.front().started().worker_id(), "w1");
  EXPECT_EQ(events.front().started().attempt(), 1u);

  // Progress after every step, in sampling order; a preview closes each stage.
  std::vector<std::string> order;
  for (const auto& e : events) {
    if (e.has_progress()) {
      const auto& p = e.progress();
      EXPECT_EQ(p.stage_count(), 3u);
      order.push_back(absl::StrCat("p", p.stage(), ".", p.step(), "/", p.steps_in_stage(), "@",
                                   p.frames()));
    } else if (e.has_stage_preview()) {
      order.push_back(absl::StrCat("preview", e.stage_preview().stage()));
    }
  }
  EXPECT_THAT(order, ::testing::ElementsAre("p1.1/2@4", "p1.2/2@4", "preview1", "p2.1/3@8",
                                            "p2.2/3@8", "p2.3/3@8", "preview2", "p3.1/2@16",
                                            "p3.2/2@16", "preview3"));

  // Previews: T/4, T/2, T frames at doubling fps, GIFs that decode to what they state.
  int stage = 0;
  const std::vector<int> frames = {4, 8, 16};
  const std::vector<float> fps = {2, 4, 8};
  for (const auto& e : events) {
    if (!e.has_stage_preview()) continue;
    const api::StagePreview& p = e.stage_preview();
    ASSERT_LT(stage, 3);
    EXPECT_EQ(p.stage(), static_cast<uint32_t>(stage + 1));
    EXPECT_EQ(p.frames(), static_cast<uint32_t>(frames[stage]));
    EXPECT_FLOAT_EQ(p.fps(), fps[stage]);
    EXPECT_EQ(p.media().mime(), "image/gif");
    absl::StatusOr<media::Video> decoded = media::DecodeVideo(p.media().data());
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->frames, frames[stage]);
    EXPECT_EQ(decoded->width, static_cast<int>(p.width()));
    EXPECT_EQ(decoded->height, static_cast<int>(p.height()));
    EXPECT_GE(p.width(), 32u);
    ++stage;
  }
  EXPECT_EQ(stage, 3);

  // The result: chunks under the limit, contiguous, the last one flagged; an MP4 of T frames.
  int chunks = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    if (!events[i].has_result_chunk()) continue;
    ++chunks;
    EXPECT_LE(events[i].result_chunk().data().size(), 4096u);
    EXPECT_EQ(events[i].result_chunk().mime(), "video/mp4");
    EXPECT_EQ(events[i].result_chunk().last(), i + 2 == events.size());
  }
  EXPECT_GT(chunks, 1);
  const std::string mp4 = Reassemble(events);
  absl::StatusOr<media::Video> video = media::DecodeVideo(mp4);
  ASSERT_TRUE(video.ok()) << video.status();
  EXPECT_EQ(video->frames, 16);
  EXPECT_NEAR(video->fps, 8.0, 0.01);

  const api::Completed& done = events.back().completed();
  EXPECT_EQ(done.result_bytes(), mp4.size());
  ASSERT_EQ(done.timings().stage_seconds_size(), 3);
  double stages = 0;
  for (double s : done.timings().stage_seconds()) {
    EXPECT_GT(s, 0);
    stages += s;
  }
  EXPECT_GE(done.timings().queue_seconds(), 3.0);
  EXPECT_GT(done.timings().encode_seconds(), 0);
  // Preview encodes overlap the next stage's sampling, so only the sampling is a lower bound.
  EXPECT_GE(done.timings().total_seconds(), done.timings().queue_seconds() + stages - 1e-6);
}

TEST_F(JobRunnerTest, DefaultChunksStayUnderOneMebibyte) {
  EXPECT_EQ(JobRunnerOptions{}.result_chunk_bytes, size_t{1} << 20);
}

TEST_F(JobRunnerTest, VanillaRunsOneFullRateStageWithAllTheSteps) {
  auto runner = MakeRunner();
  ASSERT_NE(runner, nullptr);
  wv1::Assign a = MakeAssign("vanilla", {1, 2, 1});
  a.mutable_request()->set_sampler(api::SAMPLER_VANILLA);
  a.mutable_request()->mutable_output()->set_format(api::VIDEO_FORMAT_GIF);
  runner->Assign(a);
  const auto events = sink_.WaitForEnd("vanilla");
  ASSERT_TRUE(events.back().has_completed()) << events.back().DebugString();
  int progress = 0, previews = 0;
  for (const auto& e : events) {
    if (e.has_progress()) {
      ++progress;
      EXPECT_EQ(e.progress().stage_count(), 1u);
      EXPECT_EQ(e.progress().steps_in_stage(), 4u);
      EXPECT_EQ(e.progress().frames(), 16u);
    }
    if (e.has_stage_preview()) {
      ++previews;
      EXPECT_EQ(e.stage_preview().frames(), 16u);
      EXPECT_FLOAT_EQ(e.stage_preview().fps(), 8);
    }
  }
  EXPECT_EQ(progress, 4);
  EXPECT_EQ(previews, 1);
  EXPECT_EQ(events.back().completed().timings().stage_seconds_size(), 1);
  absl::StatusOr<media::Video> gif = media::DecodeVideo(Reassemble(events));
  ASSERT_TRUE(gif.ok()) << gif.status();
  EXPECT_EQ(gif->frames, 16);
}

TEST_F(JobRunnerTest, SameSeedSameVideoAndTheNegativePromptChangesIt) {
  auto runner = MakeRunner();
  ASSERT_NE(runner, nullptr);
  wv1::Assign plain = MakeAssign("plain", {1, 1, 1});
  plain.mutable_request()->mutable_preview()->set_enabled(false);
  plain.mutable_request()->mutable_output()->set_format(api::VIDEO_FORMAT_PNG_FRAMES);
  wv1::Assign again = plain;
  again.set_job_id("again");
  wv1::Assign negative = plain;
  negative.set_job_id("negative");
  negative.mutable_request()->set_negative_prompt("blue square");
  for (const auto* a : {&plain, &again, &negative}) runner->Assign(*a);
  const auto p = sink_.WaitForEnd("plain");
  const auto g = sink_.WaitForEnd("again");
  const auto n = sink_.WaitForEnd("negative");
  for (const auto* events : {&p, &g, &n}) {
    ASSERT_TRUE(events->back().has_completed()) << events->back().DebugString();
    for (const auto& e : *events) EXPECT_FALSE(e.has_stage_preview());  // previews off
  }
  const std::string plain_zip = Reassemble(p);
  EXPECT_EQ(plain_zip, Reassemble(g));
  EXPECT_NE(plain_zip, Reassemble(n));
  auto frames = media::DecodePngFrames(plain_zip);
  ASSERT_TRUE(frames.ok()) << frames.status();
  EXPECT_EQ(frames->frames, 16);
}

TEST_F(JobRunnerTest, BadInputFailsWithTheFieldNamedAndIsNotRetryable) {
  auto runner = MakeRunner();
  ASSERT_NE(runner, nullptr);
  wv1::Assign words = MakeAssign("words");
  words.mutable_request()->set_prompt("a purple dragon");
  wv1::Assign frames = MakeAssign("frames");
  frames.mutable_request()->set_num_frames(40);
  wv1::Assign model = MakeAssign("model");
  model.mutable_request()->set_model("elsewhere");
  // The front's limits (spec::ValidateAndFill), which the worker applies too.
  wv1::Assign steps = MakeAssign("steps", {4, 101, 4});
  for (const auto* a : {&words, &frames, &model, &steps}) runner->Assign(*a);

  auto last = [&](const std::string& id) { return sink_.WaitForEnd(id).back(); };
  const api::JobEvent w = last("words");
  ASSERT_TRUE(w.has_failed());
  EXPECT_EQ(w.failed().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(w.failed().message(),
              ::testing::HasSubstr("prompt: words not in the vocabulary of model \""));
  EXPECT_THAT(w.failed().message(), ::testing::HasSubstr("purple, dragon"));
  EXPECT_FALSE(w.failed().retryable());
  const api::JobEvent f = last("frames");
  ASSERT_TRUE(f.has_failed());
  EXPECT_EQ(f.failed().message(), "num_frames: 40 exceeds the model's maximum of 16");
  EXPECT_FALSE(f.failed().retryable());
  const api::JobEvent s = last("steps");
  ASSERT_TRUE(s.has_failed());
  EXPECT_EQ(s.failed().message(), "stage_steps[1]: 101 is outside 1..100");
  const api::JobEvent m = last("model");
  ASSERT_TRUE(m.has_failed());
  EXPECT_EQ(m.failed().code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(m.failed().retryable());  // another worker may serve it
}

TEST_F(JobRunnerTest, CancelStopsWithinOneStepAndTheSlotTakesTheNextJob) {
  auto runner = MakeRunner();
  ASSERT_NE(runner, nullptr);
  absl::Notification at_first_step, release;
  sink_.on_emit = [&](const wv1::WorkerEvent& e) {
    if (e.job_id() == "long" && e.event().has_progress() && !at_first_step.HasBeenNotified()) {
      at_first_step.Notify();
      release.WaitForNotification();  // hold the sampler right after step 1
    }
  };
  runner->Assign(MakeAssign("long", {20, 20, 20}));
  runner->Assign(MakeAssign("next", {1, 1, 1}));
  at_first_step.WaitForNotification();
  const JobRunner::Load busy = runner->CurrentLoad();
  EXPECT_THAT(busy.running_job_ids, ::testing::UnorderedElementsAre("long", "next"));
  EXPECT_EQ(busy.free_slots, 0u);
  runner->Cancel("long", "client");
  release.Notify();

  const auto events = sink_.WaitForEnd("long");
  ASSERT_TRUE(events.back().has_cancelled()) << events.back().DebugString();
  EXPECT_EQ(events.back().cancelled().source(), "client");
  int progress = 0;
  for (const auto& e : events) progress += e.has_progress() ? 1 : 0;
  EXPECT_EQ(progress, 1);  // the token is checked before the next network call

  const auto next = sink_.WaitForEnd("next");
  ASSERT_TRUE(next.back().has_completed()) << next.back().DebugString();
  ASSERT_TRUE(runner->WaitIdle(absl::Seconds(60)));
  EXPECT_EQ(runner->CurrentLoad().free_slots, 1u);
}

TEST_F(JobRunnerTest, CancellingAQueuedJobReportsItWithoutRunningIt) {
  auto runner = MakeRunner();
  ASSERT_NE(runner, nullptr);
  absl::Notification started, release;
  sink_.on_emit = [&](const wv1::WorkerEvent& e) {
    if (e.job_id() == "first" && e.event().has_started()) {
      started.Notify();
      release.WaitForNotification();
    }
  };
  runner->Assign(MakeAssign("first", {1, 1, 1}));
  runner->Assign(MakeAssign("queued", {1, 1, 1}));
  started.WaitForNotification();
  runner->Cancel("queued", "deadline");
  release.Notify();
  const auto queued = sink_.WaitForEnd("queued");
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued[0].cancelled().source(), "deadline");
  EXPECT_TRUE(sink_.WaitForEnd("first").back().has_completed());
}

TEST_F(JobRunnerTest, DuplicateAssignIsIgnored) {
  auto runner = MakeRunner();
  ASSERT_NE(runner, nullptr);
  absl::Notification started, release;
  sink_.on_emit = [&](const wv1::WorkerEvent& e) {
    if (e.event().has_started() && !started.HasBeenNotified()) {
      started.Notify();
      release.WaitForNotification();
    }
  };
  const wv1::Assign a = MakeAssign("dup", {1, 1, 1});
  runner->Assign(a);
  started.WaitForNotification();
  runner->Assign(a);  // redelivered while running
  release.Notify();
  ASSERT_TRUE(sink_.WaitForEnd("dup").back().has_completed());
  ASSERT_TRUE(runner->WaitIdle(absl::Seconds(60)));
  int started_events = 0;
  for (const auto& e : sink_.Events("dup")) started_events += e.has_started() ? 1 : 0;
  EXPECT_EQ(started_events, 1);
}

TEST_F(JobRunnerTest, AbandonedJobsStopSilently) {
  auto runner = MakeRunner();
  ASSERT_NE(runner, nullptr);
  absl::Notification at_step, release;
  sink_.on_emit = [&](const wv1::WorkerEvent& e) {
    if (e.event().has_progress() && !at_step.HasBeenNotified()) {
      at_step.Notify();
      release.WaitForNotification();
    }
  };
  runner->Assign(MakeAssign("lost", {20, 20, 20}));
  at_step.WaitForNotification();
  runner->AbandonAll();
  release.Notify();
  ASSERT_TRUE(runner->WaitIdle(absl::Seconds(60)));
  // Started and the one progress event that was already on its way; nothing after.
  const auto events = sink_.Events("lost");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_TRUE(events[1].has_progress());
}

TEST_F(JobRunnerTest, DrainingRejectsNewJobsAsRetryable) {
  auto runner = MakeRunner();
  ASSERT_NE(runner, nullptr);
  runner->Drain();
  EXPECT_TRUE(runner->draining());
  runner->Assign(MakeAssign("late"));
  const auto events = sink_.WaitForEnd("late");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].failed().code(), static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(events[0].failed().retryable());
  EXPECT_EQ(runner->CurrentLoad().free_slots, 0u);
}

TEST_F(JobRunnerTest, TwoSlotsRunTwoJobsAtOnce) {
  auto runner = MakeRunner(/*slots=*/2);
  ASSERT_NE(runner, nullptr);
  EXPECT_EQ(runner->CurrentLoad().free_slots, 2u);
  StartGate gate(2);
  HoldJobsAt(gate);
  runner->Assign(MakeAssign("x", {1, 1, 1}));
  runner->Assign(MakeAssign("y", {1, 1, 1}));
  EXPECT_TRUE(sink_.WaitForEnd("x").back().has_completed());
  EXPECT_TRUE(sink_.WaitForEnd("y").back().has_completed());
  EXPECT_EQ(gate.started(), 2);
}

TEST_F(JobRunnerTest, SlotsSharingOneModelSampleWhatOneSlotSamples) {
  // Four jobs (different seeds and captions) one after another on one slot, then at once on
  // four slots over one loaded copy of the model: the same videos, byte for byte.
  constexpr int kJobs = 4;
  auto job = [](const std::string& id, int i) {
    wv1::Assign a = MakeAssign(id, {1, 1, 1});
    a.mutable_request()->set_seed(10 + i);
    a.mutable_request()->set_prompt(i % 2 == 0 ? "a red circle moving left"
                                               : "a blue square moving up");
    a.mutable_request()->mutable_preview()->set_enabled(false);
    a.mutable_request()->mutable_output()->set_format(api::VIDEO_FORMAT_PNG_FRAMES);
    return a;
  };
  std::vector<std::string> one_slot;
  {
    auto runner = MakeRunner(/*slots=*/1);
    ASSERT_NE(runner, nullptr);
    for (int i = 0; i < kJobs; ++i) {
      const std::string id = "one-" + std::to_string(i);
      runner->Assign(job(id, i));
      const auto events = sink_.WaitForEnd(id);
      ASSERT_TRUE(events.back().has_completed()) << events.back().DebugString();
      one_slot.push_back(Reassemble(events));
    }
  }
  EXPECT_NE(one_slot[0], one_slot[1]);

  auto runner = MakeRunner(/*slots=*/kJobs);
  ASSERT_NE(runner, nullptr);
  StartGate gate(kJobs);  // all four sample at once
  HoldJobsAt(gate);
  for (int i = 0; i < kJobs; ++i) runner->Assign(job("four-" + std::to_string(i), i));
  for (int i = 0; i < kJobs; ++i) {
    const auto events = sink_.WaitForEnd("four-" + std::to_string(i));
    ASSERT_TRUE(events.back().has_completed()) << events.back().DebugString();
    EXPECT_EQ(Reassemble(events), one_slot[i]) << "job " << i;
  }
  EXPECT_EQ(gate.started(), kJobs);
}

TEST_F(JobRunnerTest, MetricsRecordStepsPerStageAndEncodesPerFormat) {
  auto runner = MakeRunner();
  ASSERT_NE(runner, nullptr);
  runner->Assign(MakeAssign("m", {1, 2, 1}));
  ASSERT_TRUE(sink_.WaitForEnd("m").back().has_completed());
  std::map<std::string, uint64_t> counts;
  for (const auto& family : registry_.Collect()) {
    for (const auto& metric : family.metric) {
      std::string key = family.name;
      for (const auto& label : metric.label) key += "{" + label.name + "=" + label.value + "}";
      counts[key] = metric.histogram.sample_count;
    }
  }
  EXPECT_EQ(counts["tpdiff_worker_step_seconds{stage=1}"], 1u);
  EXPECT_EQ(counts["tpdiff_worker_step_seconds{stage=2}"], 2u);
  EXPECT_EQ(counts["tpdiff_worker_step_seconds{stage=3}"], 1u);
  EXPECT_EQ(counts["tpdiff_worker_encode_seconds{format=gif}"], 3u);
  EXPECT_EQ(counts["tpdiff_worker_encode_seconds{format=mp4}"], 1u);
  EXPECT_GE(counts["tpdiff_worker_model_load_seconds"], 1u);
}

// Encoding on each slot's encoder thread changes neither what a job sends nor its order: the
// same events, previews and MP4 byte for byte as encoding inline on the sampling thread.
TEST_F(JobRunnerTest, EncoderThreadSendsWhatInlineEncodingSendsInTheSameOrder) {
  auto run = [&](int depth, const std::string& id) {
    JobRunnerOptions options;
    options.encode_queue_depth = depth;
    options.result_chunk_bytes = 4096;
    auto runner = MakeRunnerWith(options);
    EXPECT_NE(runner, nullptr);
    if (runner == nullptr) return std::vector<api::JobEvent>{};
    runner->Assign(MakeAssign(id, {2, 3, 2}));
    return sink_.WaitForEnd(id);
  };
  const std::vector<api::JobEvent> inline_events = run(0, "inline");
  const std::vector<api::JobEvent> queued_events = run(2, "queued");
  ASSERT_EQ(inline_events.size(), queued_events.size());
  ASSERT_TRUE(queued_events.back().has_completed()) << queued_events.back().DebugString();
  for (size_t i = 0; i + 1 < inline_events.size(); ++i) {
    api::JobEvent a = inline_events[i], b = queued_events[i];
    a.clear_job_id();
    b.clear_job_id();
    EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString()) << "event " << i << ":\n"
                                                            << a.DebugString() << b.DebugString();
  }
  EXPECT_FALSE(Reassemble(queued_events).empty());
  EXPECT_EQ(Reassemble(inline_events), Reassemble(queued_events));
}

// Once a job has sampled, its slot takes the next job while the result is encoded and sent;
// cancelling the job then stops it before its result goes out.
TEST_F(JobRunnerTest, CancelWhileTheResultEncodeIsPendingAndTheSlotSamplesTheNextJob) {
  auto runner = MakeRunner();
  ASSERT_NE(runner, nullptr);
  absl::Notification at_last_preview, release, next_samples;
  sink_.on_emit = [&](const wv1::WorkerEvent& e) {
    if (e.job_id() == "first" && e.event().has_stage_preview() &&
        e.event().stage_preview().stage() == 3) {
      at_last_preview.Notify();
      release.WaitForNotification();  // holds the slot's encoder thread
    }
  };
  absl::Mutex mu;
  bool second_assigned = false;
  *hook_ = [&] {
    absl::MutexLock lock(&mu);
    if (second_assigned && !next_samples.HasBeenNotified()) next_samples.Notify();
  };
  runner->Assign(MakeAssign("first", {1, 1, 1}));
  at_last_preview.WaitForNotification();
  {
    absl::MutexLock lock(&mu);
    second_assigned = true;
  }
  runner->Assign(MakeAssign("second", {1, 1, 1}));
  // "first" has sampled and its MP4 waits behind the held preview; "second" samples.
  next_samples.WaitForNotification();
  const JobRunner::Load load = runner->CurrentLoad();
  EXPECT_THAT(load.running_job_ids, ::testing::UnorderedElementsAre("first", "second"));
  runner->Cancel("first", "client");
  release.Notify();

  const auto first = sink_.WaitForEnd("first");
  ASSERT_TRUE(first.back().has_cancelled()) << first.back().DebugString();
  EXPECT_EQ(first.back().cancelled().source(), "client");
  for (const auto& e : first) EXPECT_FALSE(e.has_result_chunk());
  EXPECT_TRUE(sink_.WaitForEnd("second").back().has_completed());
  ASSERT_TRUE(runner->WaitIdle(absl::Seconds(60)));
  EXPECT_TRUE(runner->CurrentLoad().running_job_ids.empty());
}

// An encoder that cannot encode (NVENC on a machine without one) fails the job with the
// encoder's status, for a preview (and sampling stops) as for the result.
TEST_F(JobRunnerTest, EncoderErrorsFailTheJobWithTheEncodersStatus) {
  absl::StatusOr<media::H264Choice> choice = media::ChooseH264Encoder("auto");
  ASSERT_TRUE(choice.ok()) << choice.status();
  if (choice->encoder == media::H264Encoder::kNvenc) GTEST_SKIP() << "NVENC works here";
  JobRunnerOptions options;
  options.h264_encoder = media::H264Encoder::kNvenc;
  auto runner = MakeRunnerWith(options);
  ASSERT_NE(runner, nullptr);
  wv1::Assign preview = MakeAssign("preview", {2, 2, 2});
  preview.mutable_request()->mutable_preview()->set_format(api::VIDEO_FORMAT_MP4);
  wv1::Assign result = MakeAssign("result", {1, 1, 1});  // GIF previews, MP4 result
  runner->Assign(preview);
  runner->Assign(result);

  const auto p = sink_.WaitForEnd("preview");
  ASSERT_TRUE(p.back().has_failed()) << p.back().DebugString();
  EXPECT_THAT(p.back().failed().message(),
              ::testing::StartsWith("preview of stage 1: opening the h264_nvenc encoder"));
  EXPECT_EQ(p.back().failed().code(), static_cast<int>(absl::StatusCode::kInternal));
  int progress = 0;
  for (const auto& e : p) {
    progress += e.has_progress() ? 1 : 0;
    EXPECT_FALSE(e.has_stage_preview());
  }
  EXPECT_LT(progress, 6);  // sampling stopped after the failed encode

  const auto r = sink_.WaitForEnd("result");
  ASSERT_TRUE(r.back().has_failed()) << r.back().DebugString();
  EXPECT_THAT(r.back().failed().message(),
              ::testing::StartsWith("opening the h264_nvenc encoder"));
  int previews = 0;
  for (const auto& e : r) {
    previews += e.has_stage_preview() ? 1 : 0;
    EXPECT_FALSE(e.has_result_chunk());
  }
  EXPECT_EQ(previews, 3);
}

// A sampler stuck in a network call: after job_stall_timeout without a step the job fails
// with DEADLINE_EXCEEDED, leaves the load (no more lease renewals) and a fresh slot runs the
// next job; the stuck call's return later sends nothing.
TEST_F(JobRunnerTest, WatchdogFailsAStalledJobAndFreesItsSlot) {
  common::FakeClock clock;
  auto runner = MakeWatchedRunner(clock, absl::Seconds(300));
  ASSERT_NE(runner, nullptr);
  absl::Notification in_call, unblock;
  absl::Mutex mu;
  int calls = 0;
  *hook_ = [&] {
    {
      absl::MutexLock lock(&mu);
      if (++calls != 3) return;  // the first step of stage 2: one call per step, 2 steps before
    }
    in_call.Notify();
    unblock.WaitForNotification();
  };
  const absl::Time start = clock.Now();
  runner->Assign(MakeAssign("stuck", {2, 2, 2}));
  in_call.WaitForNotification();
  // The watchdog waits for the deadline of the last step (stage 1 ended at `start`).
  ASSERT_TRUE(clock.AwaitWaiter(start + absl::Seconds(300), absl::Seconds(60)));
  clock.Advance(absl::Seconds(299));
  EXPECT_THAT(runner->CurrentLoad().running_job_ids, ::testing::ElementsAre("stuck"));
  clock.Advance(absl::Seconds(1));

  const auto events = sink_.WaitForEnd("stuck");
  ASSERT_TRUE(events.back().has_failed()) << events.back().DebugString();
  EXPECT_EQ(events.back().failed().code(), static_cast<int>(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(events.back().failed().message(),
            "worker: no sampler progress for 300s at stage 2 step 1");
  EXPECT_TRUE(runner->CurrentLoad().running_job_ids.empty());
  EXPECT_EQ(runner->CurrentLoad().free_slots, 1u);

  runner->Assign(MakeAssign("after", {1, 1, 1}));
  EXPECT_TRUE(sink_.WaitForEnd("after").back().has_completed());
  unblock.Notify();
  runner->Shutdown();  // joins the released thread
  EXPECT_EQ(sink_.Events("stuck").size(), events.size());
}

TEST_F(JobRunnerTest, WatchdogLeavesJobsThatStepAlone) {
  common::FakeClock clock;
  auto runner = MakeWatchedRunner(clock, absl::Seconds(10));
  ASSERT_NE(runner, nullptr);
  // Every network call takes 6 s of fake time: no gap between steps reaches 10 s.
  *hook_ = [&] { clock.Advance(absl::Seconds(6)); };
  runner->Assign(MakeAssign("steady", {3, 3, 3}));
  EXPECT_TRUE(sink_.WaitForEnd("steady").back().has_completed());
}

TEST(ModelsTest, ListsPackagesAndDescribesThem) {
  auto dir = testing::WriteTinyPackage("tiny");
  ASSERT_TRUE(dir.ok()) << dir.status();
  auto names = ListModelPackages(*dir);
  ASSERT_TRUE(names.ok());
  EXPECT_THAT(*names, ::testing::ElementsAre("tiny"));
  auto models = LoadModels(*dir, *names, torch::kCPU, nullptr);
  ASSERT_TRUE(models.ok()) << models.status();
  const api::ModelInfo info = ToModelInfo(*models->at("tiny"));
  EXPECT_EQ(info.name(), "tiny");
  EXPECT_EQ(info.kind(), "builtin");
  EXPECT_EQ(info.parameterization(), "flow_matching");
  EXPECT_EQ(info.frames(), 16u);
  EXPECT_EQ(info.height(), 32u);
  EXPECT_EQ(info.fps(), 8u);
  EXPECT_EQ(info.default_stage_steps_size(), 3);
  EXPECT_THAT(info.vocabulary(), ::testing::Contains("circle"));
  EXPECT_EQ(LoadModels(*dir, {"missing"}, torch::kCPU, nullptr).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ListModelPackages(*dir + "/nope").status().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove_all(*dir);
}

TEST(ModelsTest, ParsesDevices) {
  EXPECT_EQ(core::ResolveDevice("cpu")->type(), torch::kCPU);
  EXPECT_TRUE(core::ResolveDevice("auto").ok());
  EXPECT_EQ(core::ResolveDevice("tpu").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DeviceName(torch::Device(torch::kCUDA, 1)), "cuda:1");
  EXPECT_EQ(DeviceName(torch::kCPU), "cpu");
}

TEST(RetryableTest, BadInputIsFinalAndCapacityProblemsAreRetried) {
  EXPECT_FALSE(IsRetryable(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(IsRetryable(absl::StatusCode::kCancelled));
  EXPECT_TRUE(IsRetryable(absl::StatusCode::kResourceExhausted));
  EXPECT_TRUE(IsRetryable(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace tpdiff::worker
