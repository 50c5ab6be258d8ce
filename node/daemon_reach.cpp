// NAT traversal as the daemon drives it: the port mapper on the home router, and the
// reachability check. A node asks up to three other members to dial it back (DIAL_BACK)
// at each candidate endpoint: the mapped port, public interface addresses, and
// whatever address the helper sees it at. Only endpoints a helper reached go into the
// contact record; the check runs again when the mapping or the external address
// changes, and every reachability-check period.
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>

#include <algorithm>

#include "node/daemon.hpp"
#include "node/log.hpp"
#include "protocol/ip_address.hpp"
#include "transfer/peer_request.hpp"

namespace annexswarm {
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {
constexpr std::size_t kMaxHelpers = 3;
constexpr std::size_t kMaxDialBacksServed = 8;
constexpr auto kDialBackAnswer = 25s;  // the helper's own dial may take 5 s + 10 s
constexpr auto kHelperLookup = std::chrono::seconds(5);
constexpr auto kMaxReachRetry = std::chrono::seconds(300);

std::string endpoint_text(const Endpoint& e) { return host_port(e.host, e.port); }
}  // namespace

bool Daemon::nat_applies() const {
  // A node bound to loopback only is a test or a local-only node: nobody outside can
  // reach it whatever the router does.
  return config_.listen.empty() || address_scope(config_.listen) != AddressScope::Loopback;
}

void Daemon::start_nat() {
  if (config_.test_relay_only) {
    log::warn("test switch on: this node advertises relay endpoints only");
    reservations_timer_.expires_after(std::chrono::seconds(1));
    reservations_timer_.async_wait([this](const std::error_code& ec) {
      if (!ec) want_reservations("test: relay only");
    });
    return;
  }
  if (!nat_applies()) {
    reach_summary_ = "not checked: listening on " + config_.listen + " only";
    return;
  }
  if (config_.nat != nat::NatMethod::None) {
    nat::PortMapper::Settings settings;
    settings.method = config_.nat;
    settings.lease = config_.nat_lease;
    settings.ports.push_back({nat::MappedProtocol::Tcp, peer_port_});
    settings.ports.push_back({nat::MappedProtocol::Udp, dht_->health().bound_port});
    mapper_ = std::make_unique<nat::PortMapper>(io_, settings);
    mapper_->on_log([](bool warning, const std::string& line) {
      if (warning) log::warn("{}", line);
      else log::info("{}", line);
    });
    mapper_->on_change([this](const nat::NatStatus&) { check_reachability("the port mapping changed"); });
    mapper_->start();
  }
  check_reachability("start");
}

std::vector<Endpoint> Daemon::reach_candidates() const {
  std::vector<Endpoint> out;
  auto add = [&](Endpoint e) {
    if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(std::move(e));
  };
  if (mapper_) {
    const auto& nat = mapper_->status();
    for (const auto& m : nat.mappings)
      if (m.protocol == nat::MappedProtocol::Tcp && m.internal_port == peer_port_ &&
          address_scope(nat.external_address) == AddressScope::Global)
        add({EndpointKind::Mapped, nat.external_address, m.external_port});
  }
  bool wildcard = config_.listen.empty() || address_scope(config_.listen) == AddressScope::Unspecified;
  for (const auto& host : wildcard ? interface_addresses() : std::vector<std::string>{config_.listen})
    if (address_scope(host) == AddressScope::Global) add({EndpointKind::Public, host, peer_port_});
  return out;
}

void Daemon::find_helpers(bool from_dht, std::function<void(std::vector<FetchSource>)> done) {
  if (!from_dht) {
    // The bootstrap nodes' addresses, at once: their peer port has the DHT port's number
    // by default. The public OpenDHT bootstrap is no swarm member and is left out.
    auto resolver = std::make_shared<asio::ip::tcp::resolver>(io_);
    auto found = std::make_shared<std::vector<FetchSource>>();
    std::vector<std::string> entries;
    for (const auto& e : config_.bootstrap)
      if (e != kPublicBootstrap) entries.push_back(e);
    if (entries.empty()) return done({});
    auto pending = std::make_shared<std::size_t>(entries.size());
    for (const auto& entry : entries) {
      auto [host, port] = split_host_port(entry);
      resolver->async_resolve(host, port, [resolver, pending, found, done](const std::error_code& ec,
                                                                          asio::ip::tcp::resolver::results_type results) {
        if (!ec && found->size() < kMaxHelpers) {
          FetchSource source{{NodeId{}, {}, {}, true}, 0};
          for (const auto& r : results) source.address.endpoints.push_back(r.endpoint());
          if (!source.address.endpoints.empty()) found->push_back(std::move(source));
        }
        if (--*pending == 0) done(std::move(*found));
      });
    }
    return;
  }
  // Members from the swarms' contact records: those with a confirmed public or mapped
  // endpoint first; those known only by LAN addresses answer only from their own LAN.
  struct Gather {
    std::size_t pending;
    std::vector<std::pair<int, FetchSource>> found;  // rank, helper
    std::function<void(std::vector<FetchSource>)> done;
  };
  if (swarms_.empty()) return done({});
  auto gather = std::make_shared<Gather>(Gather{swarms_.size(), {}, std::move(done)});
  for (std::size_t si = 0; si < swarms_.size(); ++si) {
    auto loc = swarms_[si].token.nodes_location();
    auto timeout = std::min<std::chrono::seconds>(config_.lookup_timeout, kHelperLookup);
    dht_->get(loc, timeout, [this, si, loc, gather](std::vector<DhtValue> values) {
      for (auto& rec : open_values<ContactRecord>(swarms_[si], loc, values, decode_contact)) {
        if (rec.node == node_id_) continue;
        bool reachable = std::any_of(rec.endpoints.begin(), rec.endpoints.end(), [](const Endpoint& e) {
          return e.kind == EndpointKind::Public || e.kind == EndpointKind::Mapped;
        });
        for (auto& source : to_sources({{si, std::move(rec)}})) gather->found.emplace_back(reachable ? 0 : 1, std::move(source));
      }
      if (--gather->pending != 0) return;
      std::stable_sort(gather->found.begin(), gather->found.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      std::vector<FetchSource> helpers;
      for (auto& [rank, source] : gather->found)
        if (helpers.size() < kMaxHelpers) helpers.push_back(std::move(source));
      gather->done(std::move(helpers));
    });
  }
}

void Daemon::check_reachability(const std::string& why) {
  if (stopping_ || swarms_.empty() || !nat_applies()) return;
  // The first answer from the router is worth waiting for: it says what to check.
  if (mapper_ && !mapper_->status().settled) return;
  if (reach_running_) {
    reach_again_ = why;
    return;
  }
  reach_running_ = true;
  reach_timer_.cancel();
  log::debug("reachability check: {}", why);
  ask_helpers(false, "");
}

void Daemon::ask_helpers(bool from_dht, std::string earlier_errors) {
  // The bootstrap nodes first (no DHT lookup to wait for), then members found on the DHT.
  find_helpers(from_dht, [this, from_dht, earlier_errors](std::vector<FetchSource> helpers) {
    if (stopping_) return;
    auto next_phase = [this, from_dht](std::string errors) {
      if (!from_dht) return ask_helpers(true, std::move(errors));
      finish_reachability({}, "", 0, 0, errors.empty() ? "no other swarm node known yet" : errors);
    };
    if (helpers.empty()) return next_phase(earlier_errors);
    // One probe for where the helper sees us, one per candidate endpoint.
    struct Gather {
      std::vector<ReachProbe> probes;
      std::size_t pending = 0;
      std::string observed;
      std::set<std::size_t> answered;
      std::string helper_errors;
    };
    auto gather = std::make_shared<Gather>();
    gather->probes.push_back({{EndpointKind::Public, "", peer_port_}, false, {}});
    for (auto& e : reach_candidates()) gather->probes.push_back({std::move(e), false, {}});
    gather->pending = gather->probes.size() * helpers.size();
    gather->helper_errors = earlier_errors;
    auto helper_count = helpers.size();
    for (std::size_t h = 0; h < helpers.size(); ++h) {
      for (std::size_t p = 0; p < gather->probes.size(); ++p) {
        const auto& e = gather->probes[p].endpoint;
        peer::DialBack request{static_cast<std::uint32_t>(p + 1), e.host, e.port};
        ask_peer(io_, *dialer_, helpers[h].address, swarms_[helpers[h].swarm].token, request, kDialBackAnswer,
                 [this, gather, h, p, helper_count, next_phase](Result<peer::Frame> answer) {
                   if (stopping_) return;
                   auto* reply = answer ? std::get_if<peer::DialBackReply>(&*answer) : nullptr;
                   auto& probe = gather->probes[p];
                   if (reply) {
                     gather->answered.insert(h);
                     if (gather->observed.empty()) gather->observed = reply->observed;
                     if (reply->ok) probe.ok = true;
                     else probe.why.push_back(reply->reason);
                   } else {
                     auto err = answer ? std::string("unexpected answer") : answer.error();
                     if (auto* e = answer ? std::get_if<peer::ErrorFrame>(&*answer) : nullptr) err = e->message;
                     if (gather->helper_errors.find(err) == std::string::npos)
                       gather->helper_errors += (gather->helper_errors.empty() ? "" : "; ") + err;
                   }
                   if (--gather->pending != 0) return;
                   if (gather->answered.empty()) return next_phase(gather->helper_errors);
                   finish_reachability(std::move(gather->probes), gather->observed, gather->answered.size(),
                                       helper_count, gather->helper_errors);
                 });
      }
    }
  });
}

void Daemon::finish_reachability(std::vector<ReachProbe> probes, std::string observed, std::size_t answered,
                                 std::size_t asked, std::string helper_errors) {
  reach_running_ = false;
  if (stopping_) return;
  reach_checked_at_ = std::chrono::steady_clock::now();
  auto previous_summary = reach_summary_;
  auto next = config_.reachability_check;
  if (answered == 0) {
    // We learned nothing: keep what was confirmed, and ask again soon.
    reach_summary_ = asked == 0 ? "not checked: " + helper_errors
                                : "not checked: no helper answered (" + helper_errors + ")";
    next = reach_retry_;
    reach_retry_ = std::min<std::chrono::seconds>(reach_retry_ * 2, kMaxReachRetry);
    log::info("reachability {}; trying again in {}s", reach_summary_, next.count());
  } else {
    reach_retry_ = 10s;
    observed_address_ = observed;
    // The "where do you see me" probe becomes a concrete endpoint; it is the mapped one
    // when the router's port is ours, else a public address (a 1:1 NAT, a port forwarded
    // by hand, or no NAT at all).
    // One endpoint per address and port: a mapped one that equals the observed probe
    // appears once, as the first probe that reached it.
    std::vector<Endpoint> unique;
    auto mapped_now = reach_candidates();  // the mapping may have come up during the check
    for (auto& probe : probes) {
      if (probe.endpoint.host.empty()) {
        probe.endpoint.host = observed;
        if (address_scope(observed) != AddressScope::Global) continue;
        auto is_mapping = [&](const Endpoint& e) {
          return e.kind == EndpointKind::Mapped && e.host == observed && e.port == probe.endpoint.port;
        };
        bool mapped = std::any_of(mapped_now.begin(), mapped_now.end(), is_mapping) ||
                      std::any_of(probes.begin(), probes.end(), [&](const ReachProbe& o) { return is_mapping(o.endpoint); });
        if (mapped) probe.endpoint.kind = EndpointKind::Mapped;
      }
      const auto& e = probe.endpoint;
      if (probe.ok &&
          std::none_of(unique.begin(), unique.end(), [&](const Endpoint& u) { return u.host == e.host && u.port == e.port; }))
        unique.push_back(e);
    }
    std::string reached, failed;
    for (const auto& e : unique) reached += (reached.empty() ? "" : ", ") + endpoint_text(e) + " (" + std::string(to_string(e.kind)) + ")";
    for (const auto& probe : probes) {
      if (probe.ok || probe.endpoint.host.empty()) continue;
      if (std::any_of(unique.begin(), unique.end(), [&](const Endpoint& u) { return u.host == probe.endpoint.host && u.port == probe.endpoint.port; }))
        continue;
      failed += (failed.empty() ? "" : "; ") + endpoint_text(probe.endpoint) + ": " +
                (probe.why.empty() ? std::string("no answer") : probe.why.front());
    }
    if (!unique.empty()) {
      reach_summary_ = "reachable at " + reached;
    } else {
      std::string nat_note;
      if (!mapper_) nat_note = config_.nat == nat::NatMethod::None ? "port mapping off (--nat none)" : "";
      else if (mapper_->status().mappings.empty())
        nat_note = "no port mapping (" + (mapper_->status().error.empty() ? mapper_->status().state : mapper_->status().error) + ")";
      reach_summary_ = "not reachable from outside" + (nat_note.empty() ? std::string() : ": " + nat_note) +
                       (failed.empty() ? std::string() : "; dial-back failed: " + failed) +
                       "; other nodes can reach this one only through a relay or on its LAN";
    }
    reach_probes_ = std::move(probes);
    if (unique != confirmed_) {
      confirmed_ = std::move(unique);
      if (!confirmed_.empty() && !first_confirmed_after_)
        first_confirmed_after_ = std::chrono::duration<double>(reach_checked_at_ - started_).count();
      if (confirmed_.empty()) log::warn("{}", reach_summary_);
      else log::info("{}: contact record updated", reach_summary_);
      publish_contact();
    } else if (confirmed_.empty() && reach_summary_ != previous_summary) {
      log::warn("{}", reach_summary_);
    }
    update_relaying();  // offer relaying once reachable; hold reservations while not
  }
  if (!reach_again_.empty()) {
    auto why = std::move(reach_again_);
    reach_again_.clear();
    return check_reachability(why);
  }
  reach_timer_.expires_after(next);
  reach_timer_.async_wait([this](const std::error_code& ec) {
    if (!ec) check_reachability("periodic check");
  });
}

void Daemon::dial_back(const NodeId& node, std::size_t swarm, const std::string& host, std::uint16_t port,
                       std::function<void(Result<bool>)> done) {
  if (dial_backs_in_flight_ >= kMaxDialBacksServed) return done(Error{"busy: too many dial-backs at once"});
  std::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return done(Error{"not an IP address: " + host});
  ++dial_backs_in_flight_;
  PeerAddress peer{node, {asio::ip::tcp::endpoint(address, port)}};
  dialer_->dial(peer, swarms_[swarm].token, [this, done = std::move(done)](Result<std::shared_ptr<PeerLink>> link) {
    --dial_backs_in_flight_;
    if (!link) {
      // The dialer names the endpoint; the asker knows which one it asked about.
      auto why = link.error();
      if (auto colon = why.find(": "); colon != std::string::npos && colon < 48) why = why.substr(colon + 2);
      return done(Error{why});
    }
    (*link)->close();
    done(true);
  });
}

void Daemon::reached_from_outside(const std::string& remote_ip, const asio::ip::tcp::endpoint& local) {
  // An authenticated member came in from a public address to a public address of ours:
  // a dial-back that happened by itself. It matters most for a public node whose only
  // peers sit behind NAT, which could never be asked to dial it back.
  if (stopping_ || address_scope(remote_ip) != AddressScope::Global || local.port() != peer_port_) return;
  auto host = unmapped(local.address()).to_string();
  if (address_scope(host) != AddressScope::Global) return;  // behind NAT: only a dial-back tells
  Endpoint e{EndpointKind::Public, host, peer_port_};
  if (std::find(confirmed_.begin(), confirmed_.end(), e) != confirmed_.end()) return;
  confirmed_.push_back(e);
  if (!first_confirmed_after_)
    first_confirmed_after_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  reach_summary_ = "reachable at " + host_port(host, peer_port_) + " (public; a member at " + remote_ip + " reached it)";
  log::info("{}: contact record updated", reach_summary_);
  publish_contact();
  update_relaying();
}

json Daemon::nat_json() const {
  using Clock = std::chrono::steady_clock;
  auto now = Clock::now();
  json out = {{"method", std::string(to_string(config_.nat))}};
  if (mapper_) {
    const auto& s = mapper_->status();
    json mappings = json::array();
    for (const auto& m : s.mappings)
      mappings.push_back({{"protocol", std::string(to_string(m.protocol))},
                          {"internal_port", m.internal_port},
                          {"external_port", m.external_port},
                          {"lease_seconds", m.lease.count()}});
    out["in_use"] = std::string(to_string(s.in_use));
    out["state"] = s.state;
    out["gateway"] = s.gateway;
    out["external_address"] = s.external_address;
    out["mappings"] = std::move(mappings);
    if (!s.mappings.empty()) {
      out["renew_in_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(s.renew_at - now).count();
      if (s.expires_at != Clock::time_point{})
        out["lease_expires_in_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(s.expires_at - now).count();
    }
    if (!s.error.empty()) out["error"] = s.error;
  } else {
    out["state"] = nat_applies() ? "off" : "not used (loopback only)";
  }
  json confirmed = json::array(), failed = json::array();
  for (const auto& e : confirmed_) confirmed.push_back(endpoint_json(e));
  for (const auto& p : reach_probes_)
    if (!p.ok && !p.endpoint.host.empty())
      failed.push_back({{"endpoint", endpoint_json(p.endpoint)}, {"why", p.why}});
  json reach = {{"confirmed", std::move(confirmed)}, {"failed", std::move(failed)}, {"summary", reach_summary_},
                {"observed_address", observed_address_}, {"checking", reach_running_}};
  if (reach_checked_at_ != Clock::time_point{})
    reach["checked_seconds_ago"] = std::chrono::duration_cast<std::chrono::seconds>(now - reach_checked_at_).count();
  if (first_confirmed_after_) reach["first_confirmed_after_seconds"] = *first_confirmed_after_;
  out["reachability"] = std::move(reach);
  return out;
}

}  // namespace annexswarm
