#ifndef TPDIFF_TESTS_INTEGRATION_SERVER_CERTS_SUITE_H_
#define TPDIFF_TESTS_INTEGRATION_SERVER_CERTS_SUITE_H_

#include <gtest/gtest.h>

#include <filesystem>
#include <utility>

#include "test_certs.h"

namespace tpdiff::testing {

// Fixture base for suites that share one set of TestCerts: made before the suite's first
// test (openssl runs cost about a second) and removed after its last. A failure to make them
// fails every test of the suite with MakeTestCerts's error.
class CertsSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<TestCerts> certs = MakeTestCerts();
    if (!certs.ok()) {
      *make_error_ = certs.status();
      return;
    }
    certs_ = new TestCerts(*std::move(certs));
  }
  static void TearDownTestSuite() {
    if (certs_ != nullptr) std::filesystem::remove_all(certs_->dir);
    delete certs_;
    certs_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(certs_, nullptr) << *make_error_; }

  // Suites run one after another, so one slot serves every suite of the binary.
  static inline TestCerts* certs_ = nullptr;

 private:
  static inline absl::Status* const make_error_ = new absl::Status();
};

}  // namespace tpdiff::testing

#endif  // TPDIFF_TESTS_INTEGRATION_SERVER_CERTS_SUITE_H_
