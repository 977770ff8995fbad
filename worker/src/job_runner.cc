#include "tpdiff/worker/job_runner.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "tpdiff/common/proto_time.h"
#include "tpdiff/core/cancellation.h"
#include "tpdiff/core/device_timer.h"
#include "tpdiff/core/sampler.h"
#include "tpdiff/core/schedule.h"
#include "tpdiff/core/stage_plan.h"
#include "tpdiff/core/torch_status.h"
#include "tpdiff/media/encoder.h"
#include "tpdiff/model/latent_job.h"
#include "tpdiff/spec/limits.h"
#include "tpdiff/spec/request.h"
#include "tpdiff/worker/frames.h"

namespace tpdiff::worker {

namespace api = ::tpdiff::v1;
using SteadyClock = std::chrono::steady_clock;

namespace {

double SecondsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

media::OutputFormat ToMediaFormat(api::VideoFormat format, media::OutputFormat fallback) {
  switch (format) {
    case api::VIDEO_FORMAT_MP4:
      return media::OutputFormat::kMp4;
    case api::VIDEO_FORMAT_WEBM:
      return media::OutputFormat::kWebm;
    case api::VIDEO_FORMAT_GIF:
      return media::OutputFormat::kGif;
    case api::VIDEO_FORMAT_PNG_FRAMES:
      return media::OutputFormat::kPngFrames;
    default:
      return fallback;
  }
}

// The request as this worker runs it: the front fills defaults in, but a worker must not
// depend on that to stay inside its model's limits, so it runs the same spec::ValidateAndFill.
struct ResolvedRequest {
  model::LoadedModel* model = nullptr;
  api::GenerateRequest request;  // every default filled in
  std::vector<int> stage_steps;
  torch::Tensor tokens;
  torch::Tensor negative_tokens;
};

absl::StatusOr<ResolvedRequest> Resolve(ModelSet& models, const api::GenerateRequest& req) {
  ResolvedRequest out;
  if (req.model().empty() && models.size() == 1) {
    out.model = models.begin()->second.get();
  } else {
    auto it = models.find(req.model());
    if (it == models.end()) {
      // Another worker may have it: the front should only assign announced models.
      return absl::FailedPreconditionError(absl::StrCat(
          "model: \"", spec::EchoForMessage(req.model()), "\" is not loaded on this worker"));
    }
    out.model = it->second.get();
  }
  const spec::Tokenizer& tokenizer = out.model->tokenizer();
  // A zero seed has been replaced by the front; one sent straight to a worker gets seed 1.
  absl::StatusOr<api::GenerateRequest> filled =
      spec::ValidateAndFill(req, out.model->manifest(), tokenizer, /*random_seed=*/1);
  if (!filled.ok()) return filled.status();
  out.request = *std::move(filled);
  out.stage_steps.assign(out.request.stage_steps().begin(), out.request.stage_steps().end());
  // A latent job tokenizes with the mask as its text encoder takes it (model::SampleLatentJob).
  if (out.model->latent_modules() != nullptr) return out;

  absl::StatusOr<std::vector<int64_t>> ids = tokenizer.Encode(out.request.prompt());
  if (!ids.ok()) return ids.status();
  out.tokens = torch::tensor(*ids, torch::kLong).unsqueeze(0);
  if (!out.request.negative_prompt().empty()) {
    absl::StatusOr<std::vector<int64_t>> neg = tokenizer.Encode(out.request.negative_prompt());
    if (!neg.ok()) {
      return absl::Status(neg.status().code(),
                          absl::StrCat("negative_", neg.status().message()));
    }
    out.negative_tokens = torch::tensor(*neg, torch::kLong).unsqueeze(0);
  }
  return out;
}

absl::StatusOr<core::StagePlan> MakePlan(const ResolvedRequest& r) {
  const api::GenerateRequest& req = r.request;
  const spec::ModelManifest& m = r.model->manifest();
  const core::NoiseSchedule schedule(m.parameterization);
  if (req.sampler() == api::SAMPLER_VANILLA) {
    const int total = std::accumulate(r.stage_steps.begin(), r.stage_steps.end(), 0);
    return core::StagePlan::Vanilla(schedule, static_cast<int>(req.num_frames()), total);
  }
  core::StagePlanOptions o;
  o.num_frames = static_cast<int>(req.num_frames());
  o.num_stages = static_cast<int>(r.stage_steps.size());
  o.steps_per_stage = r.stage_steps;
  // The manifest's boundaries are what the model was trained with, for its stage count.
  if (o.num_stages == m.stages) o.boundaries = m.boundaries;
  absl::StatusOr<core::StagePlan> plan = core::StagePlan::Create(schedule, o);
  if (!plan.ok()) {
    return absl::Status(plan.status().code(),
                        absl::StrCat("stage_steps: ", plan.status().message()));
  }
  return plan;
}

}  // namespace

bool IsRetryable(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kFailedPrecondition:
      return true;
    default:
      return false;
  }
}

struct JobRunner::Job {
  tpdiff::worker::v1::Assign assign;
  SteadyClock::time_point received = SteadyClock::now();
  core::CancellationToken token;
  // Set under the runner's mu_ before token.Cancel(); read by the slot after sampling stops.
  std::string cancel_source;
  std::atomic<bool> abandoned{false};  // stop silently: the front re-queues the job
  std::atomic<bool> stalled{false};    // the watchdog failed it; its slot thread is abandoned

  // The watchdog's view, under the runner's mu_: when the sampler last reported a step, and
  // the step it is computing now.
  absl::Time last_progress;
  int stage = 1;
  int step = 1;

  // Serialises emission so that nothing follows the terminal event, whichever thread (the
  // encoder, the watchdog, Cancel) sends it.
  absl::Mutex report_mu;
  bool ended ABSL_GUARDED_BY(report_mu) = false;

  // Used by the slot's encoder thread only (or the slot thread when encoding inline).
  absl::Status encode_error;
  double encode_seconds = 0;
};

struct JobRunner::Slot {
  // This slot's denoiser of each model of models_; used by the slot's thread only.
  std::map<const model::LoadedModel*, std::unique_ptr<core::Denoiser>> denoisers;
  std::unique_ptr<EncodeQueue> encoder;  // the slot's encodes and event emission, in order
  std::shared_ptr<Job> current;          // guarded by the runner's mu_
  bool retired = false;                  // guarded by the runner's mu_
  absl::Notification exited;             // the slot thread returned
  std::thread thread;
};

JobRunner::JobRunner(ModelSet models, int slots, EventSink& sink, JobRunnerOptions options)
    : sink_(sink),
      options_(std::move(options)),
      own_clock_(options_.clock == nullptr ? std::make_unique<common::RealClock>() : nullptr),
      clock_(options_.clock != nullptr ? *options_.clock : *own_clock_),
      models_(std::move(models)) {
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < std::max(slots, 1); ++i) slots_.push_back(NewSlot());
  for (auto& slot : slots_) StartSlot(slot.get());
  if (options_.job_stall_timeout > absl::ZeroDuration()) {
    watchdog_ = std::thread([this] { WatchdogLoop(); });
  }
}

JobRunner::~JobRunner() { Shutdown(); }

std::unique_ptr<JobRunner::Slot> JobRunner::NewSlot() const {
  auto slot = std::make_unique<Slot>();
  for (const auto& [name, model] : models_) slot->denoisers[model.get()] = model->NewDenoiser();
  slot->encoder = std::make_unique<EncodeQueue>(options_.encode_queue_depth);
  return slot;
}

void JobRunner::StartSlot(Slot* slot) {
  slot->thread = std::thread([this, slot] {
    SlotLoop(slot);
    slot->exited.Notify();
  });
}

int JobRunner::slots() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(slots_.size());
}

void JobRunner::Report(Job& job, api::JobEvent event, bool terminal) {
  absl::MutexLock lock(&job.report_mu);
  if (job.ended || job.abandoned.load(std::memory_order_acquire)) return;
  // A cancelled job says nothing more until its terminal event.
  if (!terminal && job.token.cancelled()) return;
  if (terminal) job.ended = true;
  tpdiff::worker::v1::WorkerEvent out;
  out.set_job_id(job.assign.job_id());
  out.set_attempt(job.assign.attempt());
  event.set_job_id(job.assign.job_id());
  *out.mutable_event() = std::move(event);
  sink_.Emit(std::move(out));
}

void JobRunner::ReportFailed(Job& job, const absl::Status& status) {
  api::JobEvent event;
  auto* failed = event.mutable_failed();
  failed->set_code(static_cast<int>(status.code()));
  failed->set_message(std::string(status.message()));
  failed->set_retryable(IsRetryable(status.code()));
  Report(job, std::move(event), /*terminal=*/true);
}

void JobRunner::Assign(const tpdiff::worker::v1::Assign& assign) {
  auto job = std::make_shared<Job>();
  job->assign = assign;
  bool rejected = false;
  {
    absl::MutexLock lock(&mu_);
    auto same = [&](const std::shared_ptr<Job>& j) {
      return j != nullptr && j->assign.job_id() == assign.job_id() &&
             j->assign.attempt() == assign.attempt();
    };
    if (std::any_of(pending_.begin(), pending_.end(), same)) return;
    if (std::any_of(finishing_.begin(), finishing_.end(), same)) return;
    for (const auto& slot : slots_) {
      if (same(slot->current)) return;
    }
    if (draining_ || stopping_) {
      rejected = true;
    } else {
      pending_.push_back(job);
    }
  }
  if (rejected) {
    ReportFailed(*job, absl::UnavailableError("worker is draining and takes no new jobs"));
  }
}

void JobRunner::Cancel(const std::string& job_id, const std::string& source) {
  std::vector<std::shared_ptr<Job>> dropped;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if ((*it)->assign.job_id() == job_id) {
        dropped.push_back(*it);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    auto cancel = [&](const std::shared_ptr<Job>& job) {
      if (job != nullptr && job->assign.job_id() == job_id) {
        job->cancel_source = source;
        job->token.Cancel();
      }
    };
    for (const auto& slot : slots_) cancel(slot->current);
    for (const auto& job : finishing_) cancel(job);  // its result may still be encoding
  }
  for (const auto& job : dropped) {
    api::JobEvent event;
    event.mutable_cancelled()->set_source(source);
    Report(*job, std::move(event), /*terminal=*/true);
  }
}

void JobRunner::AbandonAll() {
  absl::MutexLock lock(&mu_);
  auto abandon = [](const std::shared_ptr<Job>& job) {
    if (job == nullptr) return;
    job->abandoned.store(true, std::memory_order_release);
    job->token.Cancel();
  };
  for (const auto& job : pending_) abandon(job);
  pending_.clear();
  for (const auto& slot : slots_) abandon(slot->current);
  for (const auto& job : finishing_) abandon(job);
}

void JobRunner::Drain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

bool JobRunner::draining() const {
  absl::MutexLock lock(&mu_);
  return draining_;
}

bool JobRunner::IdleLocked() const {
  if (!pending_.empty() || !finishing_.empty()) return false;
  return std::all_of(slots_.begin(), slots_.end(),
                     [](const auto& s) { return s->current == nullptr; });
}

bool JobRunner::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(this, &JobRunner::IdleLocked), timeout);
}

JobRunner::Load JobRunner::CurrentLoad() const {
  absl::MutexLock lock(&mu_);
  Load load;
  int busy = 0;
  for (const auto& slot : slots_) {
    if (slot->current != nullptr) {
      load.running_job_ids.push_back(slot->current->assign.job_id());
      ++busy;
    }
  }
  for (const auto& job : finishing_) load.running_job_ids.push_back(job->assign.job_id());
  for (const auto& job : pending_) load.running_job_ids.push_back(job->assign.job_id());
  const int free = static_cast<int>(slots_.size()) - busy - static_cast<int>(pending_.size());
  load.free_slots = (draining_ || stopping_) ? 0 : static_cast<uint32_t>(std::max(free, 0));
  return load;
}

void JobRunner::Shutdown() {
  absl::MutexLock join_lock(&join_mu_);
  if (joined_) return;
  AbandonAll();
  std::vector<Slot*> slots, retired;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& slot : slots_) slots.push_back(slot.get());
    for (auto& slot : retired_) retired.push_back(slot.get());
  }
  if (watchdog_.joinable()) watchdog_.join();
  for (Slot* slot : slots) {
    if (slot->thread.joinable()) slot->thread.join();
  }
  // A retired slot's thread is stuck in a network call that may never return; it cannot be
  // interrupted, so after a grace period it is left to the process's exit.
  constexpr absl::Duration kRetiredGrace = absl::Seconds(5);
  for (Slot* slot : retired) {
    if (slot->exited.WaitForNotificationWithTimeout(kRetiredGrace)) {
      slot->thread.join();
    } else {
      std::cerr << "tpdiff-worker: a slot thread stuck in the sampler is left behind\n";
      slot->thread.detach();
      absl::MutexLock lock(&mu_);
      for (auto& owned : retired_) {
        if (owned.get() == slot) owned.release();  // the stuck thread still uses it
      }
    }
  }
  joined_ = true;
}

bool JobRunner::HasWorkOrStopping() const { return stopping_ || !pending_.empty(); }

void JobRunner::SlotLoop(Slot* slot) {
  while (true) {
    std::shared_ptr<Job> job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &JobRunner::HasWorkOrStopping));
      if (stopping_) break;
      job = pending_.front();
      pending_.pop_front();
      slot->current = job;
      job->last_progress = clock_.Now();
      ++jobs_started_;
    }
    RunJob(*slot, job);
    absl::MutexLock lock(&mu_);
    if (slot->current == job) slot->current = nullptr;  // EndSampling was not reached
    if (slot->retired) return;  // the watchdog replaced this slot; its encoder goes with it
  }
  slot->encoder->WaitIdle();  // the last results go out before Shutdown returns
}

void JobRunner::EndSampling(Slot& slot, const std::shared_ptr<Job>& job,
                            std::function<void()> finish) {
  if (job->stalled.load(std::memory_order_acquire)) return;  // failed by the watchdog
  {
    absl::MutexLock lock(&mu_);
    if (slot.current == job) slot.current = nullptr;
    finishing_.push_back(job);
  }
  slot.encoder->Post(
      [this, job, finish = std::move(finish)] {
        finish();
        absl::MutexLock lock(&mu_);
        finishing_.erase(std::find(finishing_.begin(), finishing_.end(), job));
      },
      /*encode=*/true);
}

void JobRunner::OnStep(Job& job, int stage, int step, int steps_in_stage) {
  absl::MutexLock lock(&mu_);
  job.last_progress = clock_.Now();
  job.stage = step < steps_in_stage ? stage : stage + 1;
  job.step = step < steps_in_stage ? step + 1 : 1;
}

void JobRunner::WatchdogLoop() {
  const absl::Duration timeout = options_.job_stall_timeout;
  mu_.Lock();
  while (!stopping_) {
    const absl::Time now = clock_.Now();
    absl::Time next = absl::InfiniteFuture();
    std::vector<std::pair<std::shared_ptr<Job>, absl::Status>> stalled;
    for (auto& slot : slots_) {
      const std::shared_ptr<Job> job = slot->current;
      if (job == nullptr) continue;
      const absl::Time deadline = job->last_progress + timeout;
      if (deadline > now) {
        next = std::min(next, deadline);
        continue;
      }
      job->stalled.store(true, std::memory_order_release);
      job->token.Cancel();  // should the call ever return, the sampler stops there
      stalled.emplace_back(job, absl::DeadlineExceededError(absl::StrCat(
                                    "worker: no sampler progress for ",
                                    absl::ToDoubleSeconds(timeout), "s at stage ", job->stage,
                                    " step ", job->step)));
      // The stuck thread keeps the old slot; a fresh one takes the next job.
      slot->retired = true;
      slot->current = nullptr;
      retired_.push_back(std::move(slot));
      slot = NewSlot();
      StartSlot(slot.get());
    }
    if (!stalled.empty()) {
      mu_.Unlock();
      for (const auto& [job, status] : stalled) {
        std::cerr << "tpdiff-worker: job " << job->assign.job_id() << ": " << status.message()
                  << "; its slot is replaced\n";
        ReportFailed(*job, status);
      }
      mu_.Lock();
      continue;
    }
    const uint64_t seen = jobs_started_;
    auto changed = [this, seen] {
      mu_.AssertHeld();
      return stopping_ || jobs_started_ != seen;
    };
    clock_.AwaitWithDeadline(mu_, absl::Condition(&changed), next);
  }
  mu_.Unlock();
}

namespace {

// What a job's preview encodes need on the encoder thread, where they may run after the
// sampler and its observer are gone. The references point into the job, which `job` keeps
// alive.
struct PreviewContext {
  std::function<void(api::JobEvent)> report;
  WorkerMetrics* metrics;
  media::OutputFormat format;
  media::H264Encoder h264;
  core::CancellationToken& token;
  absl::Status& encode_error;  // the job's first encoder error
  double& encode_seconds;
  std::shared_ptr<const void> job;
};

// Encoder thread. The first error fails the job; sampling stops at its next step.
void FailEncoding(PreviewContext& ctx, const absl::Status& status) {
  if (!ctx.encode_error.ok()) return;
  ctx.encode_error = status;
  ctx.token.Cancel();
}

// Encoder thread.
void SendPreview(PreviewContext& ctx, const media::Video& video, int stage, int frames) {
  if (ctx.token.cancelled()) return;  // cancelled, or an earlier encode failed
  media::EncodeOptions options;
  options.format = ctx.format;
  options.h264 = ctx.h264;
  const auto begin = SteadyClock::now();
  absl::StatusOr<media::EncodedMedia> encoded = media::Encode(video, options);
  if (!encoded.ok()) {
    return FailEncoding(ctx, absl::Status(encoded.status().code(),
                                          absl::StrCat("preview of stage ", stage, ": ",
                                                       encoded.status().message())));
  }
  const double seconds = SecondsSince(begin);
  ctx.encode_seconds += seconds;
  if (ctx.metrics != nullptr) ctx.metrics->ObserveEncode(media::FormatName(options.format), seconds);
  api::JobEvent event;
  auto* p = event.mutable_stage_preview();
  p->set_stage(stage);
  p->set_frames(frames);
  p->set_fps(static_cast<float>(video.fps));
  p->set_width(encoded->width);
  p->set_height(encoded->height);
  p->mutable_media()->set_mime(encoded->mime);
  p->mutable_media()->set_data(std::move(encoded->bytes));
  ctx.report(std::move(event));
}

// Turns sampler callbacks into job events. Runs on the slot thread, inside the sampler; the
// previews are encoded and every event is sent on the slot's EncodeQueue, in this order.
class JobObserver : public core::SamplerObserver {
 public:
  using PostFn = std::function<void(std::function<void()> task, bool encode)>;
  using StepFn = std::function<void(const core::StepEvent&)>;
  JobObserver(PostFn post, StepFn on_step, std::shared_ptr<PreviewContext> context,
              bool previews, double fps, torch::Device device)
      : post_(std::move(post)), on_step_(std::move(on_step)), context_(std::move(context)),
        previews_(previews), fps_(fps), step_timer_(device) {}

  // Latent packages: previews are the VAE decode of the stage's clean latent estimate, and
  // progress counts decoded (pixel) frames.
  void DecodeWith(std::shared_ptr<const model::LatentModules> modules) {
    latent_ = std::move(modules);
  }

  void OnStep(const core::StepEvent& e) override {
    // On CUDA the step's kernels have only been queued; the timer waits for them.
    const double seconds = step_timer_.Lap();
    if (context_->metrics != nullptr) context_->metrics->ObserveStep(e.stage_ordinal, seconds);
    on_step_(e);
    api::JobEvent event;
    auto* p = event.mutable_progress();
    p->set_stage(e.stage_ordinal);
    p->set_stage_count(e.num_stages);
    p->set_step(e.step);
    p->set_steps_in_stage(e.steps_in_stage);
    p->set_frames(PixelFrames(e.frames));
    post_([ctx = context_, event = std::move(event)]() mutable { ctx->report(std::move(event)); },
          /*encode=*/false);
  }

  void OnStageEnd(const core::StageEndEvent& e) override {
    stage_seconds.push_back(e.seconds);
    if (previews_ && !context_->token.cancelled()) {
      // The tensor is read here, on the sampling thread (a device-to-host copy on CUDA), and
      // a latent preview is decoded here too (the VAE runs where the model lives); only the
      // FFmpeg work moves to the encoder.
      absl::StatusOr<media::Video> video = PreviewVideo(e);
      if (!video.ok()) {
        post_([ctx = context_, status = video.status()] { FailEncoding(*ctx, status); },
              /*encode=*/false);
      } else {
        post_([ctx = context_, video = *std::move(video), stage = e.stage_ordinal,
               frames = PixelFrames(e.frames)] { SendPreview(*ctx, video, stage, frames); },
              /*encode=*/true);
      }
    }
    step_timer_.Lap();  // preview conversion is not part of the next step
  }

  std::vector<double> stage_seconds;

 private:
  int PixelFrames(int frames) const {
    return latent_ == nullptr ? frames : model::DecodedFrames(latent_->config(), frames);
  }

  absl::StatusOr<media::Video> PreviewVideo(const core::StageEndEvent& e) const {
    torch::Tensor preview = e.preview;
    if (latent_ != nullptr) {
      absl::StatusOr<torch::Tensor> decoded = latent_->Decode(e.preview);
      if (!decoded.ok()) {
        return absl::Status(decoded.status().code(),
                            absl::StrCat("preview of stage ", e.stage_ordinal, ": ",
                                         decoded.status().message()));
      }
      preview = *std::move(decoded);
    }
    return TensorToVideo(preview, fps_ / e.frame_stride);
  }

  PostFn post_;
  StepFn on_step_;
  std::shared_ptr<PreviewContext> context_;
  bool previews_;
  double fps_;
  core::DeviceTimer step_timer_;
  std::shared_ptr<const model::LatentModules> latent_;
};

// Samples a latent job: text encoded once, latents sampled, previews and the video decoded
// by the package's VAE. Returns the final frames [1, 3, T, H, W].
absl::StatusOr<torch::Tensor> SampleLatent(const ResolvedRequest& r, core::Denoiser& denoiser,
                                           JobObserver& observer,
                                           const core::CancellationToken& token) {
  std::shared_ptr<const model::LatentModules> modules = r.model->latent_modules();
  const api::GenerateRequest& req = r.request;
  model::LatentJobRequest job;
  job.prompt = req.prompt();
  job.negative_prompt = req.negative_prompt();
  job.guidance_scale = req.guidance_scale();
  job.seed = req.seed();
  job.stage_steps = r.stage_steps;
  job.vanilla = req.sampler() == api::SAMPLER_VANILLA;
  job.num_frames = static_cast<int>(req.num_frames());
  job.height = static_cast<int>(req.height());
  job.width = static_cast<int>(req.width());
  observer.DecodeWith(modules);
  absl::StatusOr<model::LatentJobResult> result = model::SampleLatentJob(
      r.model->manifest(), r.model->tokenizer(), *modules, denoiser, job, &observer, &token);
  if (!result.ok()) return result.status();
  return modules->Decode(result->latents);
}

}  // namespace

void JobRunner::RunJob(Slot& slot, const std::shared_ptr<Job>& job_ptr) {
  Job& job = *job_ptr;
  const auto started = SteadyClock::now();
  const api::GenerateRequest& request = job.assign.request();
  const double queue_seconds =
      absl::ToDoubleSeconds(common::FromProtoDuration(job.assign.queue_time())) +
      std::chrono::duration<double>(started - job.received).count();
  EncodeQueue& encoder = *slot.encoder;

  // The job's terminal event when it did not complete: an encoder error is the cause of a
  // cancellation it made; a cancellation is reported as such; else `status`.
  auto end = [this, job_ptr](const absl::Status& status) {
    Job& job = *job_ptr;
    if (!job.encode_error.ok()) return ReportFailed(job, job.encode_error);
    if (job.token.cancelled()) {
      std::string source;
      {
        absl::MutexLock lock(&mu_);
        source = job.cancel_source;
      }
      api::JobEvent event;
      event.mutable_cancelled()->set_source(source.empty() ? "client" : source);
      return Report(job, std::move(event), /*terminal=*/true);
    }
    ReportFailed(job, status);
  };
  auto fail = [&](const absl::Status& status) {
    EndSampling(slot, job_ptr, [end, status] { end(status); });
  };
  auto report = [this, job_ptr](api::JobEvent e) { Report(*job_ptr, std::move(e)); };

  if (job.token.cancelled()) return fail(absl::CancelledError());
  {
    api::JobEvent event;
    event.mutable_started()->set_worker_id(options_.worker_id);
    event.mutable_started()->set_attempt(job.assign.attempt());
    encoder.Post([report, event = std::move(event)]() mutable { report(std::move(event)); },
                 /*encode=*/false);
  }

  absl::StatusOr<ResolvedRequest> resolved = Resolve(models_, request);
  if (!resolved.ok()) return fail(resolved.status());
  auto previews = std::make_shared<PreviewContext>(PreviewContext{
      report, options_.metrics,
      ToMediaFormat(request.preview().format(), media::OutputFormat::kGif),
      options_.h264_encoder, job.token,
      job.encode_error, job.encode_seconds, job_ptr});
  JobObserver observer(
      [&encoder](std::function<void()> task, bool encode) {
        encoder.Post(std::move(task), encode);
      },
      [this, &job](const core::StepEvent& e) {
        OnStep(job, e.stage_ordinal, e.step, e.steps_in_stage);
      },
      std::move(previews), request.preview().enabled(), resolved->request.fps(),
      resolved->model->device());
  absl::StatusOr<torch::Tensor> video;
  if (resolved->model->latent_modules() != nullptr) {
    video = SampleLatent(*resolved, *slot.denoisers.at(resolved->model), observer, job.token);
  } else {
    absl::StatusOr<core::StagePlan> plan = MakePlan(*resolved);
    if (!plan.ok()) return fail(plan.status());
    const spec::ModelManifest& manifest = resolved->model->manifest();
    core::SampleRequest sample;
    sample.batch = 1;
    sample.channels = manifest.channels;
    sample.height = manifest.height;
    sample.width = manifest.width;
    sample.tokens = resolved->tokens;
    sample.negative_tokens = resolved->negative_tokens;
    sample.guidance_scale = resolved->request.guidance_scale();
    sample.seed = resolved->request.seed();
    sample.device = resolved->model->device();
    video = core::PyramidSampler::Sample(*slot.denoisers.at(resolved->model), *plan, sample,
                                         &observer, &job.token);
  }
  if (job.token.cancelled() || !video.ok()) {
    return fail(video.ok() ? absl::CancelledError() : video.status());
  }
  absl::StatusOr<media::Video> frames = TensorToVideo(*video, resolved->request.fps());
  if (!frames.ok()) return fail(frames.status());

  // The final video: encoded and sent on the slot's encoder while the slot takes its next job.
  media::EncodeOptions options;
  options.format = ToMediaFormat(request.output().format(), media::OutputFormat::kMp4);
  options.scale = static_cast<int>(request.output().scale());
  options.h264 = options_.h264_encoder;
  EndSampling(slot, job_ptr, [this, job_ptr, end, report, options, started, queue_seconds,
                              frames = *std::move(frames),
                              stage_seconds = observer.stage_seconds] {
    Job& job = *job_ptr;
    if (job.token.cancelled()) return end(absl::CancelledError());
    const auto encode_begin = SteadyClock::now();
    absl::StatusOr<media::EncodedMedia> encoded = media::Encode(frames, options);
    if (!encoded.ok()) return ReportFailed(job, encoded.status());
    const double encode_seconds = SecondsSince(encode_begin);
    if (options_.metrics != nullptr) {
      options_.metrics->ObserveEncode(media::FormatName(options.format), encode_seconds);
    }

    const std::string& bytes = encoded->bytes;
    const size_t chunk = std::max<size_t>(options_.result_chunk_bytes, 1);
    for (size_t offset = 0; offset < bytes.size(); offset += chunk) {
      if (job.token.cancelled()) return end(absl::CancelledError());
      api::JobEvent event;
      auto* c = event.mutable_result_chunk();
      c->set_offset(offset);
      c->set_data(bytes.substr(offset, chunk));
      c->set_last(offset + chunk >= bytes.size());
      c->set_mime(encoded->mime);
      report(std::move(event));
    }

    api::JobEvent event;
    auto* completed = event.mutable_completed();
    completed->set_result_bytes(bytes.size());
    api::Timings* t = completed->mutable_timings();
    t->set_queue_seconds(queue_seconds);
    for (double s : stage_seconds) t->add_stage_seconds(s);
    t->set_encode_seconds(job.encode_seconds + encode_seconds);
    t->set_total_seconds(queue_seconds + SecondsSince(started));
    Report(job, std::move(event), /*terminal=*/true);
  });
}

}  // namespace tpdiff::worker
