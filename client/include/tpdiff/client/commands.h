#ifndef TPDIFF_CLIENT_COMMANDS_H_
#define TPDIFF_CLIENT_COMMANDS_H_

// The `tpdiff` subcommands as library calls over a VideoGeneration stub, so tests drive them
// against a real server in process. Each writes results to io.out and diagnostics and the
// progress bar to io.err, and returns the server's status (message included) on failure.

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tpdiff/v1/video_generation.grpc.pb.h"

namespace tpdiff::client {

struct CommandIo {
  std::ostream& out;
  std::ostream& err;
  bool tty = false;  // err is a terminal: redraw the progress line in place
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

// Ctrl-C for a running command: Trigger (from a signal thread) cancels the call in flight;
// `generate` then cancels its job on the server. Thread-safe.
class Interrupt {
 public:
  void Trigger();
  bool triggered() const;
  // The call to cancel on Trigger; null to detach. The context must outlive the attachment.
  void Attach(grpc::ClientContext* context);

 private:
  mutable absl::Mutex mu_;
  bool triggered_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
};

struct FollowOptions {
  absl::Duration deadline = absl::ZeroDuration();  // per call; 0 = none
  // Consecutive resume attempts (WatchJob from the last seq) without a new event before
  // giving up on a broken stream. Only a stream that delivered an event is resumed: when the
  // first call gets no event and UNAVAILABLE, the server was never reached (no job exists to
  // resume) and the call fails at once, naming `server`.
  int max_resumes = 8;
  absl::Duration resume_backoff = absl::Milliseconds(200);  // doubled per attempt, max 5 s
  Interrupt* interrupt = nullptr;
  std::string server;  // the address dialled, for messages
};

struct GenerateOptions {
  tpdiff::v1::GenerateRequest request;
  std::string out_path;      // the final video
  std::string previews_dir;  // DIR/stage<k>.<ext> per preview; empty = not saved
  FollowOptions follow;
};

struct GenerateResult {
  std::string job_id;
  int64_t last_seq = 0;
  int resumes = 0;  // streams re-opened with WatchJob
  std::string mime;
  uint64_t result_bytes = 0;
  tpdiff::v1::Timings timings;
  std::vector<std::string> previews;  // paths written, in order
};

// Submits with Generate, draws the progress bar, saves previews as they arrive and the video
// at the end (written to a temporary file and renamed), prints per-stage timings. A broken
// stream is resumed with WatchJob(job_id, after_seq) instead of failing; the request is sent
// with cancel_on_disconnect = false for that reason (Ctrl-C cancels through Interrupt).
// A failed job returns its code and message; a cancelled one CANCELLED.
absl::StatusOr<GenerateResult> RunGenerate(tpdiff::v1::VideoGeneration::StubInterface& stub,
                                           GenerateOptions options, CommandIo& io);

// Prints the job id.
absl::Status RunSubmit(tpdiff::v1::VideoGeneration::StubInterface& stub,
                       const tpdiff::v1::GenerateRequest& request, absl::Duration deadline,
                       CommandIo& io);
// Prints one line per event (FormatEvent) until the job ends; resumes like generate.
absl::Status RunWatch(tpdiff::v1::VideoGeneration::StubInterface& stub,
                      const std::string& job_id, int64_t after_seq, const FollowOptions& options,
                      CommandIo& io);
// Print the Job as JSON.
absl::Status RunGet(tpdiff::v1::VideoGeneration::StubInterface& stub, const std::string& job_id,
                    absl::Duration deadline, CommandIo& io);
absl::Status RunCancel(tpdiff::v1::VideoGeneration::StubInterface& stub,
                       const std::string& job_id, absl::Duration deadline, CommandIo& io);
// A table of the models.
absl::Status RunModels(tpdiff::v1::VideoGeneration::StubInterface& stub, absl::Duration deadline,
                       CommandIo& io);

// "seq 4 progress stage 1/3 step 2/10 frames 4", "seq 9 result_chunk offset 0 bytes 1048576", ...
std::string FormatEvent(const tpdiff::v1::JobEvent& event);

}  // namespace tpdiff::client

#endif  // TPDIFF_CLIENT_COMMANDS_H_
