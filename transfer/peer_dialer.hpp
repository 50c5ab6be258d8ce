#pragma once
// How a node reaches a swarm member: one interface that yields a connected,
// authenticated PeerLink (TLS done, node id checked, membership proven), whatever the
// path. DirectDialer tries the member's advertised TCP endpoints in order; mapped ports
// and relays plug in here as other dialers.
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <functional>
#include <memory>
#include <vector>

#include "transfer/peer_link.hpp"

namespace annexswarm {

struct PeerAddress {
  NodeId node;
  std::vector<asio::ip::tcp::endpoint> endpoints;
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
  DirectDialer(asio::io_context& io, std::shared_ptr<TlsCredentials> credentials)
      : io_(io), credentials_(std::move(credentials)) {}
  void dial(const PeerAddress& peer, const SwarmToken& swarm, DialFn done) override;

private:
  asio::io_context& io_;
  std::shared_ptr<TlsCredentials> credentials_;
};

}  // namespace annexswarm
