#ifndef TPDIFF_WORKER_METRICS_SERVER_H_
#define TPDIFF_WORKER_METRICS_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "tpdiff/worker/readiness.h"

namespace tpdiff::worker {

// Serves GET /metrics (Prometheus text format 0.0.4) for one collectable on one thread, and,
// given a WorkerReadiness, the kubelet's HTTP probes: GET /startupz (models loaded) and
// GET /readyz (loaded and registered with the front), 200 "ok" or 503 with the reason.
//
// Why not prometheus::Exposer: Debian's civetweb starts its threads with a fixed 100 KiB stack,
// and a process that links LibTorch carries about 106 KiB of static TLS (OpenBLAS 60 KiB,
// glog 30 KiB, torch 10 KiB, ...), which glibc puts on every thread's stack. pthread_create
// then fails with EINVAL and Exposer throws "null context when constructing CivetServer.
// Possible problem binding to port" although the bind succeeded. This server uses default
// thread stacks.
//
// One connection at a time, each answered and closed (Connection: close); a client that does
// not send its request within 5 s is dropped, so a stuck scraper cannot wedge the endpoint.
//
// Thread safety: Start and the destructor from one thread; the collectable must be thread-safe
// (prometheus::Registry is). Ownership: holds only a weak reference to the collectable.
class MetricsServer {
 public:
  // `listen` is host:port ("127.0.0.1:9091", "0.0.0.0:0", "[::]:9091"; an empty host or a bare
  // port means every IPv4 address); port 0 picks a free port (see port()). INVALID_ARGUMENT
  // for a malformed address, UNAVAILABLE when it cannot be bound (errno text included).
  // `readiness` (may be null: no probe paths) must outlive the server.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& listen, std::weak_ptr<prometheus::Collectable> collectable,
      const WorkerReadiness* readiness = nullptr);
  ~MetricsServer();  // stops the thread and closes the socket

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }

 private:
  MetricsServer(int listen_fd, int wake_fd, int port,
                std::weak_ptr<prometheus::Collectable> collectable,
                const WorkerReadiness* readiness);
  void Serve();
  void Answer(int fd);

  const int listen_fd_;
  const int wake_fd_;  // eventfd: written by the destructor to stop Serve
  const int port_;
  const std::weak_ptr<prometheus::Collectable> collectable_;
  const WorkerReadiness* const readiness_;
  std::thread thread_;
};

}  // namespace tpdiff::worker

#endif  // TPDIFF_WORKER_METRICS_SERVER_H_
