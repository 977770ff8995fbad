// The front's security over real gRPC and real TLS on 127.0.0.1 (port 0): server
// certificates, worker authentication (secret and client certificates), API keys mapped to
// tenants, per-tenant isolation and limits. Certificates are made at test time (test_certs.h).

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "certs_suite.h"
#include "raw_http.h"
#include "test_model.h"
#include "test_worker.h"
#include "tpdiff/server/front_server.h"
#include "tpdiff/v1/video_generation.grpc.pb.h"

namespace tpdiff::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::TestWorker;
using testing::ValidRequest;
using tpdiff::v1::GenerateRequest;

constexpr char kSecret[] = "worker-secret-0123456789abcdef";
constexpr char kKeyA[] = "tenant-a-key-7f3e9b";
constexpr char kKeyB[] = "tenant-b-key-c41d20";

std::string ReadFile(const std::string& path) { return tpdiff::testing::ReadTestFile(path); }

class SecurityIntegrationTest : public tpdiff::testing::CertsSuite {
 protected:


  // TLS server; workers need the secret (and a client certificate when `mtls`). Tenant "a"
  // has `limits_a`; tenant "b" the defaults.
  void StartServer(bool mtls = false, TenantLimits limits_a = {}, bool with_metrics = false) {
    FrontServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = with_metrics ? "127.0.0.1:0" : "";
    options.tick_interval = absl::Milliseconds(20);
    options.tls = ServerTls{ReadFile(certs_->server_cert), ReadFile(certs_->server_key),
                            mtls ? ReadFile(certs_->ca_cert) : ""};
    options.worker_auth.require_client_cert = mtls;
    options.worker_auth.secret = mtls ? "" : kSecret;
    options.tenants = std::vector<TenantConfig>{
        TenantConfig{"a", {Sha256Hex(kKeyA)}, limits_a},
        TenantConfig{"b", {Sha256Hex(kKeyB)}, TenantLimits{}}};
    server_ = std::make_unique<FrontServer>(options, clock_);
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    target_ = "127.0.0.1:" + std::to_string(server_->port());
  }

  void TearDown() override {
    workers_.clear();
    if (server_) server_->Shutdown(absl::ZeroDuration());
  }

  // A TLS channel trusting `ca_file` (empty = the system roots), with an optional client
  // certificate.
  std::shared_ptr<grpc::Channel> TlsChannel(const std::string& ca_file,
                                            const std::string& cert_file = "",
                                            const std::string& key_file = "") {
    grpc::SslCredentialsOptions ssl;
    if (!ca_file.empty()) ssl.pem_root_certs = ReadFile(ca_file);
    if (!cert_file.empty()) {
      ssl.pem_cert_chain = ReadFile(cert_file);
      ssl.pem_private_key = ReadFile(key_file);
    }
    return grpc::CreateChannel(target_, grpc::SslCredentials(ssl));
  }

  std::unique_ptr<tpdiff::v1::VideoGeneration::Stub> Api(const std::string& key) {
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::SslCredentials({ReadFile(certs_->ca_cert)});
    if (!key.empty()) {
      creds = grpc::CompositeChannelCredentials(creds, grpc::AccessTokenCredentials(key));
    }
    return tpdiff::v1::VideoGeneration::NewStub(grpc::CreateChannel(target_, creds));
  }

  TestWorker& AddWorker(std::shared_ptr<grpc::Channel> channel, const std::string& secret,
                        bool auto_run = false) {
    workers_.push_back(
        std::make_unique<TestWorker>(std::move(channel), "w" + std::to_string(workers_.size()),
                                     auto_run, secret));
    return *workers_.back();
  }

  // An authenticated worker that holds jobs (manual mode), so the "tiny" model is known.
  TestWorker& AddGoodWorker() {
    TestWorker& worker = AddWorker(TlsChannel(certs_->ca_cert), kSecret);
    EXPECT_TRUE(worker.Connect());
    return worker;
  }

  static grpc::Status Submit(tpdiff::v1::VideoGeneration::Stub& api, const GenerateRequest& request,
                             tpdiff::v1::Job* job) {
    grpc::ClientContext context;
    return api.SubmitJob(&context, request, job);
  }

  static grpc::Status ListModels(tpdiff::v1::VideoGeneration::Stub& api) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    tpdiff::v1::ListModelsResponse response;
    return api.ListModels(&context, {}, &response);
  }

  static grpc::Status GetJob(tpdiff::v1::VideoGeneration::Stub& api, const std::string& job_id) {
    grpc::ClientContext context;
    tpdiff::v1::GetJobRequest request;
    request.set_job_id(job_id);
    tpdiff::v1::Job job;
    return api.GetJob(&context, request, &job);
  }

  static grpc::Status CancelJob(tpdiff::v1::VideoGeneration::Stub& api, const std::string& job_id) {
    grpc::ClientContext context;
    tpdiff::v1::CancelJobRequest request;
    request.set_job_id(job_id);
    tpdiff::v1::Job job;
    return api.CancelJob(&context, request, &job);
  }

  // GET /metrics from the exposer.
  std::string ScrapeMetrics() { return tpdiff::testing::ScrapeMetrics(server_->metrics_port()); }

  FakeClock clock_;  // rate limits refill only when a test advances it
  std::unique_ptr<FrontServer> server_;
  std::string target_;
  std::vector<std::unique_ptr<TestWorker>> workers_;
};

// Local workers dial localhost, so they check a name the certificate does hold.
TEST_F(SecurityIntegrationTest, LocalServerNameIsOneTheCertificateHolds) {
  absl::StatusOr<std::string> name = LocalServerName(ReadFile(certs_->server_cert));
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(*name, "localhost");
  name = LocalServerName(ReadFile(certs_->named_server_cert));  // SAN DNS:tpdiff-front.test
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(*name, "tpdiff-front.test");
  EXPECT_EQ(LocalServerName(ReadFile(certs_->server_key)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SecurityIntegrationTest, ClientNeedsTheCaToTalkTls) {
  StartServer();
  // The system roots do not know the test CA; plaintext is not served at all.
  auto untrusting = tpdiff::v1::VideoGeneration::NewStub(TlsChannel(""));
  EXPECT_EQ(ListModels(*untrusting).error_code(), grpc::StatusCode::UNAVAILABLE);
  auto wrong_ca = tpdiff::v1::VideoGeneration::NewStub(TlsChannel(certs_->rogue_ca_cert));
  EXPECT_EQ(ListModels(*wrong_ca).error_code(), grpc::StatusCode::UNAVAILABLE);
  auto plaintext = tpdiff::v1::VideoGeneration::NewStub(
      grpc::CreateChannel(target_, grpc::InsecureChannelCredentials()));
  EXPECT_EQ(ListModels(*plaintext).error_code(), grpc::StatusCode::UNAVAILABLE);

  grpc::Status trusted = ListModels(*Api(kKeyA));
  EXPECT_TRUE(trusted.ok()) << trusted.error_message();
}

TEST_F(SecurityIntegrationTest, MissingOrUnknownApiKeyIsUnauthenticated) {
  StartServer();
  AddGoodWorker();
  tpdiff::v1::Job job;
  grpc::Status no_key = Submit(*Api(""), ValidRequest(), &job);
  EXPECT_EQ(no_key.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(no_key.error_message(), HasSubstr("authorization: Bearer"));
  grpc::Status bad_key = Submit(*Api("not-a-key"), ValidRequest(), &job);
  EXPECT_EQ(bad_key.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(bad_key.error_message(), Not(HasSubstr("not-a-key")));
  EXPECT_EQ(ListModels(*Api("")).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // Streams too.
  grpc::ClientContext context;
  tpdiff::v1::JobEvent event;
  auto reader = Api("")->Generate(&context, ValidRequest());
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(server_->dispatcher().QueuedJobs() + server_->dispatcher().RunningJobs(), 0u);
}

TEST_F(SecurityIntegrationTest, WorkerWithoutTheSecretCannotRegisterOrGetJobs) {
  StartServer();
  TestWorker& anonymous = AddWorker(TlsChannel(certs_->ca_cert), "");
  EXPECT_FALSE(anonymous.Connect());
  EXPECT_EQ(anonymous.Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  TestWorker& guesser = AddWorker(TlsChannel(certs_->ca_cert), "worker-secret-guess-000000");
  EXPECT_FALSE(guesser.Connect());
  grpc::Status status = guesser.Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("tpdiff-worker-secret"));
  EXPECT_EQ(server_->dispatcher().ServingWorkers(), 0u);

  // The authenticated worker registers and is the one that gets the job.
  TestWorker& good = AddGoodWorker();
  tpdiff::v1::Job job;
  ASSERT_TRUE(Submit(*Api(kKeyA), ValidRequest(), &job).ok());
  EXPECT_EQ(good.WaitForAssigns(1).size(), 1u);
  EXPECT_TRUE(anonymous.WaitForAssigns(1, absl::ZeroDuration()).empty());
  EXPECT_TRUE(guesser.WaitForAssigns(1, absl::ZeroDuration()).empty());
  EXPECT_EQ(server_->dispatcher().ServingWorkers(), 1u);
}

TEST_F(SecurityIntegrationTest, WithMutualTlsOnlyWorkersWithACertFromTheCaRegister) {
  StartServer(/*mtls=*/true);
  // No certificate: TLS works (API clients have none) but WorkerGateway refuses.
  TestWorker& no_cert = AddWorker(TlsChannel(certs_->ca_cert), "");
  EXPECT_FALSE(no_cert.Connect());
  grpc::Status status = no_cert.Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("client certificate"));
  // A certificate from another CA fails the handshake.
  TestWorker& rogue =
      AddWorker(TlsChannel(certs_->ca_cert, certs_->rogue_cert, certs_->rogue_key), "");
  EXPECT_FALSE(rogue.Connect());
  EXPECT_EQ(rogue.Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(server_->dispatcher().ServingWorkers(), 0u);

  TestWorker& good =
      AddWorker(TlsChannel(certs_->ca_cert, certs_->worker_cert, certs_->worker_key), "");
  ASSERT_TRUE(good.Connect());
  tpdiff::v1::Job job;
  ASSERT_TRUE(Submit(*Api(kKeyA), ValidRequest(), &job).ok());
  EXPECT_EQ(good.WaitForAssigns(1).size(), 1u);
  // API clients still work without a certificate.
  EXPECT_TRUE(ListModels(*Api(kKeyB)).ok());
}

TEST_F(SecurityIntegrationTest, TenantsCannotSeeOrCancelEachOthersJobs) {
  StartServer();
  AddGoodWorker();
  auto a = Api(kKeyA);
  auto b = Api(kKeyB);
  GenerateRequest request = ValidRequest();
  request.set_request_id("same-key");
  tpdiff::v1::Job job_a, job_b;
  ASSERT_TRUE(Submit(*a, request, &job_a).ok());
  ASSERT_TRUE(Submit(*b, request, &job_b).ok());
  EXPECT_NE(job_a.job_id(), job_b.job_id());  // request ids are per tenant

  for (const grpc::Status& status : {GetJob(*b, job_a.job_id()), CancelJob(*b, job_a.job_id())}) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_EQ(status.error_message(), "job " + job_a.job_id() + " not found");
  }
  grpc::ClientContext context;
  tpdiff::v1::WatchJobRequest watch;
  watch.set_job_id(job_a.job_id());
  tpdiff::v1::JobEvent event;
  auto reader = b->WatchJob(&context, watch);
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);

  // The owner still sees a live job, and can cancel it.
  grpc::Status get = GetJob(*a, job_a.job_id());
  EXPECT_TRUE(get.ok()) << get.error_message();
  EXPECT_TRUE(CancelJob(*a, job_a.job_id()).ok());
  EXPECT_TRUE(GetJob(*b, job_b.job_id()).ok());
}

TEST_F(SecurityIntegrationTest, RateLimitGivesResourceExhaustedNamingTheLimit) {
  TenantLimits limits;
  limits.requests_per_second = 1;
  limits.burst = 3;
  StartServer(false, limits);
  auto a = Api(kKeyA);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(ListModels(*a).ok()) << i;
  grpc::Status limited = ListModels(*a);
  EXPECT_EQ(limited.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(limited.error_message(), HasSubstr("requests_per_second 1"));
  EXPECT_TRUE(ListModels(*Api(kKeyB)).ok());  // another tenant's bucket
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(ListModels(*a).ok());
  EXPECT_EQ(ListModels(*a).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(SecurityIntegrationTest, QueuedJobsLimitGivesResourceExhaustedNamingTheLimit) {
  TenantLimits limits;
  limits.max_queued_jobs = 2;
  StartServer(false, limits);
  TestWorker& worker = AddGoodWorker();  // one slot, manual: the first job holds it
  auto a = Api(kKeyA);
  tpdiff::v1::Job job;
  ASSERT_TRUE(Submit(*a, ValidRequest(), &job).ok());
  ASSERT_EQ(worker.WaitForAssigns(1).size(), 1u);
  ASSERT_TRUE(Submit(*a, ValidRequest(), &job).ok());
  ASSERT_TRUE(Submit(*a, ValidRequest(), &job).ok());
  grpc::Status limited = Submit(*a, ValidRequest(), &job);
  EXPECT_EQ(limited.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(limited.error_message(), HasSubstr("max_queued_jobs 2"));
  EXPECT_TRUE(Submit(*Api(kKeyB), ValidRequest(), &job).ok());
}

TEST_F(SecurityIntegrationTest, ConcurrentStreamsPerTenantAreBounded) {
  TenantLimits limits;
  limits.max_streams = 1;
  StartServer(false, limits);
  AddGoodWorker();
  auto a = Api(kKeyA);
  tpdiff::v1::Job job;
  ASSERT_TRUE(Submit(*a, ValidRequest(), &job).ok());
  tpdiff::v1::WatchJobRequest watch;
  watch.set_job_id(job.job_id());

  auto first_context = std::make_unique<grpc::ClientContext>();
  auto first = a->WatchJob(first_context.get(), watch);
  tpdiff::v1::JobEvent event;
  ASSERT_TRUE(first->Read(&event));  // the stream is open on the server
  {
    grpc::ClientContext context;
    auto second = a->WatchJob(&context, watch);
    EXPECT_FALSE(second->Read(&event));
    grpc::Status status = second->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(status.error_message(), HasSubstr("max_streams 1"));
  }
  first_context->TryCancel();
  first->Finish();
  Tenants* tenants = server_->tenants();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (tenants->open_streams("a") > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));  // the server frees the slot in OnDone
  }
  EXPECT_EQ(tenants->open_streams("a"), 0u);
  grpc::ClientContext context;
  auto third = a->WatchJob(&context, watch);
  EXPECT_TRUE(third->Read(&event));
  context.TryCancel();
  third->Finish();
}

TEST_F(SecurityIntegrationTest, KeysNeverAppearInMetrics) {
  StartServer(false, {}, /*with_metrics=*/true);
  AddGoodWorker();
  tpdiff::v1::Job job;
  ASSERT_TRUE(Submit(*Api(kKeyA), ValidRequest(), &job).ok());
  EXPECT_TRUE(GetJob(*Api(kKeyA), job.job_id()).ok());
  EXPECT_FALSE(GetJob(*Api(kKeyB), job.job_id()).ok());
  EXPECT_FALSE(ListModels(*Api("wrong-key-55aa")).ok());
  const std::string metrics = ScrapeMetrics();
  ASSERT_THAT(metrics, HasSubstr("tpdiff_requests_total"));
  EXPECT_THAT(metrics, HasSubstr("code=\"UNAUTHENTICATED\""));
  for (const std::string& secret : {std::string(kKeyA), std::string(kKeyB),
                                    std::string("wrong-key-55aa"), Sha256Hex(kKeyA),
                                    Sha256Hex(kKeyB), std::string(kSecret)}) {
    EXPECT_THAT(metrics, Not(HasSubstr(secret)));
  }
}

}  // namespace
}  // namespace tpdiff::server
