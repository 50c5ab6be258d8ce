// Both ends of a tunnel (transfer/tunnel.hpp) over a real TLS peer link on 127.0.0.1, each
// joined to a local socket pair standing for ssh and sshd: bytes both ways, byte for byte,
// half-close passed on, a clean end on both sides, the idle deadline, and an error on one
// side reaching the other.
#include <boost/test/unit_test.hpp>

#include <asio/io_context.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include "node/identity.hpp"
#include "tests/support/test_support.hpp"
#include "transfer/tunnel.hpp"

using namespace annexswarm;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

test::TestIdentity& dialer_identity() {
  static test::TestIdentity n;
  return n;
}
test::TestIdentity& listener_identity() {
  static test::TestIdentity n;
  return n;
}

// An established link, both ends, and a socket pair at each end: app <-> tunnel.
struct TwoEnds {
  asio::io_context io;
  SwarmToken swarm = SwarmToken::generate();
  tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  std::shared_ptr<PeerLink> near, far;
  asio::local::stream_protocol::socket near_app{io}, far_app{io};
  std::shared_ptr<Tunnel> near_tunnel, far_tunnel;
  std::optional<std::optional<std::string>> near_done, far_done;

  explicit TwoEnds(std::chrono::milliseconds idle = 20s) {
    bool far_up = false, near_up = false;
    acceptor.async_accept([&](const std::error_code& ec, tcp::socket socket) {
      BOOST_REQUIRE(!ec);
      auto stream = std::make_shared<TlsStream>(std::move(socket), listener_identity().credentials, TlsStream::Side::Server);
      far = std::make_shared<PeerLink>(stream, std::vector<SwarmToken>{swarm}, peer::Role::Listener);
      far->establish(std::nullopt, [&](Result<PeerLink::Established> r) {
        BOOST_REQUIRE_MESSAGE(r, r.error());
        far_up = true;
      });
    });
    tcp::socket s(io);
    s.connect(acceptor.local_endpoint());
    auto stream = std::make_shared<TlsStream>(std::move(s), dialer_identity().credentials, TlsStream::Side::Client);
    near = std::make_shared<PeerLink>(stream, std::vector<SwarmToken>{swarm}, peer::Role::Dialer);
    near->establish(listener_identity().id, [&](Result<PeerLink::Established> r) {
      BOOST_REQUIRE_MESSAGE(r, r.error());
      near_up = true;
    });
    test::run_io_until(io, [&] { return far_up && near_up; }, 20s);
    asio::local::stream_protocol::socket near_end(io), far_end(io);
    asio::local::connect_pair(near_app, near_end);
    asio::local::connect_pair(far_app, far_end);
    near_tunnel = std::make_shared<Tunnel>(io, near, Tunnel::LocalSocket(std::move(near_end)), idle,
                                           [this](std::optional<std::string> e) { near_done = std::move(e); });
    far_tunnel = std::make_shared<Tunnel>(io, far, Tunnel::LocalSocket(std::move(far_end)), idle,
                                          [this](std::optional<std::string> e) { far_done = std::move(e); });
    near_tunnel->start();
    far_tunnel->start();
  }
  void run_until(const std::function<bool()>& done) { test::run_io_until(io, done, 30s); }
};

// Reads the socket to end of file.
void read_all(asio::local::stream_protocol::socket& s, std::string& into, bool& eof) {
  auto buf = std::make_shared<std::array<char, 65536>>();
  s.async_read_some(asio::buffer(*buf), [&s, &into, &eof, buf](const std::error_code& ec, std::size_t n) {
    into.append(buf->data(), n);
    if (ec) {
      eof = ec == asio::error::eof;
      return;
    }
    read_all(s, into, eof);
  });
}

}  // namespace

BOOST_AUTO_TEST_SUITE(tunnel)

BOOST_AUTO_TEST_CASE(bytes_cross_both_ways_and_each_half_closes_on_its_own) {
  TwoEnds t;
  // The client sends 8 MiB and closes its sending half; the service reads to the end while
  // the tunnel's reverse half stays open, then answers and closes.
  auto request = test::random_content(8u << 20, 21);
  auto answer = test::random_content(3u << 20, 22);
  std::string at_service, at_client;
  bool service_eof = false, client_eof = false;
  asio::async_write(t.near_app, asio::buffer(request), [&](const std::error_code& ec, std::size_t) {
    BOOST_REQUIRE(!ec);
    t.near_app.shutdown(asio::socket_base::shutdown_send);
  });
  read_all(t.far_app, at_service, service_eof);
  t.run_until([&] { return service_eof; });
  BOOST_TEST(at_service.size() == request.size());
  BOOST_TEST((at_service == request));
  BOOST_TEST(!t.near_done);  // half open: the answer has yet to come
  asio::async_write(t.far_app, asio::buffer(answer), [&](const std::error_code& ec, std::size_t) {
    BOOST_REQUIRE(!ec);
    t.far_app.shutdown(asio::socket_base::shutdown_send);
  });
  read_all(t.near_app, at_client, client_eof);
  t.run_until([&] { return client_eof && t.near_done && t.far_done; });
  BOOST_TEST((at_client == answer));
  BOOST_TEST(!*t.near_done, t.near_done->value_or(""));
  BOOST_TEST(!*t.far_done, t.far_done->value_or(""));
  BOOST_TEST(t.near_tunnel->bytes_to_peer() == request.size());
  BOOST_TEST(t.far_tunnel->bytes_to_peer() == answer.size());
}

BOOST_AUTO_TEST_CASE(both_sides_sending_and_closing_at_once_lose_nothing) {
  TwoEnds t;
  auto one = test::random_content(4u << 20, 23), two = test::random_content(4u << 20, 24);
  std::string at_far, at_near;
  bool far_eof = false, near_eof = false;
  for (auto* pair : {&t.near_app, &t.far_app}) {
    const auto& data = pair == &t.near_app ? one : two;
    asio::async_write(*pair, asio::buffer(data), [pair](const std::error_code& ec, std::size_t) {
      BOOST_REQUIRE(!ec);
      pair->shutdown(asio::socket_base::shutdown_send);
    });
  }
  read_all(t.far_app, at_far, far_eof);
  read_all(t.near_app, at_near, near_eof);
  t.run_until([&] { return far_eof && near_eof && t.near_done && t.far_done; });
  BOOST_TEST((at_far == one));
  BOOST_TEST((at_near == two));
  BOOST_TEST(!*t.near_done, t.near_done->value_or(""));
  BOOST_TEST(!*t.far_done, t.far_done->value_or(""));
}

BOOST_AUTO_TEST_CASE(a_tunnel_with_nothing_moving_ends_at_its_idle_deadline_on_both_sides) {
  TwoEnds t(300ms);
  t.run_until([&] { return t.near_done && t.far_done; });
  BOOST_REQUIRE(*t.near_done);
  BOOST_TEST(t.near_done->value().find("idle") != std::string::npos, t.near_done->value());
  BOOST_REQUIRE(*t.far_done);
}

BOOST_AUTO_TEST_CASE(a_local_side_that_fails_ends_the_tunnel_at_the_far_end_too) {
  TwoEnds t;
  t.near_tunnel->close("ssh went away");
  std::string got;
  bool eof = false;
  read_all(t.far_app, got, eof);
  t.run_until([&] { return t.far_done.has_value() && eof; });
  BOOST_REQUIRE(*t.far_done);
  BOOST_TEST(t.far_done->value().find("ssh went away") != std::string::npos, t.far_done->value());
}

BOOST_AUTO_TEST_SUITE_END()
