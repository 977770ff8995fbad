#ifndef TPDIFF_CLIENT_CLI_H_
#define TPDIFF_CLIENT_CLI_H_

// The `tpdiff` command line after flag parsing: the usage text, the choice of command and the
// exit codes. client/main.cc only turns flags into CliOptions.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "tpdiff/client/commands.h"
#include "tpdiff/client/request.h"
#include "tpdiff/common/channel_security.h"

namespace tpdiff::client {

extern const char kCliUsage[];

// Exit codes of the `tpdiff` binary.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // an RPC failed, or the job ended in an error
inline constexpr int kExitUsage = 2;
inline constexpr int kExitJobFailed = 3;
inline constexpr int kExitJobCancelled = 4;

struct CliOptions {
  std::string server = "localhost:50051";
  // api_key empty = env TPDIFF_API_KEY.
  common::ChannelSecurity security;
  absl::Duration deadline = absl::ZeroDuration();  // per call; 0 = none
  RequestFlags request;      // generate, submit; `previews` follows previews_dir
  std::string out;           // generate: file for the video
  std::string previews_dir;  // generate: folder for stage previews
  int64_t after_seq = 0;     // watch
  std::string service;       // health: empty = the whole server
};

// Runs the command args[1] (generate, submit, watch, get, cancel, models, health; args[2] is
// its job id) and returns the exit code; failures are reported on io.err. `interrupt` (from a
// signal thread) cancels the call in flight.
int RunCli(const std::vector<std::string>& args, CliOptions options, Interrupt& interrupt,
           CommandIo io);

// Triggers `interrupt` on the first SIGINT or SIGTERM (common::CatchShutdownSignals), from a
// detached thread. Call before any other thread starts.
void InterruptOnSignals(Interrupt& interrupt);

}  // namespace tpdiff::client

#endif  // TPDIFF_CLIENT_CLI_H_
