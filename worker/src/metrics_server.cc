#include "tpdiff/worker/metrics_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "prometheus/text_serializer.h"

namespace tpdiff::worker {
namespace {

constexpr size_t kMaxRequestBytes = 8192;

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// Splits "host:port", "[v6]:port" or "port" into host ("" = any) and port.
absl::Status SplitHostPort(const std::string& listen, std::string& host, std::string& port) {
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics-listen: \"", listen, "\" ", why, "; expected HOST:PORT"));
  };
  if (!listen.empty() && listen[0] == '[') {
    const size_t close = listen.find("]:");
    if (close == std::string::npos) return bad("has no ]:PORT");
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else if (const size_t colon = listen.rfind(':'); colon != std::string::npos) {
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
    if (host.find(':') != std::string::npos) return bad("is an IPv6 address without [ ]");
  } else {
    port = listen;
  }
  int number = 0;
  if (!absl::SimpleAtoi(port, &number) || number < 0 || number > 65535) {
    return bad("has no port number 0..65535");
  }
  return absl::OkStatus();
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

std::string Response(absl::string_view status, absl::string_view content_type,
                     const std::string& body, bool head) {
  return absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n",
                      head ? "" : body);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen, std::weak_ptr<prometheus::Collectable> collectable,
    const WorkerReadiness* readiness) {
  std::string host, port;
  if (absl::Status s = SplitHostPort(listen, host, port); !s.ok()) return s;
  addrinfo hints{};
  hints.ai_family = host.empty() ? AF_INET : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints,
                                 &found);
      rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics-listen: \"", listen, "\": ", gai_strerror(rc)));
  }
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(found);
    return Errno("metrics-listen: socket");
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, found->ai_addr, found->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
    const absl::Status s = Errno(absl::StrCat("metrics-listen: cannot listen on ", listen));
    freeaddrinfo(found);
    close(fd);
    return s;
  }
  freeaddrinfo(found);
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
  const int bound_port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  const int wake = eventfd(0, EFD_CLOEXEC);
  if (wake < 0) {
    close(fd);
    return Errno("metrics-listen: eventfd");
  }
  auto server = std::unique_ptr<MetricsServer>(
      new MetricsServer(fd, wake, bound_port, std::move(collectable), readiness));
  server->thread_ = std::thread([s = server.get()] { s->Serve(); });
  return server;
}

MetricsServer::MetricsServer(int listen_fd, int wake_fd, int port,
                             std::weak_ptr<prometheus::Collectable> collectable,
                             const WorkerReadiness* readiness)
    : listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      port_(port),
      collectable_(std::move(collectable)),
      readiness_(readiness) {}

MetricsServer::~MetricsServer() {
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    // Cannot happen for an eventfd below its maximum; the join below would then hang, so
    // make it loud.
    std::perror("tpdiff-worker: metrics server wake-up");
  }
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
  close(wake_fd_);
}

void MetricsServer::Serve() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // the peer went away, or out of descriptors for a moment
    Answer(fd);
    close(fd);
  }
}

void MetricsServer::Answer(int fd) {
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  std::string request;
  char buffer[2048];
  while (request.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // closed, or silent for 5 s
    request.append(buffer, static_cast<size_t>(n));
    if (request.size() > kMaxRequestBytes) {
      SendAll(fd, Response("431 Request Header Fields Too Large", "text/plain", "", false));
      return;
    }
  }
  const std::string line = request.substr(0, request.find("\r\n"));
  const std::vector<std::string> parts = absl::StrSplit(line, ' ');
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/")) {
    SendAll(fd, Response("400 Bad Request", "text/plain", "bad request line\n", false));
    return;
  }
  const std::string& method = parts[0];
  const std::string path = parts[1].substr(0, parts[1].find('?'));
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    SendAll(fd, Response("405 Method Not Allowed", "text/plain", "GET or HEAD\n", false));
    return;
  }
  if (readiness_ != nullptr && (path == "/startupz" || path == "/readyz")) {
    const absl::Status probe = path == "/startupz" ? readiness_->Started() : readiness_->Ready();
    SendAll(fd, probe.ok() ? Response("200 OK", "text/plain", "ok\n", head)
                           : Response("503 Service Unavailable", "text/plain",
                                      absl::StrCat(probe.message(), "\n"), head));
    return;
  }
  if (path != "/metrics") {
    SendAll(fd, Response("404 Not Found", "text/plain",
                         readiness_ != nullptr ? "served here: /metrics, /startupz, /readyz\n"
                                               : "only /metrics is served here\n",
                         head));
    return;
  }
  std::string body;
  if (const std::shared_ptr<prometheus::Collectable> c = collectable_.lock(); c != nullptr) {
    body = prometheus::TextSerializer().Serialize(c->Collect());
  }
  SendAll(fd, Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", body, head));
}

}  // namespace tpdiff::worker
