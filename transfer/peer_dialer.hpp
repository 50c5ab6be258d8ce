#pragma once
// How a node reaches a swarm member: one interface that yields a connected,
// authenticated PeerLink (TLS done, node id checked, membership proven), whatever the
// path. DirectDialer tries the member's advertised TCP endpoints in order (LAN, public,
// mapped), each through the whole handshake: a private address may well answer, but
// as another host on another LAN. Relays plug in here as another dialer.
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "transfer/peer_link.hpp"

namespace annexswarm {

struct PeerAddress {
  NodeId node;
  std::vector<asio::ip::tcp::endpoint> endpoints;
  bool any_member = false;  // accept whichever member answers (a bootstrap address), not `node`
};

class PeerDialer {
public:
  using DialFn = std::function<void(Result<std::shared_ptr<PeerLink>>)>;
  virtual ~PeerDialer() = default;
  // Connects to `peer` and proves membership of `swarm`; the error says why not.
  virtual void dial(const PeerAddress& peer, const SwarmToken& swarm, DialFn done) = 0;
};

class DirectDialer final : public PeerDialer {
public:
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
  void try_next(std::shared_ptr<Attempt> attempt);

  asio::io_context& io_;
  std::shared_ptr<TlsCredentials> credentials_;
  Timeouts timeouts_;
};

}  // namespace annexswarm
