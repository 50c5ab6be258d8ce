#include "transfer/peer_request.hpp"

#include <asio/steady_timer.hpp>

namespace annexswarm {

void ask_peer(asio::io_context& io, PeerDialer& dialer, const PeerAddress& peer, const SwarmToken& swarm,
              peer::Frame request, std::chrono::milliseconds timeout,
              std::function<void(Result<peer::Frame>)> done) {
  struct Call {
    std::function<void(Result<peer::Frame>)> done;
    asio::steady_timer timer;
    std::shared_ptr<PeerLink> link;
    void finish(Result<peer::Frame> r) {
      if (!done) return;
      auto cb = std::move(done);
      done = nullptr;
      timer.cancel();
      if (link) link->close();
      cb(std::move(r));
    }
  };
  auto call = std::make_shared<Call>(Call{std::move(done), asio::steady_timer(io), nullptr});
  call->timer.expires_after(timeout);
  call->timer.async_wait([call](const std::error_code& ec) {
    if (!ec) call->finish(Error{"no answer in time"});
  });
  dialer.dial(peer, swarm, [call, request = std::move(request)](Result<std::shared_ptr<PeerLink>> link) {
    if (!link) return call->finish(Error{link.error()});
    if (!call->done) return (*link)->close();  // timed out meanwhile
    call->link = *link;
    call->link->send(request);
    call->link->receive([call](Result<peer::Frame> answer) { call->finish(std::move(answer)); });
  });
}

}  // namespace annexswarm
