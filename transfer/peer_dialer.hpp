#pragma once
// How a node reaches a swarm member: one interface that yields a connected,
// authenticated PeerLink (TLS done, node id checked, membership proven), whatever the
// path. DirectDialer tries the member's advertised TCP endpoints in order (LAN, public,
// mapped), each through the whole handshake: a private address may well answer, but
// as another host on another LAN; then circuits through the relays that hold a
// reservation for it, with TLS end to end through the relay.
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "transfer/peer_link.hpp"

namespace annexswarm {

// A relay that holds a reservation for the node (see relay/).
struct RelayRoute {
  NodeId relay;
  std::vector<asio::ip::tcp::endpoint> endpoints;
  friend bool operator==(const RelayRoute&, const RelayRoute&) = default;
};

struct PeerAddress {
  NodeId node;
  std::vector<asio::ip::tcp::endpoint> endpoints;  // tried first, in order
  std::vector<RelayRoute> relays;                   // then circuits through these
  bool any_member = false;  // accept whichever member answers (a bootstrap address), not `node`
};

class PeerDialer {
public:
  using DialFn = std::function<void(Result<std::shared_ptr<PeerLink>>)>;
  virtual ~PeerDialer() = default;
  // Connects to `peer` and proves membership of `swarm`; the error says why not.
  virtual void dial(const PeerAddress& peer, const SwarmToken& swarm, DialFn done) = 0;
};

class PeerChannel;

class DirectDialer final : public PeerDialer {
public:
  // How to reach a relay to ask it for a circuit: the node's shared link to it (the
  // PeerPool). Unset: a link dialled for the question and closed after it.
  using RelayLink =
      std::function<void(const PeerAddress& relay, const SwarmToken& swarm,
                         std::function<void(Result<std::shared_ptr<PeerChannel>>)> done)>;
  void set_relay_link(RelayLink fn) { relay_link_ = std::move(fn); }

  struct Timeouts {
    std::chrono::milliseconds connect{5000};    // per endpoint
    std::chrono::milliseconds handshake{10000};  // TLS, HELLO and PROOF
  };
  DirectDialer(asio::io_context& io, std::shared_ptr<TlsCredentials> credentials)
      : io_(io), credentials_(std::move(credentials)) {}
  DirectDialer(asio::io_context& io, std::shared_ptr<TlsCredentials> credentials, Timeouts timeouts)
      : io_(io), credentials_(std::move(credentials)), timeouts_(timeouts) {}
  // The error lists every endpoint tried and why each failed.
  void dial(const PeerAddress& peer, const SwarmToken& swarm, DialFn done) override;

private:
  struct Attempt;
  using Failed = std::function<void(const std::string&)>;
  void try_next(std::shared_ptr<Attempt> attempt);
  void try_relay(std::shared_ptr<Attempt> attempt, const RelayRoute& route, Failed failed);
  // TLS, HELLO and PROOF on a connected socket, as the dialer.
  void handshake(std::shared_ptr<asio::ip::tcp::socket> socket, std::shared_ptr<Attempt> attempt, Failed failed);

  void open_circuit(std::shared_ptr<Attempt> attempt, asio::ip::tcp::endpoint relay, Bytes token, Failed failed);

  asio::io_context& io_;
  std::shared_ptr<TlsCredentials> credentials_;
  Timeouts timeouts_;
  RelayLink relay_link_;
};

}  // namespace annexswarm
