#include "server/metrics/metrics_http.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"
#include "prometheus/text_serializer.h"
#include "server/metrics/process_collector.h"

namespace kwq::metrics {
namespace {

// The token of a scrape: a bearer token, or a basic-auth password.
std::string ScrapeToken(const httplib::Request& req) {
  const std::string h = req.get_header_value("Authorization");
  if (absl::StartsWithIgnoreCase(h, "Bearer ")) return h.substr(7);
  if (absl::StartsWithIgnoreCase(h, "Basic ") && h.size() < 2048) {
    std::string decoded;
    if (absl::Base64Unescape(h.substr(6), &decoded)) {
      const size_t colon = decoded.find(':');
      if (colon != std::string::npos) return decoded.substr(colon + 1);
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsHttp>> MetricsHttp::Start(
    const std::string& listen, const std::string& service,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
    std::shared_ptr<auth::Authorizer> authorizer) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address ", listen, " must be host:port"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::unique_ptr<MetricsHttp> m(new MetricsHttp());
  m->collectables_ = std::move(collectables);
  m->collectables_.push_back(std::make_shared<ProcessCollector>(service));
  m->authorizer_ = std::move(authorizer);
  m->http_ = std::make_unique<httplib::Server>();
  m->http_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  m->http_->set_payload_max_length(1024);
  m->http_->set_read_timeout(10, 0);
  m->http_->set_write_timeout(10, 0);
  MetricsHttp* self = m.get();
  m->http_->Get("/metrics", [self](const httplib::Request& req,
                                   httplib::Response& res) {
    if (self->authorizer_ != nullptr && !self->authorizer_->open()) {
      const std::string token = ScrapeToken(req);
      if (token.empty() || !self->authorizer_
                                ->Authorize(absl::string_view(token),
                                            std::nullopt, auth::Role::kView)
                                .ok()) {
        res.status = 401;
        res.set_header("WWW-Authenticate", "Basic realm=\"kwq\"");
        res.set_content("a token with the view role is needed\n", "text/plain");
        return;
      }
    }
    std::vector<prometheus::MetricFamily> families;
    for (const auto& c : self->collectables_) {
      auto f = c->Collect();
      families.insert(families.end(), std::make_move_iterator(f.begin()),
                      std::make_move_iterator(f.end()));
    }
    res.set_content(prometheus::TextSerializer().Serialize(families),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  int bound = port;
  if (port == 0) {
    bound = m->http_->bind_to_any_port(host);
  } else if (!m->http_->bind_to_port(host, port)) {
    bound = -1;
  }
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat("metrics on ", listen, ": cannot listen there"));
  }
  m->port_ = bound;
  m->thread_ = std::thread([self] { self->http_->listen_after_bind(); });
  return m;
}

MetricsHttp::~MetricsHttp() {
  if (http_) http_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace kwq::metrics
