#include "tpdiff/worker/gateway_client.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "tpdiff/common/channel_security.h"
#include "tpdiff/common/files.h"
#include "tpdiff/common/grpc_status.h"
#include "tpdiff/common/proto_time.h"
#include "tpdiff/common/signals.h"

namespace tpdiff::worker {

namespace wv1 = ::tpdiff::worker::v1;

namespace {

constexpr absl::Duration kDefaultHeartbeat = absl::Seconds(5);
// After half-closing a drained stream, how long to wait for the front to end it.
constexpr absl::Duration kCloseGrace = absl::Seconds(5);

}  // namespace

absl::Status ConfigureGatewaySecurity(const GatewaySecurityFlags& flags,
                                      GatewayClientOptions& options) {
  common::ChannelSecurity security;
  security.insecure = flags.insecure;
  security.ca_file = flags.tls_ca;
  security.cert_file = flags.tls_cert;
  security.key_file = flags.tls_key;
  security.server_name = flags.tls_server_name;
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      common::MakeChannelCredentials(security);
  if (!credentials.ok()) return credentials.status();
  options.credentials = *std::move(credentials);
  options.tls_server_name = flags.tls_server_name;
  if (!flags.worker_secret_file.empty()) {
    absl::StatusOr<std::string> secret =
        common::ReadFileContents(flags.worker_secret_file, "--worker-secret-file");
    if (!secret.ok()) return secret.status();
    options.secret = std::string(absl::StripTrailingAsciiWhitespace(*secret));
  } else if (const char* env = std::getenv(common::kWorkerSecretEnv); env != nullptr) {
    options.secret = env;
  }
  return absl::OkStatus();
}

std::string DefaultWorkerId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host[0] != '\0' ? host : "worker", "-", getpid());
}

GatewayClient::GatewayClient(GatewayClientOptions options, const common::Clock& clock)
    : options_(std::move(options)), clock_(clock) {
  grpc::ChannelArguments args;
  // gRPC's own reconnect backoff (up to 120 s) would otherwise hide a restarted front from
  // our loop; keep it within ours.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options_.backoff.initial)));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(options_.backoff.max)));
  if (!options_.tls_server_name.empty()) args.SetSslTargetNameOverride(options_.tls_server_name);
  auto creds = options_.credentials ? options_.credentials : grpc::InsecureChannelCredentials();
  channel_ = grpc::CreateCustomChannel(options_.server_address, creds, args);
  stub_ = wv1::WorkerGateway::NewStub(channel_);
}

GatewayClient::~GatewayClient() { Shutdown(); }

void GatewayClient::Emit(wv1::WorkerEvent event) {
  wv1::WorkerMessage msg;
  *msg.mutable_event() = std::move(event);
  const size_t bytes = msg.ByteSizeLong();
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &GatewayClient::EmitAdmissible));
  if (!connected_ || shutdown_) return;
  outbox_bytes_ += bytes;
  outbox_.push_back(std::move(msg));
}

bool GatewayClient::EmitAdmissible() const {
  return !connected_ || shutdown_ || stream_done_ || outbox_bytes_ < options_.max_buffered_bytes;
}

bool GatewayClient::WriterHasWork() const {
  return !outbox_.empty() || stream_done_ || shutdown_ || runner_idle_ ||
         (draining_ && !idle_watch_.joinable());
}

bool GatewayClient::connected() const {
  absl::MutexLock lock(&mu_);
  return connected_;
}

int GatewayClient::welcomes() const {
  absl::MutexLock lock(&mu_);
  return welcomes_;
}

void GatewayClient::Drain() {
  if (options_.readiness != nullptr) options_.readiness->SetDraining();
  JobRunner* runner = nullptr;
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    runner = runner_;
  }
  if (runner != nullptr) runner->Drain();
}

void GatewayClient::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
  if (context_ != nullptr) context_->TryCancel();
}

absl::Status GatewayClient::Run(JobRunner& runner) {
  bool draining = false;
  {
    absl::MutexLock lock(&mu_);
    runner_ = &runner;
    draining = draining_;
  }
  if (draining) runner.Drain();
  Backoff backoff(options_.backoff);
  while (true) {
    const int welcomes_before = welcomes();
    absl::Status ended_with;
    const End end = ServeConnection(runner, &ended_with);
    if (end == End::kDrained) return absl::OkStatus();
    if (end == End::kShutdown) return absl::CancelledError("worker shut down");
    {
      absl::MutexLock lock(&mu_);
      if (shutdown_) return absl::CancelledError("worker shut down");
      // The stream is gone and its jobs with it: nothing is left to finish.
      if (draining_) return absl::OkStatus();
    }
    const bool welcomed = welcomes() > welcomes_before;
    if (welcomed) backoff.Reset();
    const absl::Duration delay = backoff.Next();
    // One line per attempt: a front that rejects this worker (UNAUTHENTICATED: a wrong secret;
    // UNAVAILABLE with a handshake error: an untrusted certificate) would otherwise look like
    // one that is merely down.
    std::cerr << "tpdiff-worker: " << (welcomed ? "stream to " : "connecting to ")
              << options_.server_address << " ended: " << ended_with << "; retry "
              << backoff.attempt() << " in "
              << absl::FormatDuration(absl::Trunc(delay, absl::Milliseconds(1))) << "\n";
    absl::MutexLock lock(&mu_);
    // A drain while disconnected has nothing left to finish: it ends the wait and Run.
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shutdown_ || draining_; };
    clock_.AwaitWithDeadline(mu_, absl::Condition(&stop), clock_.Now() + delay);
    if (shutdown_) return absl::CancelledError("worker shut down");
    if (draining_) return absl::OkStatus();
  }
}

GatewayClient::End GatewayClient::ServeConnection(JobRunner& runner, absl::Status* ended_with) {
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return End::kShutdown;
    context_ = &context;
    stream_done_ = false;
    drained_ = false;
    runner_idle_ = false;
    outbox_.clear();
    outbox_bytes_ = 0;
  }
  if (!options_.secret.empty()) context.AddMetadata(common::kWorkerSecretMetadata, options_.secret);
  auto stream = stub_->Connect(&context);

  wv1::WorkerMessage hello_msg;
  wv1::Hello* hello = hello_msg.mutable_hello();
  hello->set_worker_id(options_.worker_id);
  hello->set_device(options_.device);
  hello->set_slots(options_.slots);
  hello->set_version(options_.version);
  for (const auto& info : options_.models) {
    hello->add_models(info.name());
    *hello->add_model_info() = info;
  }
  wv1::DispatchMessage first;
  const bool read = stream->Write(hello_msg) && stream->Read(&first);
  if (!read || !first.has_welcome()) {
    // A failed Read means the front ended the call: Finish has its status (a rejection's
    // UNAUTHENTICATED), which cancelling first would replace with CANCELLED.
    if (read) context.TryCancel();
    *ended_with = common::FromGrpcStatus(stream->Finish());
    absl::MutexLock lock(&mu_);
    context_ = nullptr;
    return shutdown_ ? End::kShutdown : End::kBroken;
  }
  absl::Duration heartbeat = options_.heartbeat_interval.value_or(
      common::FromProtoDuration(first.welcome().heartbeat_interval()));
  if (heartbeat <= absl::ZeroDuration()) heartbeat = kDefaultHeartbeat;
  // Before welcomes_ counts this stream, so whoever sees the count sees the readiness too.
  if (options_.readiness != nullptr) options_.readiness->SetRegistered(true);
  {
    absl::MutexLock lock(&mu_);
    connected_ = true;
    ++welcomes_;
  }

  std::thread writer([&] { WriterLoop(runner, stream.get(), &context, heartbeat); });
  wv1::DispatchMessage msg;
  while (stream->Read(&msg)) {
    switch (msg.kind_case()) {
      case wv1::DispatchMessage::kAssign:
        runner.Assign(msg.assign());
        break;
      case wv1::DispatchMessage::kCancel:
        runner.Cancel(msg.cancel().job_id(),
                      msg.cancel().reason().empty() ? "client" : msg.cancel().reason());
        break;
      case wv1::DispatchMessage::kDrain:
        Drain();
        break;
      default:  // a repeated Welcome changes nothing we rely on
        break;
    }
  }
  bool drained = false;
  {
    absl::MutexLock lock(&mu_);
    stream_done_ = true;
    connected_ = false;
    drained = drained_;
  }
  if (options_.readiness != nullptr) options_.readiness->SetRegistered(false);
  // Whatever is still running belongs to a stream the front has given up on.
  if (!drained) runner.AbandonAll();
  context.TryCancel();  // unblocks a writer stuck in Write
  writer.join();
  std::thread idle_watch;
  {
    absl::MutexLock lock(&mu_);
    idle_watch = std::move(idle_watch_);
  }
  // Returns once the runner is idle: it drained, or AbandonAll above ended its jobs.
  if (idle_watch.joinable()) idle_watch.join();
  *ended_with = common::FromGrpcStatus(stream->Finish());
  absl::MutexLock lock(&mu_);
  context_ = nullptr;
  outbox_.clear();
  outbox_bytes_ = 0;
  drained = drained || drained_;
  if (drained) return End::kDrained;
  return shutdown_ ? End::kShutdown : End::kBroken;
}

void GatewayClient::WriterLoop(
    JobRunner& runner, grpc::ClientReaderWriter<wv1::WorkerMessage, wv1::DispatchMessage>* stream,
    grpc::ClientContext* context, absl::Duration heartbeat) {
  absl::Time next_heartbeat = clock_.Now();  // the first one reports our free slots at once
  while (true) {
    wv1::WorkerMessage msg;
    bool have = false;
    bool drained = false;
    bool heartbeat_due = false;
    {
      absl::MutexLock lock(&mu_);
      clock_.AwaitWithDeadline(mu_, absl::Condition(this, &GatewayClient::WriterHasWork),
                               next_heartbeat);
      if (stream_done_ || shutdown_) return;
      if (draining_ && !idle_watch_.joinable()) {
        // The runner has no idle callback; this thread turns its WaitIdle into a wake-up.
        idle_watch_ = std::thread([this, &runner] {
          runner.WaitIdle(absl::InfiniteDuration());
          absl::MutexLock lock(&mu_);
          runner_idle_ = true;
        });
      }
      // A due heartbeat goes before queued events: a burst of result chunks must not starve
      // the lease.
      heartbeat_due = clock_.Now() >= next_heartbeat;
      if (!heartbeat_due && !outbox_.empty()) {
        msg = std::move(outbox_.front());
        outbox_.pop_front();
        outbox_bytes_ -= std::min(outbox_bytes_, msg.ByteSizeLong());
        have = true;
      } else if (runner_idle_ && outbox_.empty()) {
        // Idle means every job's last event was emitted already, and now written: the drain
        // is complete.
        drained_ = drained = true;
      }
    }
    if (drained) {
      stream->WritesDone();
      absl::MutexLock lock(&mu_);
      // The front ends the stream when it sees the half-close; do not wait forever.
      if (!clock_.AwaitWithDeadline(mu_, absl::Condition(&stream_done_),
                                    clock_.Now() + kCloseGrace)) {
        context->TryCancel();
      }
      return;
    }
    if (!have && !heartbeat_due) continue;  // only the idle watch was started
    if (!have) {
      const JobRunner::Load load = runner.CurrentLoad();
      wv1::Heartbeat* hb = msg.mutable_heartbeat();
      for (const std::string& id : load.running_job_ids) hb->add_running_job_ids(id);
      hb->set_free_slots(load.free_slots);
      next_heartbeat = clock_.Now() + heartbeat;
    }
    if (!stream->Write(msg)) {
      context->TryCancel();  // the reader notices and reconnects
      return;
    }
  }
}

void DrainOnSignals(GatewayClient& gateway) {
  std::thread([&gateway] {
    const int first = common::WaitForShutdownSignal();
    std::cerr << "tpdiff-worker: signal " << first << ", draining\n";
    gateway.Drain();
    const int second = common::WaitForShutdownSignal();
    std::cerr << "tpdiff-worker: signal " << second << ", stopping\n";
    gateway.Shutdown();
  }).detach();
}

}  // namespace tpdiff::worker
