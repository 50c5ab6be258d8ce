#include "node/relay_manager.hpp"

#include <asio/write.hpp>

#include "node/log.hpp"
#include "protocol/ip_address.hpp"

namespace annexswarm {
using namespace std::chrono_literals;

namespace {
constexpr auto kReservationRetry = 10s;
constexpr auto kReplaceRelayAfter = 2s;
constexpr auto kRelayOnlyStart = 1s;
}  // namespace

RelayManager::RelayManager(asio::io_context& io, Timers& timers, EndpointBook& book, PeerPool& pool,
                           std::vector<SwarmToken> swarms, NodeId self, Settings settings, Mediator mediator)
    : io_(io),
      timers_(timers),
      book_(book),
      pool_(pool),
      swarms_(std::move(swarms)),
      self_(self),
      settings_(std::move(settings)),
      mediator_(std::move(mediator)),
      retry_timer_(timers.make_timer()) {}

RelayManager::~RelayManager() { *alive_ = false; }

void RelayManager::start() {
  if (settings_.mode == RelayMode::On) offer();
  if (settings_.relay_only) {
    log::warn("test switch on: this node advertises relay endpoints only");
    retry_timer_->schedule(kRelayOnlyStart, [this] { want_reservations("test: relay only"); });
  }
}

void RelayManager::stop() {
  stopping_ = true;
  retry_timer_->cancel();
  if (reservations_) reservations_->release_all();
}

void RelayManager::offer() {
  if (server_) return;
  server_ = std::make_unique<RelayServer>(io_, settings_.limits);
  if (!settings_.capture.empty()) {
    log::warn("test switch on: every relayed byte is written to {}", settings_.capture.string());
    server_->capture_for_test(settings_.capture);
  }
  PeerServer::RelayHooks hooks;
  hooks.reserve = [this](const NodeId& node, std::function<void(const peer::Frame&)> notify, std::weak_ptr<void> alive) {
    if (!server_) return Result<std::uint32_t>(Error{"this node no longer relays"});
    auto r = server_->reserve(node, std::move(notify), std::move(alive));
    if (r) log::debug("relay: reservation for {}", node.hex());
    else log::info("relay: refused a reservation for {}: {}", node.hex(), r.error());
    return r;
  };
  hooks.connect = [this](const NodeId& from, const NodeId& target) {
    if (!server_) return Result<Bytes>(Error{"this node no longer relays"});
    auto r = server_->connect(from, target);
    if (!r) log::info("relay: refused a circuit from {} to {}: {}", from.hex(), target.hex(), r.error());
    return r;
  };
  hooks.join = [this](asio::ip::tcp::socket socket, Bytes token) {
    if (server_) server_->join(std::move(socket), std::move(token));
  };
  mediator_.offer(std::move(hooks));
  const auto& l = settings_.limits;
  log::info("offering relay circuits to swarm members (at most {} reservations, {} circuits each{})",
            l.max_reservations, l.max_circuits_per_reservation,
            l.max_circuit_bytes ? ", " + std::to_string(l.max_circuit_bytes) + " bytes per circuit" : "");
  book_.set_relay_offered(true);
}

void RelayManager::update() {
  if (stopping_) return;
  bool reachable = book_.reachable();
  if (settings_.mode == RelayMode::Auto && reachable && !server_) offer();
  if (reachable || !mediator_.nat_applies()) {
    if (reservations_ && !reservations_->held().empty()) {
      log::info("reachable directly: releasing relay reservations");
      reservations_->release_all();
    }
    retry_timer_->cancel();
    book_.set_relay_endpoints({});
    return;
  }
  want_reservations("not reachable from outside");
}

void RelayManager::want_reservations(const std::string& why) {
  if (stopping_ || swarms_.empty() || settings_.reservations == 0) return;
  if (!reservations_) {
    reservations_ = std::make_unique<RelayReservations>(
        io_, pool_, swarms_,
        [this](const asio::ip::tcp::endpoint& relay, Bytes token, NodeId from) { accept_circuit(relay, std::move(token), from); });
    reservations_->on_change([this](const std::string& w) { on_reservations_changed(w); });
  }
  if (reservations_->held().size() >= settings_.reservations) return;
  log::debug("looking for relays: {}", why);
  mediator_.find_relays(settings_.lookup_timeout, [this, alive = alive_](std::vector<Member> relays) {
    if (!*alive || stopping_ || !reservations_) return;
    std::vector<RelayCandidate> found;
    for (const auto& [si, rec] : relays) {
      if (rec.node == self_) continue;
      RelayCandidate c{{rec.node, {}, {}, false}, si};
      for (const auto& e : rec.endpoints) {
        bool usable = e.kind == EndpointKind::Public || e.kind == EndpointKind::Mapped ||
                      (settings_.relay_only && e.kind == EndpointKind::Loopback);
        if (!usable) continue;
        std::error_code ec;
        auto address = asio::ip::make_address(e.host, ec);
        if (!ec) c.address.endpoints.emplace_back(address, e.port);
      }
      if (!c.address.endpoints.empty()) found.push_back(std::move(c));
    }
    if (found.empty()) note_ = "no relay found in the swarm yet";
    reservations_->reserve(found, settings_.reservations);
    if (reservations_->held().size() < settings_.reservations)
      retry_timer_->schedule(kReservationRetry, [this] {
        if (!book_.reachable()) want_reservations("fewer reservations than wanted");
      });
  });
}

void RelayManager::on_reservations_changed(const std::string& why) {
  if (stopping_ || !reservations_) return;
  std::vector<Endpoint> endpoints;
  for (const auto& h : reservations_->held())
    if (h.confirmed)
      endpoints.push_back({EndpointKind::Relay, h.endpoint.address().to_string(), h.endpoint.port(), h.relay.hex()});
  if (!why.empty()) {
    note_ = why;
    log::warn("{}; looking for another relay", why);
    retry_timer_->schedule(kReplaceRelayAfter, [this] {
      if (!book_.reachable()) want_reservations("a relay went away");
    });
  }
  if (endpoints == book_.relay_endpoints()) return;
  std::string list;
  for (const auto& e : endpoints) list += (list.empty() ? "" : ", ") + host_port(e.host, e.port) + " (" + e.via.substr(0, 8) + ")";
  if (endpoints.empty()) log::warn("no relay reservation held: other nodes cannot reach this one");
  else log::info("reachable through relay(s) {}: contact record updated", list);
  book_.set_relay_endpoints(std::move(endpoints));
}

void RelayManager::accept_circuit(const asio::ip::tcp::endpoint& relay, Bytes token, NodeId from) {
  // Our end of a circuit: a plain connection to the relay with the token, then TLS as
  // the server, exactly as for a peer that dialled us.
  auto socket = std::make_shared<asio::ip::tcp::socket>(io_);
  auto preamble = std::make_shared<Bytes>(peer::kCircuitMagic.begin(), peer::kCircuitMagic.end());
  preamble->insert(preamble->end(), token.begin(), token.end());
  socket->async_connect(relay, [this, alive = alive_, socket, preamble, relay, from](const std::error_code& ec) {
    if (!*alive) return;
    if (ec)
      return log::warn("circuit from {}: cannot connect to relay {}: {}", from.hex(), relay.address().to_string(),
                       ec.message());
    asio::async_write(*socket, asio::buffer(*preamble),
                      [this, alive, socket, preamble, relay, from](const std::error_code& wec, std::size_t) {
                        if (!*alive || wec || stopping_) return;
                        log::debug("circuit from {} through relay {}", from.hex(), relay.address().to_string());
                        mediator_.adopt(std::move(*socket), "relay circuit from " + from.hex().substr(0, 8));
                      });
  });
}

RelayManager::Status RelayManager::status() const {
  Status out{settings_.mode, server_.get(), {}, {}, note_};
  if (server_) out.served = server_->reservations();
  if (reservations_) out.held = reservations_->held();
  return out;
}

}  // namespace annexswarm
