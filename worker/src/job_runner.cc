#include "tpdiff/worker/job_runner.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "tpdiff/common/proto_time.h"
#include "tpdiff/core/cancellation.h"
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
};

JobRunner::JobRunner(ModelSet models, int slots, EventSink& sink, JobRunnerOptions options)
    : sink_(sink), options_(std::move(options)), models_(std::move(models)) {
  for (int i = 0; i < std::max(slots, 1); ++i) {
    auto slot = std::make_unique<Slot>();
    for (const auto& [name, model] : models_) slot->denoisers[model.get()] = model->NewDenoiser();
    slots_.push_back(std::move(slot));
  }
  for (auto& slot : slots_) {
    Slot* s = slot.get();
    s->thread = std::thread([this, s] { SlotLoop(s); });
  }
}

JobRunner::~JobRunner() { Shutdown(); }

void JobRunner::Report(Job& job, api::JobEvent event) {
  if (job.abandoned.load(std::memory_order_acquire)) return;
  tpdiff::worker::v1::WorkerEvent out;
  out.set_job_id(job.assign.job_id());
  out.set_attempt(job.assign.attempt());
  event.set_job_id(job.assign.job_id());
  *out.mutable_event() = std::move(event);
  sink_.Emit(std::move(out));
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
    api::JobEvent event;
    auto* failed = event.mutable_failed();
    failed->set_code(static_cast<int>(absl::StatusCode::kUnavailable));
    failed->set_message("worker is draining and takes no new jobs");
    failed->set_retryable(true);
    Report(*job, std::move(event));
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
    for (const auto& slot : slots_) {
      if (slot->current != nullptr && slot->current->assign.job_id() == job_id) {
        slot->current->cancel_source = source;
        slot->current->token.Cancel();
      }
    }
  }
  for (const auto& job : dropped) {
    api::JobEvent event;
    event.mutable_cancelled()->set_source(source);
    Report(*job, std::move(event));
  }
}

void JobRunner::AbandonAll() {
  absl::MutexLock lock(&mu_);
  for (const auto& job : pending_) job->abandoned.store(true, std::memory_order_release);
  pending_.clear();
  for (const auto& slot : slots_) {
    if (slot->current != nullptr) {
      slot->current->abandoned.store(true, std::memory_order_release);
      slot->current->token.Cancel();
    }
  }
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
  if (!pending_.empty()) return false;
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
  for (const auto& job : pending_) load.running_job_ids.push_back(job->assign.job_id());
  const int free = static_cast<int>(slots_.size()) - busy - static_cast<int>(pending_.size());
  load.free_slots = (draining_ || stopping_) ? 0 : static_cast<uint32_t>(std::max(free, 0));
  return load;
}

void JobRunner::Shutdown() {
  absl::MutexLock join_lock(&join_mu_);
  if (joined_) return;
  AbandonAll();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& slot : slots_) {
    if (slot->thread.joinable()) slot->thread.join();
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
      if (stopping_) return;
      job = pending_.front();
      pending_.pop_front();
      slot->current = job;
    }
    RunJob(*slot, *job);
    absl::MutexLock lock(&mu_);
    slot->current = nullptr;
  }
}

namespace {

// Turns sampler callbacks into job events. Runs on the slot thread, inside the sampler.
class JobObserver : public core::SamplerObserver {
 public:
  using ReportFn = std::function<void(api::JobEvent)>;
  JobObserver(ReportFn report, WorkerMetrics* metrics, const api::GenerateRequest& request,
              double fps, core::CancellationToken& token)
      : report_(std::move(report)), metrics_(metrics), request_(request), fps_(fps),
        token_(token) {}

  // Latent packages: previews are the VAE decode of the stage's clean latent estimate, and
  // progress counts decoded (pixel) frames.
  void DecodeWith(std::shared_ptr<const model::LatentModules> modules) {
    latent_ = std::move(modules);
  }

  void OnStep(const core::StepEvent& e) override {
    const auto now = SteadyClock::now();
    if (metrics_ != nullptr) {
      metrics_->ObserveStep(e.stage_ordinal, std::chrono::duration<double>(now - last_).count());
    }
    last_ = now;
    api::JobEvent event;
    auto* p = event.mutable_progress();
    p->set_stage(e.stage_ordinal);
    p->set_stage_count(e.num_stages);
    p->set_step(e.step);
    p->set_steps_in_stage(e.steps_in_stage);
    p->set_frames(PixelFrames(e.frames));
    report_(std::move(event));
  }

  void OnStageEnd(const core::StageEndEvent& e) override {
    stage_seconds.push_back(e.seconds);
    if (request_.preview().enabled() && error.ok()) {
      absl::Status s = SendPreview(e);
      if (!s.ok()) {
        error = s;
        token_.Cancel();  // no point sampling on; the job fails with `error`
      }
    }
    last_ = SteadyClock::now();  // preview encoding is not part of the next step
  }

  std::vector<double> stage_seconds;
  double encode_seconds = 0;
  absl::Status error;

 private:
  int PixelFrames(int frames) const {
    return latent_ == nullptr ? frames : model::DecodedFrames(latent_->config(), frames);
  }

  absl::Status SendPreview(const core::StageEndEvent& e) {
    const double fps = fps_ / e.frame_stride;
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
    absl::StatusOr<media::Video> video = TensorToVideo(preview, fps);
    if (!video.ok()) return video.status();
    media::EncodeOptions options;
    options.format = ToMediaFormat(request_.preview().format(), media::OutputFormat::kGif);
    const auto begin = SteadyClock::now();
    absl::StatusOr<media::EncodedMedia> encoded = media::Encode(*video, options);
    if (!encoded.ok()) {
      return absl::Status(encoded.status().code(),
                          absl::StrCat("preview of stage ", e.stage_ordinal, ": ",
                                       encoded.status().message()));
    }
    const double seconds = SecondsSince(begin);
    encode_seconds += seconds;
    if (metrics_ != nullptr) metrics_->ObserveEncode(media::FormatName(options.format), seconds);
    api::JobEvent event;
    auto* p = event.mutable_stage_preview();
    p->set_stage(e.stage_ordinal);
    p->set_frames(PixelFrames(e.frames));
    p->set_fps(static_cast<float>(fps));
    p->set_width(encoded->width);
    p->set_height(encoded->height);
    p->mutable_media()->set_mime(encoded->mime);
    p->mutable_media()->set_data(std::move(encoded->bytes));
    report_(std::move(event));
    return absl::OkStatus();
  }

  ReportFn report_;
  WorkerMetrics* metrics_;
  const api::GenerateRequest& request_;
  double fps_;
  core::CancellationToken& token_;
  std::shared_ptr<const model::LatentModules> latent_;
  SteadyClock::time_point last_ = SteadyClock::now();
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

void JobRunner::RunJob(Slot& slot, Job& job) {
  const auto started = SteadyClock::now();
  const api::GenerateRequest& request = job.assign.request();
  const double queue_seconds =
      absl::ToDoubleSeconds(common::FromProtoDuration(job.assign.queue_time())) +
      std::chrono::duration<double>(started - job.received).count();

  auto fail = [&](const absl::Status& status) {
    api::JobEvent event;
    auto* failed = event.mutable_failed();
    failed->set_code(static_cast<int>(status.code()));
    failed->set_message(std::string(status.message()));
    failed->set_retryable(IsRetryable(status.code()));
    Report(job, std::move(event));
  };
  auto cancelled = [&] {
    std::string source;
    {
      absl::MutexLock lock(&mu_);
      source = job.cancel_source;
    }
    api::JobEvent event;
    event.mutable_cancelled()->set_source(source.empty() ? "client" : source);
    Report(job, std::move(event));
  };
  auto should_stop = [&] { return job.token.cancelled(); };

  if (should_stop()) return cancelled();
  {
    api::JobEvent event;
    event.mutable_started()->set_worker_id(options_.worker_id);
    event.mutable_started()->set_attempt(job.assign.attempt());
    Report(job, std::move(event));
  }

  absl::StatusOr<ResolvedRequest> resolved = Resolve(models_, request);
  if (!resolved.ok()) return fail(resolved.status());

  JobObserver observer([&](api::JobEvent e) { Report(job, std::move(e)); }, options_.metrics,
                       request, resolved->request.fps(), job.token);
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
  if (!observer.error.ok()) return fail(observer.error);
  if (should_stop()) return cancelled();
  if (!video.ok()) return fail(video.status());

  // The final video.
  absl::StatusOr<media::Video> frames = TensorToVideo(*video, resolved->request.fps());
  if (!frames.ok()) return fail(frames.status());
  media::EncodeOptions options;
  options.format = ToMediaFormat(request.output().format(), media::OutputFormat::kMp4);
  options.scale = static_cast<int>(request.output().scale());
  const auto encode_begin = SteadyClock::now();
  absl::StatusOr<media::EncodedMedia> encoded = media::Encode(*frames, options);
  if (!encoded.ok()) return fail(encoded.status());
  const double encode_seconds = SecondsSince(encode_begin);
  if (options_.metrics != nullptr) {
    options_.metrics->ObserveEncode(media::FormatName(options.format), encode_seconds);
  }

  const std::string& bytes = encoded->bytes;
  const size_t chunk = std::max<size_t>(options_.result_chunk_bytes, 1);
  for (size_t offset = 0; offset < bytes.size(); offset += chunk) {
    if (should_stop()) return cancelled();
    api::JobEvent event;
    auto* c = event.mutable_result_chunk();
    c->set_offset(offset);
    c->set_data(bytes.substr(offset, chunk));
    c->set_last(offset + chunk >= bytes.size());
    c->set_mime(encoded->mime);
    Report(job, std::move(event));
  }

  api::JobEvent event;
  auto* completed = event.mutable_completed();
  completed->set_result_bytes(bytes.size());
  api::Timings* t = completed->mutable_timings();
  t->set_queue_seconds(queue_seconds);
  for (double s : observer.stage_seconds) t->add_stage_seconds(s);
  t->set_encode_seconds(observer.encode_seconds + encode_seconds);
  t->set_total_seconds(queue_seconds + SecondsSince(started));
  Report(job, std::move(event));
}

}  // namespace tpdiff::worker
