// Relays as the daemon drives them. A node offers relaying (--relay on, or auto once a
// dial-back confirmed it reachable) by answering RESERVE and CONNECT and joining circuit
// connections, and says so in its contact record, also put at the swarm's "relays"
// location. A node nobody can dial holds reservations on up to --relay-reservations
// relays found there and advertises "via relay R" endpoints; when one goes away it
// looks for another.
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>

#include <algorithm>

#include "node/daemon.hpp"
#include "node/log.hpp"
#include "protocol/ip_address.hpp"

namespace annexswarm {
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {
constexpr auto kRelayLookup = std::chrono::seconds(10);
constexpr auto kReservationRetry = std::chrono::seconds(10);
constexpr auto kReplaceRelayAfter = std::chrono::seconds(2);
}  // namespace

void Daemon::start_relay_server() {
  if (relay_) return;
  RelayLimits limits;
  limits.max_reservations = config_.relay_max_reservations;
  limits.max_circuits_per_reservation = config_.relay_max_circuits;
  limits.max_circuit_bytes = config_.relay_circuit_bytes;
  limits.max_circuit_duration = config_.relay_circuit_time;
  limits.rate = config_.relay_rate;
  relay_ = std::make_unique<RelayServer>(io_, limits);
  if (!config_.test_relay_capture.empty()) {
    log::warn("test switch on: every relayed byte is written to {}", config_.test_relay_capture);
    relay_->capture_for_test(config_.test_relay_capture);
  }
  PeerServer::RelayHooks hooks;
  hooks.reserve = [this](const NodeId& node, std::function<void(const peer::Frame&)> notify, std::weak_ptr<void> alive) {
    if (!relay_) return Result<std::uint32_t>(Error{"this node no longer relays"});
    auto r = relay_->reserve(node, std::move(notify), std::move(alive));
    if (r) log::debug("relay: reservation for {}", node.hex());
    else log::info("relay: refused a reservation for {}: {}", node.hex(), r.error());
    return r;
  };
  hooks.connect = [this](const NodeId& from, const NodeId& target) {
    if (!relay_) return Result<Bytes>(Error{"this node no longer relays"});
    auto r = relay_->connect(from, target);
    if (!r) log::info("relay: refused a circuit from {} to {}: {}", from.hex(), target.hex(), r.error());
    return r;
  };
  hooks.join = [this](asio::ip::tcp::socket socket, Bytes token) {
    if (relay_) relay_->join(std::move(socket), std::move(token));
  };
  peer_server_->on_relay(std::move(hooks));
  log::info("offering relay circuits to swarm members (at most {} reservations, {} circuits each{})",
            config_.relay_max_reservations, config_.relay_max_circuits,
            config_.relay_circuit_bytes ? ", " + std::to_string(config_.relay_circuit_bytes) + " bytes per circuit" : "");
}

void Daemon::update_relaying() {
  if (stopping_) return;
  bool reachable = !confirmed_.empty();
  if (config_.relay == DaemonConfig::RelayMode::Auto && reachable && !relay_) {
    start_relay_server();
    publish_contact();
  }
  if (reachable || !nat_applies()) {
    if (reservations_ && !reservations_->held().empty()) {
      log::info("reachable directly: releasing relay reservations");
      reservations_->release_all();
    }
    reservations_timer_.cancel();
    if (!relay_endpoints_.empty()) {
      relay_endpoints_.clear();
      publish_contact();
    }
    return;
  }
  want_reservations("not reachable from outside");
}

void Daemon::want_reservations(const std::string& why) {
  if (stopping_ || swarms_.empty() || config_.relay_reservations == 0) return;
  if (!reservations_) {
    std::vector<SwarmToken> tokens;
    for (const auto& s : swarms_) tokens.push_back(s.token);
    reservations_ = std::make_unique<RelayReservations>(
        io_, dialer_, std::move(tokens),
        [this](const asio::ip::tcp::endpoint& relay, Bytes token, NodeId from) { accept_circuit(relay, std::move(token), from); });
    reservations_->on_change([this](const std::string& w) { on_reservations_changed(w); });
  }
  if (reservations_->held().size() >= config_.relay_reservations) return;
  log::debug("looking for relays: {}", why);
  struct Gather {
    std::size_t pending;
    std::vector<RelayCandidate> found;
  };
  auto gather = std::make_shared<Gather>(Gather{swarms_.size(), {}});
  for (std::size_t si = 0; si < swarms_.size(); ++si) {
    auto loc = swarms_[si].token.relays_location();
    dht_->get(loc, std::min<std::chrono::seconds>(config_.lookup_timeout, kRelayLookup),
              [this, si, loc, gather](std::vector<DhtValue> values) {
      for (auto& rec : open_values<ContactRecord>(swarms_[si], loc, values, decode_contact)) {
        if (rec.node == node_id_ || !(rec.capabilities & kCapabilityRelay)) continue;
        RelayCandidate c{{rec.node, {}, {}, false}, si};
        for (const auto& e : rec.endpoints) {
          bool usable = e.kind == EndpointKind::Public || e.kind == EndpointKind::Mapped ||
                        (config_.test_relay_only && e.kind == EndpointKind::Loopback);
          if (!usable) continue;
          std::error_code ec;
          auto address = asio::ip::make_address(e.host, ec);
          if (!ec) c.address.endpoints.emplace_back(address, e.port);
        }
        if (!c.address.endpoints.empty()) gather->found.push_back(std::move(c));
      }
      if (--gather->pending != 0 || stopping_ || !reservations_) return;
      if (gather->found.empty()) reservations_note_ = "no relay found in the swarm yet";
      reservations_->reserve(gather->found, config_.relay_reservations);
      if (reservations_->held().size() < config_.relay_reservations) {
        reservations_timer_.expires_after(kReservationRetry);
        reservations_timer_.async_wait([this](const std::error_code& ec) {
          if (!ec && confirmed_.empty()) want_reservations("fewer reservations than wanted");
        });
      }
    });
  }
}

void Daemon::on_reservations_changed(const std::string& why) {
  if (stopping_ || !reservations_) return;
  std::vector<Endpoint> endpoints;
  for (const auto& h : reservations_->held())
    if (h.confirmed)
      endpoints.push_back({EndpointKind::Relay, h.endpoint.address().to_string(), h.endpoint.port(), h.relay.hex()});
  if (!why.empty()) {
    reservations_note_ = why;
    log::warn("{}; looking for another relay", why);
    reservations_timer_.expires_after(kReplaceRelayAfter);
    reservations_timer_.async_wait([this](const std::error_code& ec) {
      if (!ec && confirmed_.empty()) want_reservations("a relay went away");
    });
  }
  if (endpoints == relay_endpoints_) return;
  relay_endpoints_ = std::move(endpoints);
  std::string list;
  for (const auto& e : relay_endpoints_) list += (list.empty() ? "" : ", ") + host_port(e.host, e.port) + " (" + e.via.substr(0, 8) + ")";
  if (relay_endpoints_.empty()) log::warn("no relay reservation held: other nodes cannot reach this one");
  else log::info("reachable through relay(s) {}: contact record updated", list);
  publish_contact();
}

void Daemon::accept_circuit(const asio::ip::tcp::endpoint& relay, Bytes token, NodeId from) {
  // Our end of a circuit: a plain connection to the relay with the token, then TLS as
  // the server, exactly as for a peer that dialled us.
  auto socket = std::make_shared<asio::ip::tcp::socket>(io_);
  auto preamble = std::make_shared<Bytes>(peer::kCircuitMagic.begin(), peer::kCircuitMagic.end());
  preamble->insert(preamble->end(), token.begin(), token.end());
  socket->async_connect(relay, [this, socket, preamble, relay, from](const std::error_code& ec) {
    if (ec) return log::warn("circuit from {}: cannot connect to relay {}: {}", from.hex(), relay.address().to_string(), ec.message());
    asio::async_write(*socket, asio::buffer(*preamble), [this, socket, preamble, relay, from](const std::error_code& wec, std::size_t) {
      if (wec || stopping_ || !peer_server_) return;
      log::debug("circuit from {} through relay {}", from.hex(), relay.address().to_string());
      peer_server_->adopt(std::move(*socket), "relay circuit from " + from.hex().substr(0, 8));
    });
  });
}

json Daemon::relay_json() const {
  json out = {{"mode", config_.relay == DaemonConfig::RelayMode::On    ? "on"
                       : config_.relay == DaemonConfig::RelayMode::Off ? "off"
                                                                       : "auto"},
              {"offered", static_cast<bool>(relay_)}};
  if (relay_) {
    json held = json::array();
    for (const auto& r : relay_->reservations())
      held.push_back({{"node", r.node.hex()}, {"circuits_open", r.circuits_open}, {"expires_in_seconds", r.expires_in.count()}});
    const auto& st = relay_->stats();
    out["reservations_served"] = std::move(held);
    out["circuits_open"] = relay_->circuits_open();
    out["circuits_opened"] = st.circuits_opened;
    out["circuits_refused"] = st.circuits_refused;
    out["circuits_cut"] = st.circuits_cut;
    out["reservations_refused"] = st.reservations_refused;
    out["joins_refused"] = st.joins_refused;
    out["bytes_relayed"] = st.bytes_relayed;
  }
  json mine = json::array();
  if (reservations_)
    for (const auto& h : reservations_->held())
      mine.push_back({{"relay", h.relay.hex()},
                      {"endpoint", host_port(h.endpoint.address().to_string(), h.endpoint.port())},
                      {"confirmed", h.confirmed},
                      {"circuits", h.circuits}});
  out["reservations_held"] = std::move(mine);
  if (!reservations_note_.empty()) out["note"] = reservations_note_;
  return out;
}

}  // namespace annexswarm
