#include "transfer/peer_dialer.hpp"

#include <asio/connect.hpp>

namespace annexswarm {

void DirectDialer::dial(const PeerAddress& peer, const SwarmToken& swarm, DialFn done) {
  auto socket = std::make_shared<asio::ip::tcp::socket>(io_);
  asio::async_connect(
      *socket, peer.endpoints,
      [socket, credentials = credentials_, node = peer.node, swarm, done = std::move(done)](
          const std::error_code& ec, const asio::ip::tcp::endpoint&) {
        if (ec) return done(Error{"cannot connect: " + ec.message()});
        auto stream = std::make_shared<TlsStream>(std::move(*socket), credentials, TlsStream::Side::Client);
        auto link = std::make_shared<PeerLink>(stream, std::vector<SwarmToken>{swarm}, peer::Role::Dialer);
        link->establish(node, [link, done](Result<PeerLink::Established> r) {
          if (!r) return done(Error{r.error()});
          done(link);
        });
      });
}

}  // namespace annexswarm
