#include "tracker/console/console_server.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "google/protobuf/util/json_util.h"
#include "httplib.h"
#include "kwq/v1/scheduler.grpc.pb.h"
#include "server/util/time_util.h"
#include "tracker/console/console_assets.h"

namespace kwq::tracker {

namespace {

constexpr int kMaxTags = 200;       // tags shown on a job page
constexpr int kMaxPageSize = 500;   // tasks or jobs per API page
constexpr size_t kMaxBody = 4096;   // POST bodies (an action and a job id)
constexpr size_t kMaxParam = 1024;  // any query parameter

std::string Json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.always_print_primitive_fields = true;
  o.preserve_proto_field_names = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(m, &out, o).ok()) {
    return "{}";
  }
  return out;
}

std::string Quote(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppend(&out, "\\u00", absl::Hex(c, absl::kZeroPad2));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

int HttpStatus(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
      return 503;
    default:
      return 500;
  }
}

void Error(httplib::Response& res, const absl::Status& s) {
  res.status = HttpStatus(s);
  res.set_content(absl::StrCat("{\"error\":", Quote(s.message()), "}"),
                  "application/json");
}

void Reply(httplib::Response& res, std::string json) {
  res.set_header("Cache-Control", "no-store");
  res.set_content(std::move(json), "application/json");
}

// A query parameter, bounded; empty when absent.
absl::StatusOr<std::string> Param(const httplib::Request& req,
                                  const char* name) {
  if (!req.has_param(name)) return std::string();
  std::string v = req.get_param_value(name);
  if (v.size() > kMaxParam) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " is longer than ", kMaxParam, " bytes"));
  }
  return v;
}

absl::StatusOr<int> IntParam(const httplib::Request& req, const char* name,
                             int fallback, int lo, int hi) {
  auto v = Param(req, name);
  if (!v.ok()) return v.status();
  if (v->empty()) return fallback;
  int n = 0;
  if (!absl::SimpleAtoi(*v, &n) || n < lo || n > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be a number from ", lo, " to ", hi));
  }
  return n;
}

// The caller's token: "Authorization: Bearer T", or the console's cookie
// (set by POST /api/login; EventSource cannot send headers).
std::optional<std::string> Token(const httplib::Request& req) {
  const std::string auth = req.get_header_value("Authorization");
  if (absl::StartsWith(auth, "Bearer ")) return auth.substr(7);
  const std::string cookies = req.get_header_value("Cookie");
  for (absl::string_view c : absl::StrSplit(cookies, ';')) {
    c = absl::StripAsciiWhitespace(c);
    if (absl::StartsWith(c, "kwq_token=")) return std::string(c.substr(10));
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ConsoleServer>> ConsoleServer::Start(
    const TrackerStore* store, ConsoleOptions options) {
  std::pair<std::string, std::string> hp =
      absl::StrSplit(options.listen, absl::MaxSplits(':', 1));
  if (options.listen.front() == '[') {  // [::1]:8080
    const size_t close = options.listen.find("]:");
    if (close == std::string::npos) {
      return absl::InvalidArgumentError("console address must be host:port");
    }
    hp = {options.listen.substr(1, close - 1),
          options.listen.substr(close + 2)};
  }
  int port = -1;
  if (hp.first.empty() || !absl::SimpleAtoi(hp.second, &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("console address ", options.listen, " must be host:port"));
  }
  std::unique_ptr<ConsoleServer> s(new ConsoleServer());
  s->store_ = store;
  s->options_ = std::move(options);
  if (!s->options_.scheduler.empty()) {
    s->scheduler_channel_ = grpc::CreateChannel(
        s->options_.scheduler, s->options_.scheduler_credentials
                                   ? s->options_.scheduler_credentials
                                   : grpc::InsecureChannelCredentials());
  }
  s->http_ = std::make_unique<httplib::Server>();
  const int threads = s->options_.max_live_streams + 8;
  s->http_->new_task_queue = [threads] {
    return new httplib::ThreadPool(threads);
  };
  s->http_->set_payload_max_length(kMaxBody);
  s->http_->set_read_timeout(10, 0);
  s->http_->set_write_timeout(10, 0);
  s->Routes();
  int bound = port;
  if (port == 0) {
    bound = s->http_->bind_to_any_port(hp.first);
  } else if (!s->http_->bind_to_port(hp.first, port)) {
    bound = -1;
  }
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat("console: cannot listen on ", s->options_.listen,
                     " (in use, or not an address of this host)"));
  }
  s->address_ = absl::StrCat(
      hp.first.find(':') != std::string::npos ? "[" + hp.first + "]" : hp.first,
      ":", bound);
  s->thread_ = std::thread([srv = s.get()] {
    pthread_setname_np(pthread_self(), "kwq-console");
    srv->http_->listen_after_bind();
  });
  return s;
}

ConsoleServer::~ConsoleServer() {
  stopping_ = true;
  if (http_) http_->stop();
  if (thread_.joinable()) thread_.join();
}

void ConsoleServer::Routes() {
  httplib::Server& h = *http_;
  auto* self = this;

  // Who may look: the view role (open authorizer: anyone).
  auto may_view = [self](const httplib::Request& req, httplib::Response& res) {
    if (!self->options_.authorizer || self->options_.authorizer->open()) {
      return true;
    }
    std::optional<std::string> token = Token(req);
    auto id = self->options_.authorizer->Authorize(
        token ? std::optional<absl::string_view>(*token) : std::nullopt,
        std::nullopt, auth::Role::kView);
    if (!id.ok()) {
      Error(res, id.status());
      return false;
    }
    return true;
  };

  for (const auto& [path, asset] : ConsoleAssets()) {
    h.Get(path,
          [asset = asset](const httplib::Request&, httplib::Response& res) {
            res.set_header("X-Content-Type-Options", "nosniff");
            res.set_header("Content-Security-Policy",
                           "default-src 'self'; img-src 'self' data:; "
                           "style-src 'self' 'unsafe-inline'");
            res.set_content(std::string(asset.body), asset.content_type);
          });
  }

  // Whether a token was asked for, and what the console can do.
  h.Get("/api/config", [self](const httplib::Request&, httplib::Response& res) {
    const bool needs_token =
        self->options_.authorizer && !self->options_.authorizer->open();
    Reply(res,
          absl::StrCat(
              "{\"needs_token\":", needs_token ? "true" : "false",
              ",\"scheduler\":", self->scheduler_channel_ ? "true" : "false",
              ",\"live_period_ms\":",
              absl::ToInt64Milliseconds(self->options_.live_period), "}"));
  });

  // Stores the token in an HttpOnly cookie (after checking it may view).
  h.Post("/api/login", [self](const httplib::Request& req,
                              httplib::Response& res) {
    const std::string token = req.body;
    if (token.empty() || token.size() > 512 ||
        token.find_first_of(";\r\n ") != std::string::npos) {
      Error(res, absl::InvalidArgumentError("the body must be a token"));
      return;
    }
    if (self->options_.authorizer && !self->options_.authorizer->open()) {
      auto id = self->options_.authorizer->Authorize(
          absl::string_view(token), std::nullopt, auth::Role::kView);
      if (!id.ok()) {
        Error(res, id.status());
        return;
      }
    }
    res.set_header("Set-Cookie",
                   absl::StrCat("kwq_token=", token,
                                "; HttpOnly; SameSite=Strict; Path=/"));
    Reply(res, "{}");
  });

  h.Get("/api/jobs",
        [self, may_view](const httplib::Request& req, httplib::Response& res) {
          if (!may_view(req, res)) return;
          kwq::v1::ListJobsRequest r;
          auto size = IntParam(req, "page_size", 50, 1, kMaxPageSize);
          auto token = Param(req, "page_token");
          if (!size.ok()) return Error(res, size.status());
          if (!token.ok()) return Error(res, token.status());
          r.set_page_size(*size);
          r.set_page_token(*token);
          auto out = self->store_->ListJobs(r, absl::Now());
          if (!out.ok()) return Error(res, out.status());
          Reply(res, Json(*out));
        });

  h.Get("/api/job",
        [self, may_view](const httplib::Request& req, httplib::Response& res) {
          if (!may_view(req, res)) return;
          auto id = Param(req, "id");
          if (!id.ok()) return Error(res, id.status());
          auto out = self->store_->GetJobSummary(*id, kMaxTags, absl::Now());
          if (!out.ok()) return Error(res, out.status());
          Reply(res, Json(*out));
        });

  h.Get("/api/tasks",
        [self, may_view](const httplib::Request& req, httplib::Response& res) {
          if (!may_view(req, res)) return;
          kwq::v1::ListTasksRequest r;
          auto job = Param(req, "job");
          auto tag = Param(req, "tag");
          auto token = Param(req, "page_token");
          auto state = Param(req, "state");
          auto size = IntParam(req, "page_size", 50, 1, kMaxPageSize);
          for (const auto* s : {&job, &tag, &token, &state}) {
            if (!s->ok()) return Error(res, s->status());
          }
          if (!size.ok()) return Error(res, size.status());
          kwq::v1::TaskState st = kwq::v1::TASK_STATE_UNSPECIFIED;
          if (!state->empty() && !kwq::v1::TaskState_Parse(*state, &st)) {
            return Error(res, absl::InvalidArgumentError(absl::StrCat(
                                  "state ", *state, " is not known")));
          }
          r.set_job_id(*job);
          r.set_tag(*tag);
          r.set_page_token(*token);
          r.set_state(st);
          r.set_page_size(*size);
          auto out = self->store_->ListTasks(r);
          if (!out.ok()) return Error(res, out.status());
          Reply(res, Json(*out));
        });

  h.Get("/api/task",
        [self, may_view](const httplib::Request& req, httplib::Response& res) {
          if (!may_view(req, res)) return;
          auto id = Param(req, "id");
          if (!id.ok()) return Error(res, id.status());
          auto task = self->store_->GetTask(*id);
          if (!task.ok()) return Error(res, task.status());
          std::string explain = "null";
          const bool final = task->state() == kwq::v1::COMPLETED ||
                             task->state() == kwq::v1::FAILED ||
                             task->state() == kwq::v1::CANCELLED;
          if (!final && self->scheduler_channel_) {
            auto stub = kwq::v1::Scheduler::NewStub(self->scheduler_channel_);
            grpc::ClientContext ctx;
            ctx.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::seconds(2));
            if (auto t = Token(req)) {
              ctx.AddMetadata("authorization", "Bearer " + *t);
            }
            kwq::v1::ExplainTaskRequest er;
            er.set_task_id(*id);
            kwq::v1::ExplainTaskResponse ex;
            if (stub->ExplainTask(&ctx, er, &ex).ok()) explain = Json(ex);
          }
          Reply(res, absl::StrCat("{\"task\":", Json(*task),
                                  ",\"explain\":", explain, "}"));
        });

  h.Get("/api/throughput",
        [self, may_view](const httplib::Request& req, httplib::Response& res) {
          if (!may_view(req, res)) return;
          auto bucket = IntParam(req, "bucket_seconds", 1, 1, 3600);
          auto buckets = IntParam(req, "buckets", 120, 1, 1000);
          if (!bucket.ok()) return Error(res, bucket.status());
          if (!buckets.ok()) return Error(res, buckets.status());
          kwq::v1::GetThroughputRequest r;
          r.set_bucket_seconds(*bucket);
          r.set_buckets(*buckets);
          auto out = self->store_->GetThroughput(r, absl::Now());
          if (!out.ok()) return Error(res, out.status());
          Reply(res, Json(*out));
        });

  // Workers and queues of the configured scheduler instance.
  h.Get("/api/scheduler", [self, may_view](const httplib::Request& req,
                                           httplib::Response& res) {
    if (!may_view(req, res)) return;
    if (!self->scheduler_channel_) {
      return Error(res, absl::FailedPreconditionError(
                            "no scheduler configured (kwq_tracker "
                            "--console_scheduler=HOST:PORT)"));
    }
    auto stub = kwq::v1::Scheduler::NewStub(self->scheduler_channel_);
    std::string out = "{";
    for (int i = 0; i < 2; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(3));
      if (auto t = Token(req)) {
        ctx.AddMetadata("authorization", "Bearer " + *t);
      }
      grpc::Status st;
      std::string part;
      if (i == 0) {
        kwq::v1::ListWorkersResponse w;
        st = stub->ListWorkers(&ctx, kwq::v1::ListWorkersRequest(), &w);
        part = Json(w);
      } else {
        kwq::v1::ListQueuesResponse q;
        st = stub->ListQueues(&ctx, kwq::v1::ListQueuesRequest(), &q);
        part = Json(q);
      }
      if (!st.ok()) {
        return Error(res, absl::UnavailableError(absl::StrCat(
                              "scheduler ", self->options_.scheduler, ": ",
                              st.error_message())));
      }
      absl::StrAppend(&out, i == 0 ? "\"workers\":" : ",\"queues\":", part);
    }
    Reply(res, out + "}");
  });

  // pause / resume / cancel of a job, forwarded to the scheduler with the
  // caller's token (the scheduler checks the operate role). The custom header
  // keeps other sites' pages from posting here with the cookie.
  h.Post("/api/control", [self](const httplib::Request& req,
                                httplib::Response& res) {
    if (req.get_header_value("X-Kwq-Console") != "1") {
      return Error(res, absl::PermissionDeniedError(
                            "actions need the X-Kwq-Console: 1 header"));
    }
    if (!self->scheduler_channel_) {
      return Error(res, absl::FailedPreconditionError(
                            "no scheduler configured: the console is "
                            "read-only"));
    }
    std::string action, job;
    for (absl::string_view kv : absl::StrSplit(req.body, '&')) {
      std::pair<std::string, std::string> p =
          absl::StrSplit(kv, absl::MaxSplits('=', 1));
      if (p.first == "action") action = p.second;
      if (p.first == "job") job = httplib::detail::decode_url(p.second, true);
    }
    if (job.empty() ||
        (action != "pause" && action != "resume" && action != "cancel")) {
      return Error(res,
                   absl::InvalidArgumentError(
                       "the body must be action=pause|resume|cancel&job=ID"));
    }
    auto stub = kwq::v1::Scheduler::NewStub(self->scheduler_channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    if (auto t = Token(req)) ctx.AddMetadata("authorization", "Bearer " + *t);
    kwq::v1::Scope scope;
    scope.set_job_id(job);
    grpc::Status st;
    if (action == "pause") {
      kwq::v1::PauseRequest r;
      *r.mutable_scope() = scope;
      r.set_requested_by("console");
      kwq::v1::PauseResponse out;
      st = stub->Pause(&ctx, r, &out);
    } else if (action == "resume") {
      kwq::v1::ResumeRequest r;
      *r.mutable_scope() = scope;
      r.set_requested_by("console");
      kwq::v1::ResumeResponse out;
      st = stub->Resume(&ctx, r, &out);
    } else {
      kwq::v1::CancelRequest r;
      *r.mutable_scope() = scope;
      r.set_requested_by("console");
      kwq::v1::CancelResponse out;
      st = stub->Cancel(&ctx, r, &out);
    }
    if (!st.ok()) {
      return Error(res,
                   absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                                st.error_message()));
    }
    LOG(INFO) << "console: " << action << " job " << job;
    Reply(res, "{}");
  });

  // A completed task's result (its first KiB), looked up in the results topic
  // near the completing attempt's finish (see ResultReader).
  h.Get("/api/result", [self, may_view](const httplib::Request& req,
                                        httplib::Response& res) {
    if (!may_view(req, res)) return;
    if (!self->options_.results) {
      return Error(res, absl::FailedPreconditionError(
                            "the results topic is not configured"));
    }
    auto id = Param(req, "task");
    if (!id.ok()) return Error(res, id.status());
    auto task = self->store_->GetTask(*id);
    if (!task.ok()) return Error(res, task.status());
    const kwq::v1::AttemptStatus* done = nullptr;
    for (const auto& a : task->history()) {
      if (a.state() == kwq::v1::COMPLETED) done = &a;
    }
    if (done == nullptr || !done->has_finished_time()) {
      return Error(res, absl::FailedPreconditionError(
                            "the task has no completed attempt"));
    }
    auto found = self->options_.results->Find(*id, done->attempt(),
                                              FromProto(done->finished_time()));
    if (!found.ok()) return Error(res, found.status());
    Reply(res, absl::StrCat("{\"result\":", Json(found->result),
                            ",\"size\":", found->size,
                            ",\"position\":", Quote(found->position), "}"));
  });

  // Dead letters: the newest of the dead-letter topic (bounded scan, see
  // DeadLetterReader), those of `job` when given.
  h.Get("/api/dlq", [self, may_view](const httplib::Request& req,
                                     httplib::Response& res) {
    if (!may_view(req, res)) return;
    if (!self->options_.dead_letters) {
      return Error(res, absl::FailedPreconditionError(
                            "the dead-letter topic is not configured"));
    }
    auto job = Param(req, "job");
    if (!job.ok()) return Error(res, job.status());
    auto limit = IntParam(req, "limit", 100, 1, kMaxPageSize);
    if (!limit.ok()) return Error(res, limit.status());
    size_t scanned = 0;
    auto letters = self->options_.dead_letters->Newest(
        *job, static_cast<size_t>(*limit), &scanned);
    if (!letters.ok()) return Error(res, letters.status());
    std::string out = "{\"dead_letters\":[";
    for (size_t i = 0; i < letters->size(); ++i) {
      const auto& l = (*letters)[i];
      absl::StrAppend(&out, i ? "," : "", "{\"position\":", Quote(l.position),
                      ",\"letter\":", Json(l.dead_letter), "}");
    }
    absl::StrAppend(&out, "],\"scanned\":", scanned, ",\"can_resubmit\":",
                    self->scheduler_channel_ ? "true" : "false", "}");
    Reply(res, out);
  });

  // Resubmit a dead-lettered task: Submit of its task (payload included) as a
  // new task <id>.r<unix seconds> (the old id may still be in the scheduler's
  // dedup window, and the tracker keeps the failed task as it was), with the
  // caller's token (the scheduler checks the submit role).
  h.Post("/api/dlq/resubmit", [self](const httplib::Request& req,
                                     httplib::Response& res) {
    if (req.get_header_value("X-Kwq-Console") != "1") {
      return Error(res, absl::PermissionDeniedError(
                            "actions need the X-Kwq-Console: 1 header"));
    }
    if (!self->scheduler_channel_ || !self->options_.dead_letters) {
      return Error(res, absl::FailedPreconditionError(
                            "no scheduler or dead-letter topic configured: "
                            "the console is read-only"));
    }
    std::string task_id;
    for (absl::string_view kv : absl::StrSplit(req.body, '&')) {
      std::pair<std::string, std::string> p =
          absl::StrSplit(kv, absl::MaxSplits('=', 1));
      if (p.first == "task")
        task_id = httplib::detail::decode_url(p.second, true);
    }
    if (task_id.empty()) {
      return Error(res, absl::InvalidArgumentError("the body must be task=ID"));
    }
    auto found = self->options_.dead_letters->Find(task_id);
    if (!found.ok()) return Error(res, found.status());
    if (!*found) {
      return Error(res, absl::NotFoundError(absl::StrCat(
                            "no dead letter of task ", task_id,
                            " among the newest records of the topic")));
    }
    kwq::v1::Task task = (*found)->dead_letter.task();
    task.set_id(
        absl::StrCat(task.id(), ".r", absl::ToUnixSeconds(absl::Now())));
    task.clear_last_error();
    kwq::v1::SubmitRequest sr;
    *sr.add_tasks() = task;
    kwq::v1::SubmitResponse out;
    auto stub = kwq::v1::Scheduler::NewStub(self->scheduler_channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    if (auto t = Token(req)) ctx.AddMetadata("authorization", "Bearer " + *t);
    grpc::Status st = stub->Submit(&ctx, sr, &out);
    if (!st.ok()) {
      return Error(res,
                   absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                                st.error_message()));
    }
    if (out.duplicate_ids_size() > 0) {
      return Error(res, absl::FailedPreconditionError(absl::StrCat(
                            "the scheduler already has a task ", task.id(),
                            "; try again in a second")));
    }
    LOG(INFO) << "console: resubmitted dead letter " << task_id << " as "
              << task.id();
    Reply(res, absl::StrCat("{\"task_id\":", Quote(task.id()), "}"));
  });

  // Live: a server-sent event with the job's summary (or the first page of
  // jobs) every live_period, until the page goes away.
  h.Get("/api/live", [self, may_view](const httplib::Request& req,
                                      httplib::Response& res) {
    if (!may_view(req, res)) return;
    auto job = Param(req, "job");
    if (!job.ok()) return Error(res, job.status());
    if (self->live_streams_.fetch_add(1) >= self->options_.max_live_streams) {
      self->live_streams_.fetch_sub(1);
      return Error(res, absl::UnavailableError(
                            "too many live pages open; polling instead"));
    }
    res.set_header("Cache-Control", "no-store");
    res.set_chunked_content_provider(
        "text/event-stream",
        [self, job = *job](size_t, httplib::DataSink& sink) {
          if (self->stopping_) return false;
          std::string json;
          if (job.empty()) {
            kwq::v1::ListJobsRequest r;
            r.set_page_size(50);
            auto out = self->store_->ListJobs(r, absl::Now());
            json = out.ok() ? Json(*out) : "{}";
          } else {
            auto out = self->store_->GetJobSummary(job, kMaxTags, absl::Now());
            json = out.ok() ? Json(*out) : "{}";
          }
          const std::string event = absl::StrCat("data: ", json, "\n\n");
          if (!sink.write(event.data(), event.size())) return false;
          absl::SleepFor(self->options_.live_period);
          return !self->stopping_.load();
        },
        [self](bool) { self->live_streams_.fetch_sub(1); });
  });
}

}  // namespace kwq::tracker
