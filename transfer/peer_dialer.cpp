#include "transfer/peer_dialer.hpp"

#include <asio/steady_timer.hpp>

namespace annexswarm {

struct DirectDialer::Attempt {
  PeerAddress peer;
  SwarmToken swarm;
  DialFn done;
  std::size_t next = 0;
  std::string errors;
};

namespace {
std::string endpoint_text(const asio::ip::tcp::endpoint& e) {
  auto host = e.address().to_string();
  return (e.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(e.port());
}
}  // namespace

void DirectDialer::dial(const PeerAddress& peer, const SwarmToken& swarm, DialFn done) {
  if (peer.endpoints.empty()) return done(Error{"no address to dial"});
  try_next(std::make_shared<Attempt>(Attempt{peer, swarm, std::move(done), 0, {}}));
}

void DirectDialer::try_next(std::shared_ptr<Attempt> attempt) {
  if (attempt->next >= attempt->peer.endpoints.size()) {
    auto done = std::move(attempt->done);
    return done(Error{attempt->errors});
  }
  auto endpoint = attempt->peer.endpoints[attempt->next++];
  auto failed = [this, attempt, endpoint](const std::string& why) {
    attempt->errors += (attempt->errors.empty() ? "" : "; ") + endpoint_text(endpoint) + ": " + why;
    try_next(attempt);
  };
  auto socket = std::make_shared<asio::ip::tcp::socket>(io_);
  auto timer = std::make_shared<asio::steady_timer>(io_);
  auto timed_out = std::make_shared<bool>(false);
  timer->expires_after(timeouts_.connect);
  timer->async_wait([socket, timed_out](const std::error_code& ec) {
    if (ec) return;
    *timed_out = true;
    std::error_code ignored;
    socket->close(ignored);
  });
  socket->async_connect(endpoint, [this, socket, timer, timed_out, attempt, failed](const std::error_code& ec) {
    timer->cancel();
    if (ec) return failed("cannot connect: " + (*timed_out ? "no answer within " +
                                                                 std::to_string(timeouts_.connect.count() / 1000) + " s"
                                                           : ec.message()));
    auto stream = std::make_shared<TlsStream>(std::move(*socket), credentials_, TlsStream::Side::Client);
    auto link = std::make_shared<PeerLink>(stream, std::vector<SwarmToken>{attempt->swarm}, peer::Role::Dialer);
    auto settled = std::make_shared<bool>(false);
    timer->expires_after(timeouts_.handshake);
    timer->async_wait([link, settled](const std::error_code& tec) {
      if (!tec && !*settled) link->close();
    });
    std::optional<NodeId> expected;
    if (!attempt->peer.any_member) expected = attempt->peer.node;
    link->establish(expected, [link, timer, settled, attempt, failed](Result<PeerLink::Established> r) {
      *settled = true;
      timer->cancel();
      if (!r) return failed(r.error());
      attempt->peer.node = r->peer;
      auto done = std::move(attempt->done);
      done(link);
    });
  });
}

}  // namespace annexswarm
