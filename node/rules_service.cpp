#include "node/rules_service.hpp"

#include <asio/post.hpp>

#include "node/log.hpp"
#include "protocol/crypto.hpp"

namespace annexswarm {

namespace {
constexpr std::size_t kJudgedMax = 1024;
constexpr std::size_t kChecksPerRound = 8;

// What a document is remembered by once judged (with the keys that came with it).
std::string judged_as(const std::string& document, const std::string& public_keys) {
  return to_hex(crypto::sha256(as_bytes(document + '\0' + public_keys)));
}
}  // namespace

RulesService::RulesService(asio::io_context& io, asio::thread_pool& worker, Timers& timers, SwarmDirectory& directory,
                           Settings settings)
    : io_(io),
      worker_(worker),
      timers_(timers),
      directory_(directory),
      settings_(std::move(settings)),
      book_(settings_.state_dir, settings_.admins, settings_.swarms),
      check_timer_(timers_.make_timer()),
      publish_timer_(timers_.make_timer()) {
  shown_.config_admins = settings_.admins;
  shown_.self = directory_.self();
}

RulesService::~RulesService() { *alive_ = false; }

void RulesService::start() {
  asio::post(worker_, [this, alive = alive_] {
    if (auto loaded = book_.load(); !loaded) log::warn("swarm rules: {}", loaded.error());
    else if (*loaded)
      log::info("swarm rules version {} (signed by {}) held since before the restart", book_.current()->rules.version,
                book_.current()->signer);
    snapshot();
    asio::post(io_, [this, alive] {
      if (!*alive || stopping_) return;
      publish();
      check();
    });
  });
}

void RulesService::stop() {
  stopping_ = true;
  check_timer_->cancel();
  publish_timer_->cancel();
}

void RulesService::snapshot() {
  RulesReply copy;
  copy.config_admins = book_.config_admins();
  copy.refused = book_.refusals();
  copy.self = directory_.self();
  if (const auto& c = book_.current()) {
    copy.rules = c->rules;
    copy.signer = c->signer;
  }
  asio::post(io_, [this, alive = alive_, copy = std::move(copy)]() mutable {
    if (*alive) shown_ = std::move(copy);
  });
}

RulesReply RulesService::show() const { return shown_; }

std::int64_t RulesService::unix_now() const {
  return std::chrono::duration_cast<std::chrono::seconds>(timers_.wall_now().time_since_epoch()).count();
}

void RulesService::publish() {
  publish_timer_->cancel();
  if (stopping_) return;
  // The document itself is on the worker's side; fetch it from there.
  asio::post(worker_, [this, alive = alive_] {
    if (!book_.current()) return;
    auto document = book_.current()->armored;
    auto keys = book_.current()->public_keys;
    asio::post(io_, [this, alive, document = std::move(document), keys = std::move(keys)] {
      if (!*alive || stopping_) return;
      directory_.put_rules(document, keys, [](bool ok) {
        if (!ok) log::warn("swarm rules: publishing the version held failed (will try again)");
      });
      publish_timer_->schedule(settings_.publish_every, [this] { publish(); });
    });
  });
}

void RulesService::check() {
  if (stopping_ || checking_) return;
  checking_ = true;
  directory_.rules(directory_.lookup_timeout(), [this, alive = alive_](std::vector<RulesRecord> records) {
    if (!*alive) return;
    offer(std::move(records), [this](bool adopted) {
      checking_ = false;
      if (adopted) publish();
      if (!stopping_) check_timer_->schedule(settings_.check_every, [this] { check(); });
    });
  });
}

void RulesService::offer(std::vector<RulesRecord> records, std::function<void(bool)> then) {
  asio::post(worker_, [this, alive = alive_, records = std::move(records), then = std::move(then)] {
    bool adopted = false;
    auto now = unix_now();
    // Oldest claimed version first (v6 before the v7 only v6's admins may sign), and a few
    // checks per round at most: each runs gpg, and any member can publish something.
    std::vector<std::pair<std::uint64_t, const RulesRecord*>> sorted;
    for (const auto& r : records) sorted.emplace_back(claimed_version(r.document), &r);
    std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::size_t checked = 0;
    for (const auto& [claimed, record] : sorted) {
      const auto& r = *record;
      if (book_.current() && r.document == book_.current()->armored) continue;
      // A member still publishing an older version is behind, not hostile: skipped, not
      // counted (a document that lies about its version is checked and refused below).
      if (book_.current() && claimed != 0 && claimed <= book_.current()->rules.version) continue;
      // Each document is judged once: a refusal is counted (and logged) once, and gpg
      // does not run again every check for what every member keeps publishing.
      auto digest = judged_as(r.document, r.public_keys);
      if (judged_.count(digest)) continue;
      if (checked++ == kChecksPerRound) break;  // the rest next round
      if (judged_.size() >= kJudgedMax) judged_.clear();
      judged_.insert(digest);
      if (book_.offer(r.document, r.public_keys, now).adopted) {
        adopted = true;
        judged_.clear();  // what the new version's admins signed may now be adopted
      }
    }
    snapshot();
    asio::post(io_, [alive, adopted, then] {
      if (*alive) then(adopted);
    });
  });
}

void RulesService::push(const RulesPushRequest& request, Done<RulesReply> done) {
  asio::post(worker_, [this, alive = alive_, request, done] {
    auto outcome = book_.offer(request.document, request.public_keys, unix_now());
    if (outcome.adopted) judged_.clear();
    else judged_.insert(judged_as(request.document, request.public_keys));
    snapshot();
    asio::post(io_, [this, alive, outcome, done] {
      if (!*alive) return;
      // The copy snapshot() posted runs first (same strand of posts), so shown_ is current.
      auto reply = shown_;
      reply.adopted = outcome.adopted;
      reply.why = outcome.why;
      if (outcome.adopted) publish();
      done(std::move(reply));
    });
  });
}

}  // namespace annexswarm
