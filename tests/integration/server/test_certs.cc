#include "test_certs.h"

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace tpdiff::testing {
namespace {

absl::Status Run(const std::string& command) {
  const std::string quiet = absl::StrCat(command, " >/dev/null 2>&1");
  if (std::system(quiet.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("failed (is openssl installed?): ", command));
  }
  return absl::OkStatus();
}

// A P-256 key and a certificate signed by `ca` (self-signed when `ca` is empty).
absl::Status MakeCert(const std::string& dir, const std::string& name, const std::string& subject,
                      const std::string& extensions, const std::string& ca) {
  const std::string base = absl::StrCat(dir, "/", name);
  {
    std::ofstream(base + ".ext") << extensions << "\n";
  }
  if (absl::Status s = Run(absl::StrCat(
          "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ",
          base, ".key -out ", base, ".csr -subj ", subject));
      !s.ok()) {
    return s;
  }
  const std::string signer = ca.empty() ? absl::StrCat("-signkey ", base, ".key")
                                        : absl::StrCat("-CA ", dir, "/", ca, ".pem -CAkey ", dir,
                                                       "/", ca, ".key -CAcreateserial");
  return Run(absl::StrCat("openssl x509 -req -days 2 -in ", base, ".csr ", signer, " -extfile ",
                          base, ".ext -out ", base, ".pem"));
}

}  // namespace

std::string ReadTestFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<TestCerts> MakeTestCerts() {
  std::string pattern = absl::StrCat(::getenv("TMPDIR") ? ::getenv("TMPDIR") : "/tmp",
                                     "/tpdiff-certs-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  const std::string dir = pattern;
  const char* kCa = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign";
  const char* kServer =
      "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
      "subjectAltName=DNS:localhost,IP:127.0.0.1";
  const char* kNamedServer =
      "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
      "subjectAltName=DNS:tpdiff-front.test";
  const char* kClient =
      "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth";
  for (absl::Status s : {MakeCert(dir, "ca", "/CN=tpdiff-test-ca", kCa, ""),
                         MakeCert(dir, "server", "/CN=localhost", kServer, "ca"),
                         MakeCert(dir, "named-server", "/CN=tpdiff-front.test", kNamedServer, "ca"),
                         MakeCert(dir, "worker", "/CN=tpdiff-worker", kClient, "ca"),
                         MakeCert(dir, "rogue-ca", "/CN=rogue-ca", kCa, ""),
                         MakeCert(dir, "rogue", "/CN=tpdiff-worker", kClient, "rogue-ca")}) {
    if (!s.ok()) return s;
  }
  TestCerts certs;
  certs.dir = dir;
  certs.ca_cert = dir + "/ca.pem";
  certs.server_cert = dir + "/server.pem";
  certs.server_key = dir + "/server.key";
  certs.named_server_cert = dir + "/named-server.pem";
  certs.named_server_key = dir + "/named-server.key";
  certs.worker_cert = dir + "/worker.pem";
  certs.worker_key = dir + "/worker.key";
  certs.rogue_ca_cert = dir + "/rogue-ca.pem";
  certs.rogue_cert = dir + "/rogue.pem";
  certs.rogue_key = dir + "/rogue.key";
  return certs;
}

}  // namespace tpdiff::testing
