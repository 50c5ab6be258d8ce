#include "transfer/peer_dialer.hpp"

#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include "protocol/ip_address.hpp"
#include "transfer/peer_pool.hpp"

namespace annexswarm {

struct DirectDialer::Attempt {
  PeerAddress peer;
  SwarmToken swarm;
  DialFn done;
  std::size_t next = 0;
  std::string errors;
};


void DirectDialer::dial(const PeerAddress& peer, const SwarmToken& swarm, DialFn done) {
  if (peer.endpoints.empty() && peer.relays.empty()) return done(Error{"no address to dial"});
  try_next(std::make_shared<Attempt>(Attempt{peer, swarm, std::move(done), 0, {}}));
}

void DirectDialer::try_next(std::shared_ptr<Attempt> attempt) {
  auto total = attempt->peer.endpoints.size() + attempt->peer.relays.size();
  if (attempt->next >= total) {
    auto done = std::move(attempt->done);
    return done(Error{attempt->errors});
  }
  auto index = attempt->next++;
  if (index >= attempt->peer.endpoints.size()) {
    const auto& route = attempt->peer.relays[index - attempt->peer.endpoints.size()];
    auto failed = [this, attempt, relay = route.relay](const std::string& why) {
      attempt->errors += (attempt->errors.empty() ? "" : "; ") + std::string("via relay ") + relay.hex().substr(0, 8) +
                         ": " + why;
      try_next(attempt);
    };
    return try_relay(attempt, route, failed);
  }
  auto endpoint = attempt->peer.endpoints[index];
  auto failed = [this, attempt, endpoint](const std::string& why) {
    attempt->errors += (attempt->errors.empty() ? "" : "; ") + host_port(endpoint.address().to_string(), endpoint.port()) + ": " + why;
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
    handshake(socket, attempt, failed);
  });
}

void DirectDialer::handshake(std::shared_ptr<asio::ip::tcp::socket> socket, std::shared_ptr<Attempt> attempt,
                             Failed failed) {
  auto stream = std::make_shared<TlsStream>(std::move(*socket), credentials_, TlsStream::Side::Client);
  auto link = std::make_shared<PeerLink>(stream, std::vector<SwarmToken>{attempt->swarm}, peer::Role::Dialer);
  auto settled = std::make_shared<bool>(false);
  auto timed_out = std::make_shared<bool>(false);
  auto timer = std::make_shared<asio::steady_timer>(io_);
  timer->expires_after(timeouts_.handshake);
  timer->async_wait([link, settled, timed_out](const std::error_code& tec) {
    if (tec || *settled) return;
    *timed_out = true;
    link->close();
  });
  std::optional<NodeId> expected;
  if (!attempt->peer.any_member) expected = attempt->peer.node;
  link->establish(expected, [this, link, timer, settled, timed_out, attempt, failed](Result<PeerLink::Established> r) {
    *settled = true;
    timer->cancel();
    // A peer that accepted the connection and then said nothing: say that, not what
    // closing it made TLS report.
    if (!r && *timed_out)
      return failed("no TLS handshake and membership proof within " +
                    std::to_string(timeouts_.handshake.count() / 1000) + " s (the peer accepted, then said nothing)");
    if (!r) return failed(r.error());
    attempt->peer.node = r->peer;
    auto done = std::move(attempt->done);
    done(link);
  });
}

void DirectDialer::try_relay(std::shared_ptr<Attempt> attempt, const RelayRoute& route, Failed failed) {
  // 1. Ask the relay for a circuit over an authenticated link; it tells the target.
  PeerAddress relay{route.relay, route.endpoints, {}, false};
  if (relay_link_) {
    relay_link_(relay, attempt->swarm, [this, attempt, failed](Result<std::shared_ptr<PeerChannel>> channel) {
      if (!channel) return failed(channel.error());
      auto link = *channel;
      auto timer = std::make_shared<asio::steady_timer>(io_);
      auto answered = std::make_shared<bool>(false);
      auto relay_endpoint = link->remote_endpoint();
      auto id = std::make_shared<std::uint32_t>(0);
      timer->expires_after(timeouts_.handshake);
      timer->async_wait([link, answered, id, failed](const std::error_code& ec) {
        if (ec || *answered) return;
        *answered = true;
        link->cancel(*id);
        failed("the relay did not answer CONNECT in time");
      });
      *id = link->request(peer::Connect{0, attempt->peer.node}, [this, attempt, failed, timer, answered,
                                                                 relay_endpoint](Result<peer::FrameView>& frame) {
        if (*answered) return false;
        *answered = true;
        timer->cancel();
        auto* f = frame ? std::get_if<peer::Frame>(&*frame) : nullptr;
        auto* reply = f ? std::get_if<peer::ConnectReply>(f) : nullptr;
        if (!reply) {
          failed(frame ? "unexpected answer to CONNECT" : frame.error());
          return false;
        }
        if (!reply->ok) {
          failed("refused: " + reply->reason);
          return false;
        }
        open_circuit(attempt, relay_endpoint, reply->token, failed);
        return false;
      });
    });
    return;
  }
  dial(relay, attempt->swarm, [this, attempt, failed](Result<std::shared_ptr<PeerLink>> control) {
    if (!control) return failed(control.error());
    auto link = *control;
    auto timer = std::make_shared<asio::steady_timer>(io_);
    auto answered = std::make_shared<bool>(false);
    timer->expires_after(timeouts_.handshake);
    timer->async_wait([link, answered](const std::error_code& ec) {
      if (!ec && !*answered) link->close();
    });
    link->send(peer::Connect{1, attempt->peer.node});
    link->receive([this, link, timer, answered, attempt, failed](Result<peer::Frame> frame) {
      *answered = true;
      timer->cancel();
      auto relay_endpoint = link->remote_endpoint();
      link->close();
      auto* reply = frame ? std::get_if<peer::ConnectReply>(&*frame) : nullptr;
      if (!reply) return failed(frame ? "unexpected answer to CONNECT" : frame.error());
      if (!reply->ok) return failed("refused: " + reply->reason);
      open_circuit(attempt, relay_endpoint, reply->token, failed);
    });
  });
}

void DirectDialer::open_circuit(std::shared_ptr<Attempt> attempt, asio::ip::tcp::endpoint relay_endpoint, Bytes token,
                                Failed failed) {
  // 2. A plain connection to the relay with the token; 3. TLS with the target through it.
  auto socket = std::make_shared<asio::ip::tcp::socket>(io_);
  auto preamble = std::make_shared<Bytes>(peer::kCircuitMagic.begin(), peer::kCircuitMagic.end());
  preamble->insert(preamble->end(), token.begin(), token.end());
  socket->async_connect(relay_endpoint, [this, socket, preamble, attempt, failed](const std::error_code& ec) {
    if (ec) return failed("cannot connect for the circuit: " + ec.message());
    asio::async_write(*socket, asio::buffer(*preamble),
                      [this, socket, preamble, attempt, failed](const std::error_code& wec, std::size_t) {
                        if (wec) return failed("circuit: " + wec.message());
                        handshake(socket, attempt, failed);
                      });
  });
}

}  // namespace annexswarm
