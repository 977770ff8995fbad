// tpdiff: command-line client of the TPDiff video-generation service. Flags and wiring only;
// the commands live in tpdiff::client.

#include <unistd.h>

#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "tpdiff/client/cli.h"
#include "tpdiff/common/flags.h"

ABSL_FLAG(std::string, server, "localhost:50051", "Front server address");
ABSL_FLAG(absl::Duration, deadline, absl::ZeroDuration(), "Per-call deadline; 0 = none");
ABSL_FLAG(std::string, prompt, "", "Caption (words from the model's vocabulary)");
ABSL_FLAG(std::string, negative_prompt, "", "Caption to steer away from");
ABSL_FLAG(std::string, model, "", "Model name; empty = the server's default");
ABSL_FLAG(uint32_t, frames, 0, "Frames; 0 = model default");
ABSL_FLAG(uint32_t, height, 0, "Height in pixels; 0 = model default");
ABSL_FLAG(uint32_t, width, 0, "Width in pixels; 0 = model default");
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

int main(int argc, char** argv) {
  using namespace tpdiff::client;
  const std::vector<std::string> args = tpdiff::common::ParseCommandLine(argc, argv, kCliUsage);
  CliOptions o;
  o.server = absl::GetFlag(FLAGS_server);
  o.deadline = absl::GetFlag(FLAGS_deadline);
  o.security.insecure = absl::GetFlag(FLAGS_insecure);
  o.security.ca_file = absl::GetFlag(FLAGS_tls_ca);
  o.security.api_key = absl::GetFlag(FLAGS_api_key);
  o.security.server_name = absl::GetFlag(FLAGS_tls_server_name);
  o.request.prompt = absl::GetFlag(FLAGS_prompt);
  o.request.negative_prompt = absl::GetFlag(FLAGS_negative_prompt);
  o.request.model = absl::GetFlag(FLAGS_model);
  o.request.frames = absl::GetFlag(FLAGS_frames);
  o.request.height = absl::GetFlag(FLAGS_height);
  o.request.width = absl::GetFlag(FLAGS_width);
  o.request.steps = absl::GetFlag(FLAGS_steps);
  o.request.seed = absl::GetFlag(FLAGS_seed);
  o.request.guidance = absl::GetFlag(FLAGS_guidance);
  o.request.format = absl::GetFlag(FLAGS_format);
  o.request.preview_format = absl::GetFlag(FLAGS_preview_format);
  o.request.sampler = absl::GetFlag(FLAGS_sampler);
  o.request.priority = absl::GetFlag(FLAGS_priority);
  o.request.fps = absl::GetFlag(FLAGS_fps);
  o.request.scale = absl::GetFlag(FLAGS_scale);
  o.request.request_id = absl::GetFlag(FLAGS_request_id);
  o.request.max_queue_wait = absl::GetFlag(FLAGS_max_queue_wait);
  o.out = absl::GetFlag(FLAGS_out);
  o.previews_dir = absl::GetFlag(FLAGS_previews_dir);
  o.after_seq = absl::GetFlag(FLAGS_after_seq);
  o.service = absl::GetFlag(FLAGS_service);

  // SIGINT/SIGTERM interrupt the call in flight (generate then cancels its job).
  Interrupt interrupt;
  InterruptOnSignals(interrupt);
  return RunCli(args, std::move(o), interrupt,
                CommandIo{std::cout, std::cerr, isatty(STDERR_FILENO) != 0});
}
