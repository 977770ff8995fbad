// tpdiff: command-line client of the TPDiff video-generation service. Flags and wiring only;
// the commands live in tpdiff::client.

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "tpdiff/client/commands.h"
#include "tpdiff/client/credentials.h"
#include "tpdiff/client/flag_names.h"
#include "tpdiff/client/health.h"
#include "tpdiff/client/request.h"

ABSL_FLAG(std::string, server, "localhost:50051", "Front server address");
ABSL_FLAG(absl::Duration, deadline, absl::ZeroDuration(), "Per-call deadline; 0 = none");
ABSL_FLAG(std::string, prompt, "", "Caption (words from the model's vocabulary)");
ABSL_FLAG(std::string, negative_prompt, "", "Caption to steer away from");
ABSL_FLAG(std::string, model, "", "Model name; empty = the server's default");
ABSL_FLAG(uint32_t, frames, 0, "Frames; 0 = model default");
ABSL_FLAG(std::string, steps, "", "Steps per stage, noisiest first, e.g. 10,10,10");
ABSL_FLAG(uint64_t, seed, 0, "Seed; 0 = random");
ABSL_FLAG(double, guidance, 0, "Guidance scale; 0 = model default");
ABSL_FLAG(std::string, format, "mp4", "Output format: mp4, webm, gif or png");
ABSL_FLAG(std::string, preview_format, "gif", "Preview format: gif, mp4, webm or png");
ABSL_FLAG(std::string, sampler, "tpdiff", "tpdiff or vanilla");
ABSL_FLAG(std::string, priority, "standard", "interactive, standard or batch");
ABSL_FLAG(uint32_t, fps, 0, "Output frame rate; 0 = model default");
ABSL_FLAG(uint32_t, scale, 0, "Integer upscale of the output; 0 = automatic");
ABSL_FLAG(std::string, request_id, "", "Idempotency key");
ABSL_FLAG(absl::Duration, max_queue_wait, absl::ZeroDuration(), "Longest wait in the queue");
ABSL_FLAG(std::string, out, "", "generate: file for the video");
ABSL_FLAG(std::string, previews_dir, "", "generate: folder for stage previews");
ABSL_FLAG(int64_t, after_seq, 0, "watch: replay events after this seq");
ABSL_FLAG(std::string, service, "", "health: service name; empty = the whole server");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA that signs the server's certificate; empty = system roots");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name to verify in the server's certificate instead of --server's host (e.g. through "
          "kubectl port-forward)");
ABSL_FLAG(bool, insecure, false, "Plaintext gRPC (a local server started with --insecure)");
ABSL_FLAG(std::string, api_key, "", "API key (sent as a bearer token); default: env TPDIFF_API_KEY");

namespace {

constexpr char kUsage[] =
    "tpdiff <command> [flags]\n"
    "  generate --prompt \"...\" --out FILE [--model --frames --steps 10,10,10 --seed\n"
    "           --guidance --format mp4|webm|gif|png --sampler tpdiff|vanilla --priority\n"
    "           --fps --previews-dir DIR]\n"
    "  submit   --prompt \"...\" [same request flags]      prints the job id\n"
    "  watch JOB [--after-seq N]                           one line per event\n"
    "  get JOB | cancel JOB                                the job as JSON\n"
    "  models                                              the models served\n"
    "  health [--service NAME]                             exit 0 when SERVING\n"
    "common: --server HOST:PORT (default localhost:50051) --deadline DURATION\n"
    "        --tls-ca FILE | --insecure, --api-key KEY (or env TPDIFF_API_KEY)";

// Exit codes: 0 ok, 1 RPC or job error, 2 usage, 3 job failed, 4 job cancelled.
int Report(const absl::Status& status, int code_if_failed = 1) {
  if (status.ok()) return 0;
  std::cerr << "tpdiff: " << absl::StatusCodeToString(status.code()) << ": " << status.message()
            << "\n";
  return code_if_failed;
}

tpdiff::client::RequestFlags RequestFlagsFromCommandLine() {
  tpdiff::client::RequestFlags f;
  f.prompt = absl::GetFlag(FLAGS_prompt);
  f.negative_prompt = absl::GetFlag(FLAGS_negative_prompt);
  f.model = absl::GetFlag(FLAGS_model);
  f.frames = absl::GetFlag(FLAGS_frames);
  f.steps = absl::GetFlag(FLAGS_steps);
  f.seed = absl::GetFlag(FLAGS_seed);
  f.guidance = absl::GetFlag(FLAGS_guidance);
  f.format = absl::GetFlag(FLAGS_format);
  f.preview_format = absl::GetFlag(FLAGS_preview_format);
  f.previews = !absl::GetFlag(FLAGS_previews_dir).empty();
  f.sampler = absl::GetFlag(FLAGS_sampler);
  f.priority = absl::GetFlag(FLAGS_priority);
  f.fps = absl::GetFlag(FLAGS_fps);
  f.scale = absl::GetFlag(FLAGS_scale);
  f.request_id = absl::GetFlag(FLAGS_request_id);
  f.max_queue_wait = absl::GetFlag(FLAGS_max_queue_wait);
  return f;
}

}  // namespace

int main(int raw_argc, char** raw_argv) {
  using namespace tpdiff::client;
  std::vector<std::string> storage;
  std::vector<char*> argv = NormalizeFlagNames(raw_argc, raw_argv, storage);
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> args = absl::ParseCommandLine(raw_argc, argv.data());
  if (args.size() < 2) {
    std::cerr << kUsage << "\n";
    return 2;
  }
  const std::string command = args[1];
  const std::string arg = args.size() > 2 ? args[2] : "";
  const absl::Duration deadline = absl::GetFlag(FLAGS_deadline);

  // SIGINT/SIGTERM interrupt the call in flight (generate then cancels its job).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  Interrupt interrupt;
  std::thread([&interrupt, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    interrupt.Trigger();
  }).detach();

  ChannelSecurity security;
  security.insecure = absl::GetFlag(FLAGS_insecure);
  security.ca_file = absl::GetFlag(FLAGS_tls_ca);
  security.api_key = absl::GetFlag(FLAGS_api_key);
  security.server_name = absl::GetFlag(FLAGS_tls_server_name);
  if (const char* env = std::getenv("TPDIFF_API_KEY"); security.api_key.empty() && env != nullptr) {
    security.api_key = env;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      MakeChannel(absl::GetFlag(FLAGS_server), security);
  if (!channel.ok()) return Report(channel.status(), 2);
  auto stub = tpdiff::v1::VideoGeneration::NewStub(*channel);
  CommandIo io{std::cout, std::cerr, isatty(STDERR_FILENO) != 0};
  FollowOptions follow;
  follow.deadline = deadline;
  follow.interrupt = &interrupt;

  auto job_code = [](const absl::Status& s) {
    if (absl::IsCancelled(s)) return 4;
    return s.message().find(" failed: ") != absl::string_view::npos ? 3 : 1;
  };

  if (command == "generate" || command == "submit") {
    absl::StatusOr<tpdiff::v1::GenerateRequest> request =
        BuildRequest(RequestFlagsFromCommandLine());
    if (!request.ok()) return Report(request.status(), 2);
    if (command == "submit") return Report(RunSubmit(*stub, *request, deadline, io));
    GenerateOptions options;
    options.request = *std::move(request);
    options.out_path = absl::GetFlag(FLAGS_out);
    options.previews_dir = absl::GetFlag(FLAGS_previews_dir);
    options.follow = follow;
    if (options.out_path.empty()) return Report(absl::InvalidArgumentError("--out: required"), 2);
    absl::StatusOr<GenerateResult> result = RunGenerate(*stub, options, io);
    return result.ok() ? 0 : Report(result.status(), job_code(result.status()));
  }
  if (command == "watch") {
    absl::Status s = RunWatch(*stub, arg, absl::GetFlag(FLAGS_after_seq), follow, io);
    return Report(s, job_code(s));
  }
  if (command == "get" || command == "cancel") {
    if (arg.empty()) return Report(absl::InvalidArgumentError(command + ": JOB id required"), 2);
    return Report(command == "get" ? RunGet(*stub, arg, deadline, io)
                                   : RunCancel(*stub, arg, deadline, io));
  }
  if (command == "models") return Report(RunModels(*stub, deadline, io));
  if (command == "health") {
    absl::StatusOr<std::string> serving = CheckHealth(
        *channel, absl::GetFlag(FLAGS_service),
        deadline > absl::ZeroDuration() ? deadline : absl::Seconds(5));
    if (!serving.ok()) return Report(serving.status());
    std::cout << *serving << "\n";
    return *serving == "SERVING" ? 0 : 1;
  }
  std::cerr << "tpdiff: unknown command \"" << command << "\"\n" << kUsage << "\n";
  return 2;
}
