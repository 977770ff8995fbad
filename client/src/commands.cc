#include "tpdiff/client/commands.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <system_error>
#include <utility>

#include <google/protobuf/util/json_util.h>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tpdiff/client/progress.h"
#include "tpdiff/client/request.h"
#include "tpdiff/common/grpc_status.h"

namespace tpdiff::client {

namespace api = ::tpdiff::v1;
namespace fs = std::filesystem;

void Interrupt::Trigger() {
  absl::MutexLock lock(&mu_);
  triggered_ = true;
  if (context_ != nullptr) context_->TryCancel();
}

bool Interrupt::triggered() const {
  absl::MutexLock lock(&mu_);
  return triggered_;
}

void Interrupt::Attach(grpc::ClientContext* context) {
  absl::MutexLock lock(&mu_);
  context_ = context;
  if (triggered_ && context_ != nullptr) context_->TryCancel();
}

namespace {

bool IsTerminal(const api::JobEvent& e) {
  return e.has_completed() || e.has_failed() || e.has_cancelled();
}

// A stream that ends for these reasons is worth re-opening: the job lives on in the front.
bool Resumable(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:  // ended without a terminal event (e.g. front restarting)
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kCancelled:
      return true;
    default:
      return false;
  }
}

void SetDeadline(grpc::ClientContext& context, absl::Duration deadline) {
  if (deadline > absl::ZeroDuration()) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  }
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes) {
  const std::string part = path + ".part";
  {
    std::ofstream f(part, std::ios::binary | std::ios::trunc);
    if (!f) return absl::PermissionDeniedError(absl::StrCat("cannot write ", part));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f) return absl::DataLossError(absl::StrCat("short write to ", part));
  }
  std::error_code ec;
  fs::rename(part, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("rename to ", path, ": ", ec.message()));
  return absl::OkStatus();
}

using OpenFn = std::function<std::unique_ptr<grpc::ClientReaderInterface<api::JobEvent>>(
    grpc::ClientContext*)>;
using EventFn = std::function<absl::Status(const api::JobEvent&)>;

struct FollowState {
  std::string job_id;
  int64_t last_seq = 0;
  int resumes = 0;
};

// Reads events until a terminal one. The first stream comes from `open` (Generate) or, when
// it is null, WatchJob; a stream that breaks is re-opened with WatchJob(job_id, last_seq)
// (or, before any event named the job, `open` again: Generate is idempotent by request_id).
absl::Status Follow(api::VideoGeneration::StubInterface& stub, const OpenFn& open,
                    FollowState& state, const FollowOptions& options, CommandIo& io,
                    const EventFn& on_event) {
  int attempts = 0;
  absl::Duration backoff = options.resume_backoff;
  bool first = true;
  bool reached = false;  // some stream delivered an event
  while (true) {
    grpc::ClientContext context;
    SetDeadline(context, options.deadline);
    if (options.interrupt != nullptr) options.interrupt->Attach(&context);
    std::unique_ptr<grpc::ClientReaderInterface<api::JobEvent>> reader;
    if (open != nullptr && state.job_id.empty()) {
      reader = open(&context);
    } else {
      api::WatchJobRequest watch;
      watch.set_job_id(state.job_id);
      watch.set_after_seq(state.last_seq);
      reader = stub.WatchJob(&context, watch);
      if (!first) ++state.resumes;
    }
    first = false;
    api::JobEvent event;
    bool progressed = false;
    bool ended = false;
    absl::Status handled;
    while (reader->Read(&event)) {
      reached = true;
      if (state.job_id.empty()) state.job_id = event.job_id();
      if (event.seq() != 0 && event.seq() <= state.last_seq) continue;  // seen already
      progressed = true;
      state.last_seq = std::max(state.last_seq, event.seq());
      handled = on_event(event);
      if (!handled.ok() || IsTerminal(event)) {
        ended = IsTerminal(event);
        break;
      }
    }
    if (ended || !handled.ok()) context.TryCancel();  // we stop reading; let Finish return
    const absl::Status status = common::FromGrpcStatus(reader->Finish());
    if (options.interrupt != nullptr) options.interrupt->Attach(nullptr);
    if (!handled.ok()) return handled;
    if (ended) return absl::OkStatus();
    if (options.interrupt != nullptr && options.interrupt->triggered()) {
      return absl::CancelledError("interrupted");
    }
    if (!reached && absl::IsUnavailable(status)) {
      // Nothing ever answered: no job exists to resume, and retrying would only repeat this.
      return absl::UnavailableError(absl::StrCat(
          "cannot reach the server", options.server.empty() ? "" : " at ", options.server, ": ",
          status.message(), state.job_id.empty() ? "; no job id was received" : ""));
    }
    const bool can_retry = !state.job_id.empty() || open != nullptr;
    if (!Resumable(status) || !can_retry) {
      return status.ok() ? absl::UnavailableError("the stream ended before the job did") : status;
    }
    if (progressed) {
      attempts = 0;
      backoff = options.resume_backoff;
    }
    if (++attempts > options.max_resumes) {
      return absl::UnavailableError(absl::StrCat("gave up after ", options.max_resumes,
                                                 " attempts to resume job ", state.job_id, ": ",
                                                 status.ToString()));
    }
    io.err << (io.tty ? "\r\033[K" : "") << "stream lost (" << status
           << "); resuming job " << state.job_id << " after seq " << state.last_seq << "\n";
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

absl::Status TerminalStatus(const api::JobEvent& e) {
  if (e.has_failed()) {
    return absl::Status(static_cast<absl::StatusCode>(e.failed().code()),
                        absl::StrCat("job ", e.job_id(), " failed: ", e.failed().message()));
  }
  if (e.has_cancelled()) {
    return absl::CancelledError(
        absl::StrCat("job ", e.job_id(), " cancelled (", e.cancelled().source(), ")"));
  }
  return absl::OkStatus();
}

std::string RandomRequestId() {
  absl::BitGen gen;
  return absl::StrFormat("cli-%016x", absl::Uniform<uint64_t>(gen));
}

}  // namespace

std::string FormatEvent(const api::JobEvent& e) {
  std::string line = absl::StrCat("seq ", e.seq(), " ");
  switch (e.kind_case()) {
    case api::JobEvent::kQueued:
      absl::StrAppend(&line, "queued position ", e.queued().position());
      break;
    case api::JobEvent::kStarted:
      absl::StrAppend(&line, "started worker ", e.started().worker_id(), " attempt ",
                      e.started().attempt());
      break;
    case api::JobEvent::kProgress: {
      const auto& p = e.progress();
      absl::StrAppend(&line, "progress stage ", p.stage(), "/", p.stage_count(), " step ",
                      p.step(), "/", p.steps_in_stage(), " frames ", p.frames());
      break;
    }
    case api::JobEvent::kStagePreview: {
      const auto& p = e.stage_preview();
      absl::StrAppend(&line, "stage_preview stage ", p.stage(), " frames ", p.frames(), " fps ",
                      p.fps(), " size ", p.width(), "x", p.height(), " ", p.media().mime(), " ",
                      p.media().data().size(), " bytes");
      break;
    }
    case api::JobEvent::kResultChunk:
      absl::StrAppend(&line, "result_chunk offset ", e.result_chunk().offset(), " bytes ",
                      e.result_chunk().data().size(), e.result_chunk().last() ? " last" : "");
      break;
    case api::JobEvent::kCompleted: {
      const auto& t = e.completed().timings();
      absl::StrAppend(&line, "completed result_bytes ", e.completed().result_bytes(),
                      absl::StrFormat(" total %.3fs", t.total_seconds()));
      break;
    }
    case api::JobEvent::kFailed:
      absl::StrAppend(&line, "failed code ", e.failed().code(), " retryable ",
                      e.failed().retryable() ? "true" : "false", ": ", e.failed().message());
      break;
    case api::JobEvent::kCancelled:
      absl::StrAppend(&line, "cancelled source ", e.cancelled().source());
      break;
    case api::JobEvent::kRequeued:
      absl::StrAppend(&line, "requeued attempt ", e.requeued().attempt(), " reason ",
                      e.requeued().reason());
      break;
    default:
      absl::StrAppend(&line, "unknown");
  }
  return line;
}

absl::StatusOr<GenerateResult> RunGenerate(api::VideoGeneration::StubInterface& stub,
                                           GenerateOptions options, CommandIo& io) {
  if (options.out_path.empty()) return absl::InvalidArgumentError("--out: required");
  if (!options.previews_dir.empty()) {
    std::error_code ec;
    fs::create_directories(options.previews_dir, ec);
    if (ec) {
      return absl::PermissionDeniedError(
          absl::StrCat("--previews_dir: ", options.previews_dir, ": ", ec.message()));
    }
    options.request.mutable_preview()->set_enabled(true);
  }
  // Resuming needs the job to outlive this stream; Ctrl-C cancels explicitly instead.
  options.request.set_cancel_on_disconnect(false);
  // Makes re-sending Generate after a failure before the first event safe.
  if (options.request.request_id().empty()) options.request.set_request_id(RandomRequestId());

  GenerateResult result;
  ProgressTracker tracker(
      {options.request.stage_steps().begin(), options.request.stage_steps().end()});
  std::string video;
  std::string last_line;
  auto draw = [&] {
    const std::string line = tracker.Line();
    if (io.tty) {
      io.err << "\r\033[K" << line << std::flush;
    } else if (line.substr(0, line.find(" step ")) != last_line.substr(0, last_line.find(" step "))) {
      io.err << line << "\n";  // logs get a line per state or stage, not per step
    }
    last_line = line;
  };
  api::JobEvent terminal;

  const api::GenerateRequest& request = options.request;
  OpenFn open = [&](grpc::ClientContext* context) { return stub.Generate(context, request); };
  FollowState state;
  std::vector<uint32_t> stage_frames;  // by stage ordinal, as the worker reports them
  absl::Status status = Follow(stub, open, state, options.follow, io, [&](const api::JobEvent& e) {
    tracker.Observe(e, io.now());
    switch (e.kind_case()) {
      case api::JobEvent::kProgress: {
        const auto& p = e.progress();
        if (p.stage() >= 1 && p.stage() <= p.stage_count()) {
          stage_frames.resize(std::max<size_t>(stage_frames.size(), p.stage_count()));
          stage_frames[p.stage() - 1] = p.frames();
        }
        break;
      }
      case api::JobEvent::kStagePreview: {
        if (options.previews_dir.empty()) break;
        const auto& p = e.stage_preview();
        const std::string path =
            (fs::path(options.previews_dir) /
             absl::StrCat("stage", p.stage(), ".", ExtensionForMime(p.media().mime())))
                .string();
        absl::Status written = WriteFileAtomically(path, p.media().data());
        if (!written.ok()) return written;
        result.previews.push_back(path);
        break;
      }
      case api::JobEvent::kRequeued:
        video.clear();  // the next attempt sends the whole result again
        break;
      case api::JobEvent::kResultChunk: {
        const auto& c = e.result_chunk();
        if (c.offset() == 0) video.clear();
        if (c.offset() != video.size()) {
          return absl::DataLossError(absl::StrCat("result chunk at offset ", c.offset(),
                                                  ", expected ", video.size()));
        }
        video += c.data();
        result.mime = c.mime();
        break;
      }
      default:
        break;
    }
    if (IsTerminal(e)) terminal = e;
    draw();
    return absl::OkStatus();
  });
  if (io.tty) io.err << "\n";
  result.job_id = state.job_id;
  result.last_seq = state.last_seq;
  result.resumes = state.resumes;

  if (absl::IsCancelled(status) && options.follow.interrupt != nullptr &&
      options.follow.interrupt->triggered() && !state.job_id.empty()) {
    grpc::ClientContext context;
    SetDeadline(context, absl::Seconds(5));
    api::CancelJobRequest cancel;
    cancel.set_job_id(state.job_id);
    api::Job job;
    const absl::Status cancelled = common::FromGrpcStatus(stub.CancelJob(&context, cancel, &job));
    return absl::CancelledError(absl::StrCat("interrupted; job ", state.job_id,
                                             cancelled.ok() ? " cancelled" : " not cancelled: ",
                                             cancelled.ok() ? "" : cancelled.ToString()));
  }
  if (!status.ok()) return status;
  if (absl::Status s = TerminalStatus(terminal); !s.ok()) return s;

  const api::Completed& done = terminal.completed();
  if (video.size() != done.result_bytes()) {
    return absl::DataLossError(absl::StrCat("received ", video.size(), " bytes of a ",
                                            done.result_bytes(), "-byte result"));
  }
  if (absl::Status s = WriteFileAtomically(options.out_path, video); !s.ok()) return s;
  result.result_bytes = video.size();
  result.timings = done.timings();
  io.out << "job " << result.job_id << " completed: wrote " << options.out_path << " ("
         << video.size() << " bytes, " << result.mime << ")\n";
  for (const std::string& p : result.previews) io.out << "preview " << p << "\n";
  io.out << FormatTimings(done.timings(), stage_frames);
  return result;
}

absl::Status RunSubmit(api::VideoGeneration::StubInterface& stub,
                       const api::GenerateRequest& request, absl::Duration deadline,
                       CommandIo& io) {
  grpc::ClientContext context;
  SetDeadline(context, deadline);
  api::Job job;
  absl::Status s = common::FromGrpcStatus(stub.SubmitJob(&context, request, &job));
  if (!s.ok()) return s;
  io.out << job.job_id() << "\n";
  return absl::OkStatus();
}

absl::Status RunWatch(api::VideoGeneration::StubInterface& stub, const std::string& job_id,
                      int64_t after_seq, const FollowOptions& options, CommandIo& io) {
  if (job_id.empty()) return absl::InvalidArgumentError("watch: JOB id required");
  FollowState state;
  state.job_id = job_id;
  state.last_seq = after_seq;
  api::JobEvent terminal;
  absl::Status s = Follow(stub, nullptr, state, options, io, [&](const api::JobEvent& e) {
    io.out << FormatEvent(e) << "\n" << std::flush;
    if (IsTerminal(e)) terminal = e;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return TerminalStatus(terminal);
}

namespace {

absl::Status PrintJson(const google::protobuf::Message& message, CommandIo& io) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) return absl::InternalError(std::string(status.message()));
  io.out << json;
  return absl::OkStatus();
}

}  // namespace

absl::Status RunGet(api::VideoGeneration::StubInterface& stub, const std::string& job_id,
                    absl::Duration deadline, CommandIo& io) {
  grpc::ClientContext context;
  SetDeadline(context, deadline);
  api::GetJobRequest request;
  request.set_job_id(job_id);
  api::Job job;
  absl::Status s = common::FromGrpcStatus(stub.GetJob(&context, request, &job));
  if (!s.ok()) return s;
  return PrintJson(job, io);
}

absl::Status RunCancel(api::VideoGeneration::StubInterface& stub, const std::string& job_id,
                       absl::Duration deadline, CommandIo& io) {
  grpc::ClientContext context;
  SetDeadline(context, deadline);
  api::CancelJobRequest request;
  request.set_job_id(job_id);
  api::Job job;
  absl::Status s = common::FromGrpcStatus(stub.CancelJob(&context, request, &job));
  if (!s.ok()) return s;
  return PrintJson(job, io);
}

absl::Status RunModels(api::VideoGeneration::StubInterface& stub, absl::Duration deadline,
                       CommandIo& io) {
  grpc::ClientContext context;
  SetDeadline(context, deadline);
  api::ListModelsResponse response;
  absl::Status s = common::FromGrpcStatus(stub.ListModels(&context, api::ListModelsRequest(), &response));
  if (!s.ok()) return s;
  io.out << absl::StrFormat("%-20s %-12s %-16s %6s %9s %4s %-10s %8s %-13s %6s %7s\n", "MODEL",
                            "KIND", "PARAM", "FRAMES", "SIZE", "FPS", "STEPS", "GUIDANCE",
                            "TOKENIZER", "TOKENS", "WORKERS");
  for (const api::ModelInfo& m : response.models()) {
    std::string steps;
    for (int i = 0; i < m.default_stage_steps_size(); ++i) {
      absl::StrAppend(&steps, i > 0 ? "," : "", m.default_stage_steps(i));
    }
    // The API's defaults for models announced without them: words, 32 tokens.
    const std::string tokenizer = m.tokenizer_kind().empty() ? "words" : m.tokenizer_kind();
    const uint32_t max_tokens = m.max_tokens() == 0 ? 32 : m.max_tokens();
    // Latent models: the schedule family and what the denoiser predicts (a VP model may
    // predict v), e.g. "flow:velocity", "vp:epsilon", "vp:v".
    std::string param = m.parameterization();
    if (m.has_latent()) {
      const std::string& p = m.latent().prediction();
      param = absl::StrCat(param == "flow_matching" ? "flow" : "vp", ":",
                           p == "flow_velocity" ? "velocity" : p);
    }
    io.out << absl::StrFormat("%-20s %-12s %-16s %6d %9s %4d %-10s %8.1f %-13s %6d %7d%s\n",
                              m.name(), m.kind(), param, m.frames(),
                              absl::StrCat(m.width(), "x", m.height()), m.fps(), steps,
                              m.default_guidance_scale(), tokenizer, max_tokens,
                              m.ready_workers(),
                              m.name() == response.default_model() ? " (default)" : "");
  }
  return absl::OkStatus();
}

}  // namespace tpdiff::client
