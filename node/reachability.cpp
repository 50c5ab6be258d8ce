#include "node/reachability.hpp"

#include <algorithm>
#include <set>

#include "node/log.hpp"
#include "protocol/ip_address.hpp"

namespace annexswarm {
using namespace std::chrono_literals;

namespace {
constexpr auto kMaxRetry = std::chrono::seconds(300);

std::string endpoint_text(const Endpoint& e) { return host_port(e.host, e.port); }
}  // namespace

ReachVerdict decide(ReachRound round) {
  ReachVerdict out;
  if (round.answered == 0) {
    out.summary = round.asked == 0 ? "not checked: " + round.helper_errors
                                   : "not checked: no helper answered (" + round.helper_errors + ")";
    return out;
  }
  out.learned = true;
  out.observed = round.observed;
  // The "where do you see me" probe becomes a concrete endpoint: the mapped one when the
  // router's port is ours, else a public address (a 1:1 NAT, a port forwarded by hand, or
  // no NAT at all). One endpoint per address and port: a mapped one that equals the
  // observed probe appears once, as the first probe that reached it.
  auto& probes = round.probes;
  for (auto& probe : probes) {
    if (probe.endpoint.host.empty()) {
      probe.endpoint.host = round.observed;
      if (address_scope(round.observed) != AddressScope::Global) continue;
      auto is_mapping = [&](const Endpoint& e) {
        return e.kind == EndpointKind::Mapped && e.host == round.observed && e.port == probe.endpoint.port;
      };
      bool mapped = std::any_of(round.mapped_now.begin(), round.mapped_now.end(), is_mapping) ||
                    std::any_of(probes.begin(), probes.end(), [&](const ReachProbe& o) { return is_mapping(o.endpoint); });
      if (mapped) probe.endpoint.kind = EndpointKind::Mapped;
    }
    const auto& e = probe.endpoint;
    auto same_place = [&](const Endpoint& u) { return u.host == e.host && u.port == e.port; };
    if (probe.ok && std::none_of(out.confirmed.begin(), out.confirmed.end(), same_place)) out.confirmed.push_back(e);
  }
  std::string reached, failed;
  for (const auto& e : out.confirmed)
    reached += (reached.empty() ? "" : ", ") + endpoint_text(e) + " (" + std::string(to_string(e.kind)) + ")";
  for (const auto& probe : probes) {
    if (probe.ok || probe.endpoint.host.empty()) continue;
    auto same_place = [&](const Endpoint& u) { return u.host == probe.endpoint.host && u.port == probe.endpoint.port; };
    if (std::any_of(out.confirmed.begin(), out.confirmed.end(), same_place)) continue;
    failed += (failed.empty() ? "" : "; ") + endpoint_text(probe.endpoint) + ": " +
              (probe.why.empty() ? std::string("no answer") : probe.why.front());
  }
  if (!out.confirmed.empty()) {
    out.summary = "reachable at " + reached;
  } else {
    out.summary = "not reachable from outside" + (round.nat_note.empty() ? std::string() : ": " + round.nat_note) +
                  (failed.empty() ? std::string() : "; dial-back failed: " + failed) +
                  "; other nodes can reach this one only through a relay or on its LAN";
  }
  out.probes = std::move(probes);
  return out;
}

void bootstrap_helpers(asio::io_context& io, const std::vector<std::string>& bootstrap, std::size_t max,
                       std::function<void(std::vector<FetchSource>)> done) {
  if (bootstrap.empty()) return done({});
  auto resolver = std::make_shared<asio::ip::tcp::resolver>(io);
  auto found = std::make_shared<std::vector<FetchSource>>();
  auto pending = std::make_shared<std::size_t>(bootstrap.size());
  for (const auto& entry : bootstrap) {
    auto [host, port] = split_host_port(entry);
    resolver->async_resolve(host, port, [resolver, pending, found, max, done](const std::error_code& ec,
                                                                             asio::ip::tcp::resolver::results_type results) {
      if (!ec && found->size() < max) {
        FetchSource source{{NodeId{}, {}, {}, true}, 0};
        for (const auto& r : results) source.address.endpoints.push_back(r.endpoint());
        if (!source.address.endpoints.empty()) found->push_back(std::move(source));
      }
      if (--*pending == 0) done(std::move(*found));
    });
  }
}

std::vector<FetchSource> rank_helpers(const std::vector<Member>& members, const SelfAddress& self, std::size_t max) {
  std::vector<std::pair<int, FetchSource>> ranked;
  for (const auto& m : members) {
    if (m.contact.node == self.node) continue;
    bool reachable = std::any_of(m.contact.endpoints.begin(), m.contact.endpoints.end(), [](const Endpoint& e) {
      return e.kind == EndpointKind::Public || e.kind == EndpointKind::Mapped;
    });
    for (auto& source : dialable({m}, self)) ranked.emplace_back(reachable ? 0 : 1, std::move(source));
  }
  std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<FetchSource> out;
  for (auto& [rank, source] : ranked)
    if (out.size() < max) out.push_back(std::move(source));
  return out;
}

std::string nat_note(const nat::PortMapper* mapper, nat::NatMethod configured) {
  if (!mapper) return configured == nat::NatMethod::None ? "port mapping off (--nat none)" : "";
  const auto& s = mapper->status();
  if (!s.mappings.empty()) return "";
  return "no port mapping (" + (s.error.empty() ? s.state : s.error) + ")";
}

Reachability::Reachability(Timers& timers, EndpointBook& book, std::unique_ptr<nat::PortMapper> mapper,
                           Settings settings, Mediator mediator)
    : timers_(timers),
      book_(book),
      mapper_(std::move(mapper)),
      settings_(std::move(settings)),
      mediator_(std::move(mediator)),
      timer_(timers.make_timer()) {}

void Reachability::start() {
  if (!settings_.enabled) {
    summary_ = settings_.disabled_why;
    return;
  }
  if (mapper_) {
    mapper_->on_log([](bool warning, const std::string& line) {
      if (warning) log::warn("{}", line);
      else log::info("{}", line);
    });
    mapper_->on_change([this](const nat::NatStatus&) { check("the port mapping changed"); });
    mapper_->start();
  }
  check("start");
}

void Reachability::stop(std::function<void()> done) {
  stopping_ = true;
  *alive_ = false;
  timer_->cancel();
  if (!mapper_) return done();
  // Port mappings come off the router before we go.
  mapper_->stop(std::move(done));
}

std::vector<Endpoint> Reachability::candidates() const {
  std::vector<Endpoint> out;
  auto add = [&](Endpoint e) {
    if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(std::move(e));
  };
  if (mapper_) {
    const auto& nat = mapper_->status();
    for (const auto& m : nat.mappings)
      if (m.protocol == nat::MappedProtocol::Tcp && m.internal_port == settings_.peer_port &&
          address_scope(nat.external_address) == AddressScope::Global)
        add({EndpointKind::Mapped, nat.external_address, m.external_port});
  }
  for (const auto& e : settings_.advertised)
    if (address_scope(e.host) == AddressScope::Global) add({EndpointKind::Public, e.host, e.port});
  if (!settings_.advertised.empty() || settings_.observed_port != 0) return out;
  bool wildcard = settings_.listen.empty() || address_scope(settings_.listen) == AddressScope::Unspecified;
  for (const auto& host : wildcard ? mediator_.interfaces() : std::vector<std::string>{settings_.listen})
    if (address_scope(host) == AddressScope::Global) add({EndpointKind::Public, host, settings_.peer_port});
  return out;
}

void Reachability::check(const std::string& why) {
  if (stopping_ || !settings_.enabled || !settings_.in_swarm) return;
  // The first answer from the router is worth waiting for: it says what to check.
  if (mapper_ && !mapper_->status().settled) return;
  if (running_) {
    again_ = why;
    return;
  }
  running_ = true;
  timer_->cancel();
  log::debug("reachability check: {}", why);
  ask_helpers(false, "");
}

void Reachability::ask_helpers(bool from_dht, std::string earlier_errors) {
  // The bootstrap nodes first (no DHT lookup to wait for), then members found on the DHT.
  mediator_.helpers(from_dht, [this, alive = alive_, from_dht, earlier_errors](std::vector<FetchSource> helpers) {
    if (!*alive || stopping_) return;
    auto next_phase = [this, from_dht](std::string errors) {
      if (!from_dht) return ask_helpers(true, std::move(errors));
      ReachRound round;
      round.helper_errors = errors.empty() ? "no other swarm node known yet" : errors;
      finish(std::move(round));
    };
    if (helpers.empty()) return next_phase(earlier_errors);
    // One probe for where the helper sees us, one per candidate endpoint.
    struct Round {
      ReachRound round;
      std::size_t pending = 0;
      std::set<std::size_t> answered;
    };
    auto r = std::make_shared<Round>();
    auto observed_port = settings_.observed_port ? settings_.observed_port : settings_.peer_port;
    r->round.probes.push_back({{EndpointKind::Public, "", observed_port}, false, {}});
    for (auto& e : candidates()) r->round.probes.push_back({std::move(e), false, {}});
    r->pending = r->round.probes.size() * helpers.size();
    r->round.helper_errors = earlier_errors;
    r->round.asked = helpers.size();
    for (std::size_t h = 0; h < helpers.size(); ++h) {
      for (std::size_t p = 0; p < r->round.probes.size(); ++p) {
        const auto& e = r->round.probes[p].endpoint;
        peer::DialBack request{static_cast<std::uint32_t>(p + 1), e.host, e.port};
        mediator_.ask(helpers[h], request, [this, alive, r, h, p, next_phase](Result<peer::Frame> answer) {
          if (!*alive || stopping_) return;
          auto* reply = answer ? std::get_if<peer::DialBackReply>(&*answer) : nullptr;
          auto& probe = r->round.probes[p];
          if (reply) {
            r->answered.insert(h);
            if (r->round.observed.empty()) r->round.observed = reply->observed;
            if (reply->ok) probe.ok = true;
            else probe.why.push_back(reply->reason);
          } else {
            auto err = answer ? std::string("unexpected answer") : answer.error();
            if (auto* e = answer ? std::get_if<peer::ErrorFrame>(&*answer) : nullptr) err = e->message;
            auto& errors = r->round.helper_errors;
            if (errors.find(err) == std::string::npos) errors += (errors.empty() ? "" : "; ") + err;
          }
          if (--r->pending != 0) return;
          if (r->answered.empty()) return next_phase(r->round.helper_errors);
          r->round.answered = r->answered.size();
          finish(std::move(r->round));
        });
      }
    }
  });
}

void Reachability::finish(ReachRound round) {
  running_ = false;
  if (stopping_) return;
  checked_at_ = timers_.now();
  auto previous = summary_;
  round.mapped_now = candidates();  // the mapping may have come up during the check
  round.nat_note = nat_note(mapper_.get(), settings_.nat);
  auto verdict = decide(std::move(round));
  summary_ = verdict.summary;
  std::chrono::seconds next = settings_.check_every;
  if (!verdict.learned) {
    // We learned nothing: keep what was confirmed, and ask again soon.
    next = retry_;
    retry_ = std::min<std::chrono::seconds>(retry_ * 2, kMaxRetry);
    log::info("reachability {}; trying again in {}s", summary_, next.count());
  } else {
    retry_ = 10s;
    observed_ = verdict.observed;
    probes_ = std::move(verdict.probes);
    if (book_.set_confirmed(verdict.confirmed)) {
      if (book_.confirmed().empty()) log::warn("{}", summary_);
      else log::info("{}: contact record updated", summary_);
    } else if (book_.confirmed().empty() && summary_ != previous) {
      log::warn("{}", summary_);
    }
    if (mediator_.after_verdict) mediator_.after_verdict();
  }
  if (!again_.empty()) {
    auto why = std::move(again_);
    again_.clear();
    return check(why);
  }
  timer_->schedule(next, [this] { check("periodic check"); });
}

void Reachability::reached_from_outside(const std::string& remote_ip, const asio::ip::tcp::endpoint& local) {
  // An authenticated member came in from a public address to a public address of ours:
  // a dial-back that happened by itself.
  if (stopping_ || address_scope(remote_ip) != AddressScope::Global || local.port() != settings_.peer_port) return;
  auto host = unmapped(local.address()).to_string();
  if (address_scope(host) != AddressScope::Global) return;  // behind NAT: only a dial-back tells
  if (!book_.add_confirmed({EndpointKind::Public, host, settings_.peer_port})) return;
  summary_ = "reachable at " + host_port(host, settings_.peer_port) + " (public; a member at " + remote_ip + " reached it)";
  log::info("{}: contact record updated", summary_);
  if (mediator_.after_verdict) mediator_.after_verdict();
}

Reachability::Status Reachability::status() const {
  Status out{summary_, probes_, observed_, running_, std::nullopt, mapper_.get()};
  if (checked_at_)
    out.checked_ago = std::chrono::duration_cast<std::chrono::seconds>(timers_.now() - *checked_at_);
  return out;
}

bool dial_back_allowed(const DialBackAsk& ask, const std::vector<std::string>& own_addresses,
                       const std::vector<Endpoint>& asker_contact) {
  std::error_code ec;
  auto target = asio::ip::make_address(ask.host, ec);
  if (ec || ask.port == 0) return false;
  auto scope = address_scope(ask.host);
  if (scope != AddressScope::Global && scope != AddressScope::Private) return false;
  auto same = [&](const std::string& other) {
    std::error_code e;
    auto a = asio::ip::make_address(other, e);
    return !e && unmapped(a) == unmapped(target);
  };
  if (std::any_of(own_addresses.begin(), own_addresses.end(), same)) return false;
  if (same(ask.observed)) return true;
  if (scope == AddressScope::Private && address_scope(ask.observed) != AddressScope::Private) return false;
  return std::any_of(asker_contact.begin(), asker_contact.end(), [&](const Endpoint& e) {
    return e.kind != EndpointKind::Relay && e.port == ask.port && same(e.host);
  });
}

void DialBackResponder::dial_back(const NodeId& node, std::size_t swarm, const DialBackAsk& ask,
                                  std::function<void(Result<bool>)> done) {
  auto refuse = [&](const char* why) { refuse_dial(node, ask, why, done); };
  if (swarm >= swarms_.size()) return refuse("unknown swarm");
  auto now = timers_.now();
  auto& recent = recent_[node];
  std::erase_if(recent, [&](auto t) { return now - t >= std::chrono::minutes(1); });
  if (recent.size() >= kPerMemberPerMinute) return refuse("more than its share of dial-backs this minute");
  if (in_flight_ >= kMaxDialBacks) return refuse("too many dial-backs at once");
  recent.push_back(now);
  // Members that stopped asking are forgotten, so the table stays small.
  if (recent_.size() > 1024)
    std::erase_if(recent_, [&](auto& entry) {
      return entry.second.empty() || now - entry.second.back() >= std::chrono::minutes(1);
    });
  auto own = mediator_.own_addresses ? mediator_.own_addresses() : std::vector<std::string>{};
  // Most asks are for the observed address: no record needed.
  if (dial_back_allowed(ask, own, {})) return dial(node, swarm, ask, std::move(done));
  if (!mediator_.contact) return refuse("not the address it is seen at");
  ++in_flight_;  // the record lookup counts as one
  mediator_.contact(node, swarm, [this, alive = alive_, node, swarm, ask, own, done](std::vector<Endpoint> contact) {
    if (!*alive) return;
    --in_flight_;
    if (!dial_back_allowed(ask, own, contact))
      return refuse_dial(node, ask, "neither where it is seen nor in its contact record", done);
    dial(node, swarm, ask, done);
  });
}

void DialBackResponder::refuse_dial(const NodeId& node, const DialBackAsk& ask, const char* why,
                                    const std::function<void(Result<bool>)>& done) {
  ++refused_;
  log::debug("refused a dial-back for {} to {}: {}", node.hex(), host_port(ask.host, ask.port), why);
  done(Error{std::string(kGenericFailure)});
}

void DialBackResponder::dial(const NodeId& node, std::size_t swarm, const DialBackAsk& ask,
                             std::function<void(Result<bool>)> done) {
  ++in_flight_;
  auto address = asio::ip::make_address(ask.host);
  PeerAddress peer{node, {asio::ip::tcp::endpoint(address, ask.port)}};
  dialer_->dial(peer, swarms_[swarm], [this, alive = alive_, done = std::move(done)](Result<std::shared_ptr<PeerLink>> link) {
    if (!*alive) return;
    --in_flight_;
    if (!link) return done(Error{std::string(kGenericFailure)});
    (*link)->close();
    done(true);
  });
}

}  // namespace annexswarm
