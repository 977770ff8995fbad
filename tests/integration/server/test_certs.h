#ifndef TPDIFF_TESTS_INTEGRATION_SERVER_TEST_CERTS_H_
#define TPDIFF_TESTS_INTEGRATION_SERVER_TEST_CERTS_H_

#include <string>

#include "absl/status/statusor.h"

namespace tpdiff::testing {

// Certificates made at test time with the openssl command line (no key is committed), in a
// fresh temporary folder: a test CA, a server certificate for localhost and 127.0.0.1, a
// worker client certificate from the same CA, a second server certificate that names only
// tpdiff-front.test (as a Kubernetes Service's would: not the address a test dials), and a
// "rogue" CA with its own client certificate. Paths to the PEM files.
struct TestCerts {
  std::string dir;
  std::string ca_cert;
  std::string server_cert, server_key;
  std::string named_server_cert, named_server_key;  // SAN DNS:tpdiff-front.test only
  std::string worker_cert, worker_key;
  std::string rogue_ca_cert;
  std::string rogue_cert, rogue_key;
};

absl::StatusOr<TestCerts> MakeTestCerts();

// The contents of a file ("" when unreadable).
std::string ReadTestFile(const std::string& path);

}  // namespace tpdiff::testing

#endif  // TPDIFF_TESTS_INTEGRATION_SERVER_TEST_CERTS_H_
