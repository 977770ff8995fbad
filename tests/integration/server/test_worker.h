#ifndef TPDIFF_TESTS_INTEGRATION_SERVER_TEST_WORKER_H_
#define TPDIFF_TESTS_INTEGRATION_SERVER_TEST_WORKER_H_

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tpdiff/worker/v1/worker.grpc.pb.h"

namespace tpdiff::server::testing {

// Test double of the tpdiff-worker process: a real gRPC client of WorkerGateway.Connect
// that runs a fixed script per job instead of a model: started, one progress per stage,
// 3 stage previews, 3 result chunks (kChunkBytes each), completed{stage_seconds 0.3/0.2/0.1}.
//
// In auto mode every assigned job runs its whole script at once; in manual mode the test
// drives it (SendStarted, SendProgress, SendRest). Once drained and idle it closes
// its side of the stream, like the real worker. A Cancel from the front is recorded and confirmed with a
// Cancelled event. Thread-safe.
class TestWorker {
 public:
  static constexpr int kStages = 3;
  static constexpr int kChunkBytes = 10;

  TestWorker(const std::string& target, std::string worker_id, bool auto_run, uint32_t slots = 1);
  // Dials over `channel` (TLS, client certificates) and sends `secret` as the worker secret
  // metadata when non-empty.
  TestWorker(std::shared_ptr<grpc::Channel> channel, std::string worker_id, bool auto_run,
             std::string secret);
  ~TestWorker();  // closes the stream

  // Sends Hello (announcing the "tiny" model with its ModelInfo) and waits for Welcome.
  bool Connect(absl::Duration timeout = absl::Seconds(10));
  // After a failed Connect: the status the front closed the stream with.
  grpc::Status Finish();
  void set_auto_run(bool auto_run);

  // Waits until at least `count` jobs were assigned; returns their assigns.
  std::vector<tpdiff::worker::v1::Assign> WaitForAssigns(size_t count,
                                                         absl::Duration timeout = absl::Seconds(10));
  bool WaitForCancel(const std::string& job_id, absl::Duration timeout = absl::Seconds(10));
  bool WaitForDrain(absl::Duration timeout = absl::Seconds(10));

  // Script pieces for manual mode.
  void SendStarted(const tpdiff::worker::v1::Assign& assign);
  void SendProgress(const tpdiff::worker::v1::Assign& assign);
  void SendRest(const tpdiff::worker::v1::Assign& assign);  // previews, chunks, completed
  void RunScript(const tpdiff::worker::v1::Assign& assign);  // all of the above

  // Cancels the stream abruptly, like a crashed or partitioned worker.
  void Drop();

  tpdiff::worker::v1::Welcome welcome() const;

 private:
  void Write(const tpdiff::worker::v1::WorkerMessage& message);
  void Emit(const tpdiff::worker::v1::Assign& assign, tpdiff::v1::JobEvent event);
  void ReadLoop();
  void JobEnded(const std::string& job_id);
  void MaybeCloseAfterDrain();

  const std::string worker_id_;
  const uint32_t slots_;
  const std::string secret_;
  std::unique_ptr<tpdiff::worker::v1::WorkerGateway::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<tpdiff::worker::v1::WorkerMessage,
                                           tpdiff::worker::v1::DispatchMessage>>
      stream_;
  std::thread reader_;
  absl::Mutex write_mu_;  // one writer at a time on the stream

  mutable absl::Mutex mu_;
  bool auto_run_ ABSL_GUARDED_BY(mu_);
  std::optional<tpdiff::worker::v1::Welcome> welcome_ ABSL_GUARDED_BY(mu_);
  std::vector<tpdiff::worker::v1::Assign> assigns_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> cancels_ ABSL_GUARDED_BY(mu_);
  bool drained_ ABSL_GUARDED_BY(mu_) = false;
  bool dropped_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;               // WritesDone sent
  bool read_ended_ ABSL_GUARDED_BY(mu_) = false;           // the front ended the stream
  std::set<std::string> open_jobs_ ABSL_GUARDED_BY(mu_);  // assigned, not ended here
};

}  // namespace tpdiff::server::testing

#endif  // TPDIFF_TESTS_INTEGRATION_SERVER_TEST_WORKER_H_
