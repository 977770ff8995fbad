#include "tpdiff/client/cli.h"

#include <cstdlib>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tpdiff/client/health.h"
#include "tpdiff/common/signals.h"

namespace tpdiff::client {

const char kCliUsage[] =
    "tpdiff <command> [flags]\n"
    "  generate --prompt \"...\" --out FILE [--model --frames --height --width\n"
    "           --steps 10,10,10 --seed --guidance --format mp4|webm|gif|png\n"
    "           --sampler tpdiff|vanilla --priority --fps --previews-dir DIR]\n"
    "  submit   --prompt \"...\" [same request flags]      prints the job id\n"
    "  watch JOB [--after-seq N]                           one line per event\n"
    "  get JOB | cancel JOB                                the job as JSON\n"
    "  models                                              the models served\n"
    "  health [--service NAME]                             exit 0 when SERVING\n"
    "common: --server HOST:PORT (default localhost:50051) --deadline DURATION\n"
    "        --tls-ca FILE | --insecure, --api-key KEY (or env TPDIFF_API_KEY)";

namespace {

int Report(CommandIo& io, const absl::Status& status, int code_if_failed = kExitError) {
  if (status.ok()) return kExitOk;
  io.err << "tpdiff: " << absl::StatusCodeToString(status.code()) << ": " << status.message()
         << "\n";
  return code_if_failed;
}

// A job that ended badly: cancelled, failed (RunGenerate/RunWatch say " failed: "), or an
// RPC error.
int JobExitCode(const absl::Status& status) {
  if (absl::IsCancelled(status)) return kExitJobCancelled;
  return status.message().find(" failed: ") != absl::string_view::npos ? kExitJobFailed
                                                                       : kExitError;
}

}  // namespace

int RunCli(const std::vector<std::string>& args, CliOptions options, Interrupt& interrupt,
           CommandIo io) {
  if (args.size() < 2) {
    io.err << kCliUsage << "\n";
    return kExitUsage;
  }
  const std::string& command = args[1];
  const std::string arg = args.size() > 2 ? args[2] : "";
  if (const char* env = std::getenv("TPDIFF_API_KEY");
      options.security.api_key.empty() && env != nullptr) {
    options.security.api_key = env;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      common::MakeChannel(options.server, options.security);
  if (!channel.ok()) return Report(io, channel.status(), kExitUsage);
  auto stub = tpdiff::v1::VideoGeneration::NewStub(*channel);
  FollowOptions follow;
  follow.deadline = options.deadline;
  follow.interrupt = &interrupt;
  follow.server = options.server;

  if (command == "generate" || command == "submit") {
    options.request.previews = !options.previews_dir.empty();
    absl::StatusOr<tpdiff::v1::GenerateRequest> request = BuildRequest(options.request);
    if (!request.ok()) return Report(io, request.status(), kExitUsage);
    if (command == "submit") return Report(io, RunSubmit(*stub, *request, options.deadline, io));
    if (options.out.empty()) {
      return Report(io, absl::InvalidArgumentError("--out: required"), kExitUsage);
    }
    GenerateOptions generate;
    generate.request = *std::move(request);
    generate.out_path = options.out;
    generate.previews_dir = options.previews_dir;
    generate.follow = follow;
    absl::StatusOr<GenerateResult> result = RunGenerate(*stub, generate, io);
    return result.ok() ? kExitOk : Report(io, result.status(), JobExitCode(result.status()));
  }
  if (command == "watch") {
    const absl::Status status = RunWatch(*stub, arg, options.after_seq, follow, io);
    return Report(io, status, JobExitCode(status));
  }
  if (command == "get" || command == "cancel") {
    if (arg.empty()) {
      return Report(io, absl::InvalidArgumentError(command + ": JOB id required"), kExitUsage);
    }
    return Report(io, command == "get" ? RunGet(*stub, arg, options.deadline, io)
                                       : RunCancel(*stub, arg, options.deadline, io));
  }
  if (command == "models") return Report(io, RunModels(*stub, options.deadline, io));
  if (command == "health") {
    absl::StatusOr<std::string> serving =
        CheckHealth(*channel, options.service,
                    options.deadline > absl::ZeroDuration() ? options.deadline : absl::Seconds(5));
    if (!serving.ok()) return Report(io, serving.status());
    io.out << *serving << "\n";
    return *serving == "SERVING" ? kExitOk : kExitError;
  }
  io.err << "tpdiff: unknown command \"" << command << "\"\n" << kCliUsage << "\n";
  return kExitUsage;
}

void InterruptOnSignals(Interrupt& interrupt) {
  common::CatchShutdownSignals();
  std::thread([&interrupt] {
    common::WaitForShutdownSignal();
    interrupt.Trigger();
  }).detach();
}

}  // namespace tpdiff::client
