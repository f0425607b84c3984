// Identity end to end: a scheduler serving TLS with bearer tokens, a tracker
// serving mutual TLS, SDK workers and clients with and without the right
// credentials (issue 18's "done when": a viewer cannot cancel, a worker token
// cannot submit, a missing token is UNAUTHENTICATED, a wrong CA is refused).
// Certificates are made per run by tools/tls/make-certs.sh (openssl CLI).
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kwq/v1/scheduler.grpc.pb.h"
#include "kwq/v1/tracker.grpc.pb.h"
#include "server/auth/identities.h"
#include "server/auth/server_security.h"
#include "server/kafka/test_backends.h"
#include "tests/child_process.h"
#include "tools/devgrid/in_process_scheduler.h"
#include "tools/devgrid/in_process_tracker.h"
#include "worker_sdk/client_security.h"
#include "worker_sdk/worker.h"

namespace kwq {
namespace {

using ::testing::HasSubstr;

std::string TmpDir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t != nullptr ? t : "/tmp";
}

// Runs make-certs.sh into DIR for the given client names.
bool MakeCerts(const std::string& dir, const std::string& clients) {
  const std::string script =
      std::string(std::getenv("TEST_SRCDIR")) + "/kwq/tools/tls/make-certs.sh";
  const std::string cmd =
      absl::StrCat("bash ", script, " ", dir, " ", clients, " 2>/dev/null");
  return std::system(cmd.c_str()) == 0;
}

class AuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    good_ = TmpDir() + "/good-ca";
    other_ = TmpDir() + "/other-ca";
    ASSERT_TRUE(MakeCerts(good_, "viewer-cert stranger"));
    ASSERT_TRUE(MakeCerts(other_, "viewer-cert"));
  }

  void SetUp() override {
    auto c = testing::OpenBackend(testing::KafkaBackend::kEmbedded);
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = std::move(*c);
    prefix_ = testing::UniqueName("auth");
    for (auto* t : {&viewer_, &submitter_, &worker_, &operator_}) {
      *t = auth::NewToken();
    }
    identities_ = TmpDir() + "/identities-" + prefix_;
    std::ofstream(identities_)
        << "token sha256:" << auth::TokenHash(viewer_) << " viewer view\n"
        << "token sha256:" << auth::TokenHash(submitter_)
        << " submitter submit,view\n"
        << "token sha256:" << auth::TokenHash(worker_) << " pool work\n"
        << "token sha256:" << auth::TokenHash(operator_)
        << " ops operate,view\n"
        << "cert viewer-cert viewers view\n";

    auth::ServerSecurityOptions tls;
    tls.tls_cert_file = good_ + "/server.pem";
    tls.tls_key_file = good_ + "/server.key";
    tls.identities_file = identities_;
    auto sched_security = auth::MakeServerSecurity(tls, "127.0.0.1:0");
    ASSERT_TRUE(sched_security.ok()) << sched_security.status();
    scheduler::ServiceOptions so;
    so.core.topic_prefix = prefix_;
    so.core.scheduler_id = prefix_;
    so.partitions = 1;
    so.authorizer = sched_security->authorizer;
    auto s = devgrid::InProcessScheduler::Start(
        cluster_.get(), so, "127.0.0.1:0", sched_security->credentials);
    ASSERT_TRUE(s.ok()) << s.status();
    sched_ = std::move(*s);

    auth::ServerSecurityOptions mtls = tls;
    mtls.tls_client_ca_file = good_ + "/ca.pem";
    tracker_security_ = *auth::MakeServerSecurity(mtls, "127.0.0.1:0");
    auto t = devgrid::InProcessTracker::Start(
        *cluster_, prefix_, TmpDir() + "/db-" + prefix_, 1, "127.0.0.1:0",
        &tracker_security_);
    ASSERT_TRUE(t.ok()) << t.status();
    tracker_ = std::move(*t);
    tracker_->store().SetViewCurrent(true);
  }

  void TearDown() override {
    for (auto& w : workers_) w->Stop(absl::Seconds(1));
    for (auto& r : runners_) r.join();
    if (sched_) sched_->Shutdown(absl::Seconds(1));
  }

  // Trusts the good CA unless told otherwise.
  ClientSecurity Client(const std::string& token,
                        const std::string& ca_dir = "") const {
    ClientSecurity c;
    c.ca_file = (ca_dir.empty() ? good_ : ca_dir) + "/ca.pem";
    c.token = token;
    return c;
  }
  std::unique_ptr<kwq::v1::Scheduler::Stub> Scheduler(
      const ClientSecurity& c) const {
    return kwq::v1::Scheduler::NewStub(grpc::CreateCustomChannel(
        sched_->address(), *c.Credentials(), c.ChannelArgs()));
  }
  grpc::Status Submit(const ClientSecurity& c, const std::string& job,
                      int n = 1) const {
    kwq::v1::SubmitRequest req;
    for (int i = 0; i < n; ++i) {
      auto* t = req.add_tasks();
      t->set_job_id(job);
      t->set_id(absl::StrCat(job, "-", i));
    }
    kwq::v1::SubmitResponse resp;
    grpc::ClientContext ctx;
    c.Apply(&ctx);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(20));
    return Scheduler(c)->Submit(&ctx, req, &resp);
  }
  grpc::Status CancelJob(const ClientSecurity& c, const std::string& job,
                         const std::string& requested_by = "") const {
    kwq::v1::CancelRequest req;
    req.mutable_scope()->set_job_id(job);
    req.set_requested_by(requested_by);
    kwq::v1::CancelResponse resp;
    grpc::ClientContext ctx;
    c.Apply(&ctx);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(20));
    return Scheduler(c)->Cancel(&ctx, req, &resp);
  }
  grpc::Status ListWorkers(const ClientSecurity& c,
                           kwq::v1::ListWorkersResponse* resp) const {
    grpc::ClientContext ctx;
    c.Apply(&ctx);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(20));
    return Scheduler(c)->ListWorkers(&ctx, {}, resp);
  }
  // GetTask on the mutual-TLS tracker, with `cert` from `ca_dir` (empty
  // cert: none).
  grpc::Status GetTask(const std::string& cert, const std::string& ca_dir,
                       const std::string& task, kwq::v1::TaskStatus* out,
                       const std::string& token = "") const {
    ClientSecurity c = Client(token);
    if (!cert.empty()) {
      c.cert_file = ca_dir + "/" + cert + ".pem";
      c.key_file = ca_dir + "/" + cert + ".key";
    }
    auto stub = kwq::v1::Tracker::NewStub(grpc::CreateCustomChannel(
        tracker_->address(), *c.Credentials(), c.ChannelArgs()));
    kwq::v1::GetTaskRequest req;
    req.set_task_id(task);
    grpc::ClientContext ctx;
    c.Apply(&ctx);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    return stub->GetTask(&ctx, req, out);
  }
  void AddWorker(const ClientSecurity& c, const std::string& id) {
    worker::WorkerOptions wo;
    wo.scheduler_address = sched_->address();
    wo.worker_id = id;
    wo.security = c;
    workers_.push_back(std::make_unique<worker::Worker>(
        wo, [](worker::TaskContext&) { return worker::Outcome::Success(); }));
    runners_.emplace_back([w = workers_.back().get()] { w->Run(); });
  }
  // Polls the tracker (as the viewer certificate) until `pred` holds.
  bool WaitForTask(const std::string& task,
                   const std::function<bool(const kwq::v1::TaskStatus&)>& pred,
                   kwq::v1::TaskStatus* out) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      if (GetTask("viewer-cert", good_, task, out).ok() && pred(*out)) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  static std::string good_, other_;
  std::unique_ptr<KafkaCluster> cluster_;
  std::string prefix_, identities_;
  std::string viewer_, submitter_, worker_, operator_;
  std::unique_ptr<devgrid::InProcessScheduler> sched_;
  auth::ServerSecurity tracker_security_;
  std::unique_ptr<devgrid::InProcessTracker> tracker_;
  std::vector<std::unique_ptr<worker::Worker>> workers_;
  std::vector<std::thread> runners_;
};
std::string AuthTest::good_;
std::string AuthTest::other_;

TEST_F(AuthTest, AMissingOrUnknownTokenIsUnauthenticated) {
  grpc::Status s = Submit(Client(""), "no-token");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << s.error_message();
  kwq::v1::ListWorkersResponse workers;
  EXPECT_EQ(ListWorkers(Client(""), &workers).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Submit(Client("kwq_made-up"), "made-up").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // A worker without a token is refused too: it never gets a task.
  kwq::v1::ListWorkersResponse after;
  ASSERT_TRUE(ListWorkers(Client(viewer_), &after).ok());
  EXPECT_EQ(after.workers_size(), 0);
}

TEST_F(AuthTest, RolesDecideWhatACallerMayDo) {
  // A worker token cannot submit; a viewer cannot cancel; each sees why.
  grpc::Status s = Submit(Client(worker_), "by-worker");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("submit"));
  ASSERT_TRUE(Submit(Client(submitter_), "queued", 2).ok());
  s = CancelJob(Client(viewer_), "queued");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("operate"));
  kwq::v1::ListWorkersResponse workers;
  EXPECT_TRUE(ListWorkers(Client(viewer_), &workers).ok());
  // The operator cancels; the record names the authenticated principal, not
  // the free text the request carried.
  ASSERT_TRUE(CancelJob(Client(operator_), "queued", "mallory").ok());
  kwq::v1::TaskStatus task;
  ASSERT_TRUE(WaitForTask(
      "queued-0",
      [](const kwq::v1::TaskStatus& t) {
        return t.state() == kwq::v1::CANCELLED;
      },
      &task))
      << task.DebugString();
  EXPECT_THAT(task.last_error(), HasSubstr("by ops"));
  EXPECT_THAT(task.last_error(), ::testing::Not(HasSubstr("mallory")));
}

TEST_F(AuthTest, AWorkerWithTheWorkRoleRunsTasksUnderItsPrincipal) {
  AddWorker(Client(submitter_), "intruder");  // submit,view: not a worker
  AddWorker(Client(worker_), "w1");
  ASSERT_TRUE(Submit(Client(submitter_), "run", 3).ok());
  kwq::v1::TaskStatus task;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(WaitForTask(
        absl::StrCat("run-", i),
        [](const kwq::v1::TaskStatus& t) {
          return t.state() == kwq::v1::COMPLETED;
        },
        &task))
        << task.DebugString();
    EXPECT_EQ(task.history(0).worker_id(), "pool:w1");
  }
  kwq::v1::ListWorkersResponse workers;
  ASSERT_TRUE(ListWorkers(Client(viewer_), &workers).ok());
  ASSERT_EQ(workers.workers_size(), 1);
  EXPECT_EQ(workers.workers(0).worker_id(), "pool:w1");
  EXPECT_EQ(workers_[0]->completed(), 0);
  EXPECT_EQ(workers_[1]->completed(), 3);
}

TEST_F(AuthTest, AClientThatTrustsAnotherCaIsRefused) {
  grpc::Status s = Submit(Client(submitter_, other_), "wrong-ca");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  // Nor does plaintext reach a TLS port.
  ClientSecurity plain;
  plain.token = submitter_;
  EXPECT_EQ(Submit(plain, "plaintext").error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(AuthTest, MutualTlsKnowsCallersByCertificate) {
  kwq::v1::TaskStatus out;
  // The viewer certificate: authenticated and allowed (the task is unknown).
  EXPECT_EQ(GetTask("viewer-cert", good_, "nothing", &out).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // No certificate, or one from another CA: the handshake fails.
  EXPECT_EQ(GetTask("", good_, "nothing", &out).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(GetTask("viewer-cert", other_, "nothing", &out).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // A certificate of the right CA whose name is not in the identities file.
  EXPECT_EQ(GetTask("stranger", good_, "nothing", &out).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // ... unless it brings a token that holds the role.
  EXPECT_EQ(GetTask("stranger", good_, "nothing", &out, viewer_).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GetTask("stranger", good_, "nothing", &out, worker_).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

// Certificate renewal: the server's files are replaced on disk (here by a
// certificate of another CA) and new connections get the new one, without a
// restart.
TEST_F(AuthTest, ARenewedCertificateIsServedWithoutARestart) {
  const std::string dir = TmpDir() + "/renewing-" + prefix_;
  ASSERT_EQ(std::system(("mkdir -p " + dir + " && cp " + good_ +
                         "/server.pem " + good_ + "/server.key " + dir)
                            .c_str()),
            0);
  auth::ServerSecurityOptions tls;
  tls.tls_cert_file = dir + "/server.pem";
  tls.tls_key_file = dir + "/server.key";
  tls.identities_file = identities_;
  tls.certificate_refresh_seconds = 1;
  auto security = auth::MakeServerSecurity(tls, "127.0.0.1:0");
  ASSERT_TRUE(security.ok()) << security.status();
  scheduler::ServiceOptions so;
  so.core.topic_prefix = prefix_ + "-renew";
  so.core.scheduler_id = prefix_ + "-renew";
  so.partitions = 1;
  so.authorizer = security->authorizer;
  auto s = devgrid::InProcessScheduler::Start(cluster_.get(), so, "127.0.0.1:0",
                                              security->credentials);
  ASSERT_TRUE(s.ok()) << s.status();
  auto list = [&](const std::string& ca_dir) {
    ClientSecurity c = Client(viewer_, ca_dir);
    auto stub = kwq::v1::Scheduler::NewStub(grpc::CreateCustomChannel(
        (*s)->address(), *c.Credentials(), c.ChannelArgs()));
    kwq::v1::ListWorkersResponse resp;
    grpc::ClientContext ctx;
    c.Apply(&ctx);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    return stub->ListWorkers(&ctx, {}, &resp);
  };
  ASSERT_TRUE(list(good_).ok());
  EXPECT_FALSE(list(other_).ok());
  ASSERT_EQ(std::system(("cp " + other_ + "/server.pem " + other_ +
                         "/server.key " + dir)
                            .c_str()),
            0);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  bool renewed = false;
  while (!renewed && absl::Now() < deadline) {
    renewed = list(other_).ok();
    if (!renewed) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(renewed) << "the new certificate was never served";
  EXPECT_FALSE(list(good_).ok());
  (*s)->Shutdown(absl::Seconds(1));
}

TEST(AuthBinaryTest, ANonLoopbackPortWithoutProtectionIsRefused) {
  auto r = testing::RunCommand(
      "server/kwq_scheduler",
      {"--kafka=embedded", "--listen=0.0.0.0:0", "--partitions=1"}, "", 60);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--insecure"));
  r = testing::RunCommand(
      "tracker/kwq_tracker",
      {"--kafka=embedded", "--listen=0.0.0.0:0", "--db=" + TmpDir() + "/t"}, "",
      60);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--insecure"));
  // With --insecure it starts (and says so loudly in its log).
  testing::ChildProcess sched;
  ASSERT_TRUE(sched.Start("server/kwq_scheduler",
                          {"--kafka=embedded", "--listen=0.0.0.0:0",
                           "--partitions=1", "--insecure"}));
  EXPECT_THAT(sched.line(), HasSubstr("plaintext"));
}

}  // namespace
}  // namespace kwq
