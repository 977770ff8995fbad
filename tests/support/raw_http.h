#ifndef TPDIFF_TESTS_SUPPORT_RAW_HTTP_H_
#define TPDIFF_TESTS_SUPPORT_RAW_HTTP_H_

// HTTP as any scraper sends it, over a plain socket: tests of the /metrics endpoints want the
// exact bytes on the wire (status line, headers), not a client library's reading of them.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace tpdiff::testing {

// Sends `request` to 127.0.0.1:`port` and returns everything the server answers until it
// closes the connection; "" when nothing answers.
inline std::string RawHttpExchange(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
    char buffer[4096];
    ssize_t n;
    while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  }
  close(fd);
  return response;
}

// GET /metrics as HTTP/1.0, so that the server closes the connection after its answer.
inline std::string ScrapeMetrics(int port) {
  return RawHttpExchange(port, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
}

}  // namespace tpdiff::testing

#endif  // TPDIFF_TESTS_SUPPORT_RAW_HTTP_H_
