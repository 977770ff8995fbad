#include "test_worker.h"

#include "test_model.h"

namespace tpdiff::server::testing {

using tpdiff::v1::JobEvent;
using tpdiff::worker::v1::Assign;
using tpdiff::worker::v1::DispatchMessage;
using tpdiff::worker::v1::WorkerMessage;

TestWorker::TestWorker(const std::string& target, std::string worker_id, bool auto_run,
                       uint32_t slots)
    : worker_id_(std::move(worker_id)),
      slots_(slots),
      stub_(tpdiff::worker::v1::WorkerGateway::NewStub(
          grpc::CreateChannel(target, grpc::InsecureChannelCredentials()))),
      auto_run_(auto_run) {}

TestWorker::TestWorker(std::shared_ptr<grpc::Channel> channel, std::string worker_id,
                       bool auto_run, std::string secret)
    : worker_id_(std::move(worker_id)),
      slots_(1),
      secret_(std::move(secret)),
      stub_(tpdiff::worker::v1::WorkerGateway::NewStub(std::move(channel))),
      auto_run_(auto_run) {}

TestWorker::~TestWorker() {
  Drop();
  if (reader_.joinable()) reader_.join();
}

bool TestWorker::Connect(absl::Duration timeout) {
  if (!secret_.empty()) context_.AddMetadata("tpdiff-worker-secret", secret_);
  stream_ = stub_->Connect(&context_);
  WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(worker_id_);
  hello.mutable_hello()->add_models("tiny");
  hello.mutable_hello()->set_device("cpu");
  hello.mutable_hello()->set_slots(slots_);
  hello.mutable_hello()->set_version("test");
  *hello.mutable_hello()->add_model_info() = TinyModel();
  Write(hello);
  reader_ = std::thread([this] { ReadLoop(); });
  absl::MutexLock lock(&mu_);
  auto answered = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return welcome_.has_value() || read_ended_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&answered), timeout);
  return welcome_.has_value();
}

grpc::Status TestWorker::Finish() {
  if (reader_.joinable()) reader_.join();
  return stream_->Finish();
}

void TestWorker::set_auto_run(bool auto_run) {
  absl::MutexLock lock(&mu_);
  auto_run_ = auto_run;
}

tpdiff::worker::v1::Welcome TestWorker::welcome() const {
  absl::MutexLock lock(&mu_);
  return welcome_.value_or(tpdiff::worker::v1::Welcome());
}

void TestWorker::Write(const WorkerMessage& message) {
  absl::MutexLock lock(&write_mu_);
  stream_->Write(message);
}

void TestWorker::ReadLoop() {
  DispatchMessage message;
  while (stream_->Read(&message)) {
    bool run = false;
    {
      absl::MutexLock lock(&mu_);
      if (message.has_welcome()) welcome_ = message.welcome();
      if (message.has_drain()) drained_ = true;
      if (message.has_cancel()) cancels_.push_back(message.cancel().job_id());
      if (message.has_assign()) {
        assigns_.push_back(message.assign());
        open_jobs_.insert(message.assign().job_id());
        run = auto_run_;
      }
    }
    if (run) RunScript(message.assign());
    MaybeCloseAfterDrain();
    if (message.has_cancel()) {
      // Confirm, as the real worker does once it stopped: frees the slot on the front.
      JobEvent cancelled;
      cancelled.mutable_cancelled()->set_source(message.cancel().reason());
      Assign assign;
      {
        absl::MutexLock lock(&mu_);
        for (const Assign& a : assigns_) {
          if (a.job_id() == message.cancel().job_id()) assign = a;
        }
      }
      Emit(assign, std::move(cancelled));
      JobEnded(message.cancel().job_id());
    }
  }
  absl::MutexLock lock(&mu_);
  read_ended_ = true;
}

void TestWorker::Emit(const Assign& assign, JobEvent event) {
  WorkerMessage message;
  message.mutable_event()->set_job_id(assign.job_id());
  message.mutable_event()->set_attempt(assign.attempt());
  *message.mutable_event()->mutable_event() = std::move(event);
  Write(message);
}

void TestWorker::SendStarted(const Assign& assign) {
  JobEvent started;
  started.mutable_started()->set_worker_id(worker_id_);
  Emit(assign, std::move(started));
}

void TestWorker::SendProgress(const Assign& assign) {
  for (int stage = 1; stage <= kStages; ++stage) {
    JobEvent progress;
    progress.mutable_progress()->set_stage(stage);
    progress.mutable_progress()->set_stage_count(kStages);
    progress.mutable_progress()->set_step(1);
    progress.mutable_progress()->set_steps_in_stage(1);
    progress.mutable_progress()->set_frames(assign.request().num_frames() >> (kStages - stage));
    Emit(assign, std::move(progress));
  }
}

void TestWorker::SendRest(const Assign& assign) {
  for (int stage = 1; stage <= kStages; ++stage) {
    JobEvent preview;
    tpdiff::v1::StagePreview* p = preview.mutable_stage_preview();
    p->set_stage(stage);
    p->set_frames(assign.request().num_frames() >> (kStages - stage));
    p->set_fps(static_cast<float>(assign.request().fps()) / static_cast<float>(1 << (kStages - stage)));
    p->set_width(32);
    p->set_height(32);
    p->mutable_media()->set_mime("image/gif");
    p->mutable_media()->set_data("GIF89a-stage-" + std::to_string(stage));
    Emit(assign, std::move(preview));
  }
  for (int i = 0; i < 3; ++i) {
    JobEvent chunk;
    chunk.mutable_result_chunk()->set_offset(static_cast<uint64_t>(i) * kChunkBytes);
    chunk.mutable_result_chunk()->set_data(std::string(kChunkBytes, static_cast<char>('a' + i)));
    chunk.mutable_result_chunk()->set_last(i == 2);
    chunk.mutable_result_chunk()->set_mime("video/mp4");
    Emit(assign, std::move(chunk));
  }
  JobEvent completed;
  for (double seconds : {0.3, 0.2, 0.1}) {
    completed.mutable_completed()->mutable_timings()->add_stage_seconds(seconds);
  }
  completed.mutable_completed()->mutable_timings()->set_encode_seconds(0.05);
  completed.mutable_completed()->set_result_bytes(3 * kChunkBytes);
  Emit(assign, std::move(completed));
  JobEnded(assign.job_id());
}

void TestWorker::JobEnded(const std::string& job_id) {
  {
    absl::MutexLock lock(&mu_);
    open_jobs_.erase(job_id);
  }
  MaybeCloseAfterDrain();
}

void TestWorker::MaybeCloseAfterDrain() {
  // Like tpdiff-worker: once drained and idle, close our side; the front ends the stream.
  {
    absl::MutexLock lock(&mu_);
    if (!drained_ || !open_jobs_.empty() || closed_) return;
    closed_ = true;
  }
  absl::MutexLock lock(&write_mu_);
  stream_->WritesDone();
}

void TestWorker::RunScript(const Assign& assign) {
  SendStarted(assign);
  SendProgress(assign);
  SendRest(assign);
}

std::vector<Assign> TestWorker::WaitForAssigns(size_t count, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return assigns_.size() >= count; };
  mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  return assigns_;
}

bool TestWorker::WaitForCancel(const std::string& job_id, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::find(cancels_.begin(), cancels_.end(), job_id) != cancels_.end();
  };
  return mu_.AwaitWithTimeout(absl::Condition(&seen), timeout);
}

bool TestWorker::WaitForDrain(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&drained_), timeout);
}

void TestWorker::Drop() {
  {
    absl::MutexLock lock(&mu_);
    if (dropped_) return;
    dropped_ = true;
  }
  context_.TryCancel();
}

}  // namespace tpdiff::server::testing
