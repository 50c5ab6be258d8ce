// TLS links between two endpoints in one process on 127.0.0.1: mutual certificates,
// the membership proof, and what happens to peers that cannot show either.
#include <boost/test/unit_test.hpp>

#include "tests/support/test_support.hpp"

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/write.hpp>

#include "node/identity.hpp"
#include "transfer/peer_link.hpp"

using namespace annexswarm;
using asio::ip::tcp;

namespace {

using Node = test::TestIdentity;

Node& alice() {
  static Node n;
  return n;
}
Node& bob() {
  static Node n;
  return n;
}

struct Outcome {
  bool done = false;
  Result<PeerLink::Established> result = Error{"not finished"};
};

// Bob listens (in `listen_swarms`); `dial` connects a client socket and drives it.
struct Harness {
  asio::io_context io;
  tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  Outcome listener;
  std::shared_ptr<PeerLink> listener_link;

  explicit Harness(std::vector<SwarmToken> listen_swarms) {
    acceptor.async_accept([this, listen_swarms](const std::error_code& ec, tcp::socket socket) {
      BOOST_REQUIRE(!ec);
      auto stream = std::make_shared<TlsStream>(std::move(socket), bob().credentials, TlsStream::Side::Server);
      listener_link = std::make_shared<PeerLink>(stream, listen_swarms, peer::Role::Listener);
      listener_link->establish(std::nullopt, [this](Result<PeerLink::Established> r) {
        listener = {true, std::move(r)};
      });
    });
  }

  tcp::socket connect() {
    tcp::socket s(io);
    s.connect(acceptor.local_endpoint());
    return s;
  }

  std::shared_ptr<PeerLink> dial(Node& who, const SwarmToken& swarm, std::optional<NodeId> expected, Outcome& out) {
    auto stream = std::make_shared<TlsStream>(connect(), who.credentials, TlsStream::Side::Client);
    auto link = std::make_shared<PeerLink>(stream, std::vector<SwarmToken>{swarm}, peer::Role::Dialer);
    link->establish(expected, [&out](Result<PeerLink::Established> r) { out = {true, std::move(r)}; });
    return link;
  }

  void run_until(const std::function<bool()>& done) { test::run_io_until(io, done, std::chrono::seconds(20)); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(peer_link)

BOOST_AUTO_TEST_CASE(members_authenticate_each_other_and_exchange_frames) {
  auto s1 = SwarmToken::generate(), s2 = SwarmToken::generate();
  Harness h({s1, s2});
  Outcome dialer;
  auto link = h.dial(alice(), s2, bob().id, dialer);
  h.run_until([&] { return dialer.done && h.listener.done; });
  BOOST_REQUIRE_MESSAGE(dialer.result, dialer.result.error());
  BOOST_REQUIRE_MESSAGE(h.listener.result, h.listener.result.error());
  BOOST_TEST(dialer.result->peer.hex() == bob().id.hex());
  BOOST_TEST(h.listener.result->peer.hex() == alice().id.hex());
  BOOST_TEST(h.listener.result->swarm == 1u);  // s2 in the listener's list

  std::optional<std::uint64_t> pong;
  h.listener_link->receive([&](Result<peer::Frame> f) {
    BOOST_REQUIRE(f);
    h.listener_link->send(peer::Pong{std::get<peer::Ping>(*f).nonce});
  });
  link->send(peer::Ping{42});
  link->receive([&](Result<peer::Frame> f) {
    BOOST_REQUIRE(f);
    pong = std::get<peer::Pong>(*f).nonce;
  });
  h.run_until([&] { return pong.has_value(); });
  BOOST_TEST(*pong == 42u);
}

BOOST_AUTO_TEST_CASE(a_node_of_another_swarm_is_refused_on_both_sides) {
  Harness h({SwarmToken::generate()});
  Outcome dialer;
  auto link = h.dial(alice(), SwarmToken::generate(), std::nullopt, dialer);
  h.run_until([&] { return dialer.done && h.listener.done; });
  BOOST_TEST(!dialer.result);
  BOOST_TEST(!h.listener.result);
  BOOST_TEST(dialer.result.error().find("not a member") != std::string::npos, dialer.result.error());
}

BOOST_AUTO_TEST_CASE(a_forged_membership_proof_is_refused) {
  auto swarm = SwarmToken::generate();
  Harness h({swarm});
  // A client that knows the swarm's id but not its secret: right HELLO, wrong PROOF.
  auto stream = std::make_shared<TlsStream>(h.connect(), alice().credentials, TlsStream::Side::Client);
  std::optional<bool> sent;
  stream->handshake([&](Result<NodeId> peer) {
    BOOST_REQUIRE(peer);
    auto hello = peer::encode_frame(peer::Hello{peer::kPeerProtocolVersion, 4096, swarm.id(), "forger"}).value();
    auto proof = peer::encode_frame(peer::Proof{Bytes(32, 0xab)}).value();
    hello.insert(hello.end(), proof.begin(), proof.end());
    stream->write(hello, [&](Result<bool> r) { sent = r.ok(); });
  });
  // The listener may refuse before the client's write completion has run: wait for both.
  h.run_until([&] { return h.listener.done && sent.has_value(); });
  BOOST_TEST(*sent);
  BOOST_REQUIRE(!h.listener.result);
  BOOST_TEST(h.listener.result.error().find("does not verify") != std::string::npos, h.listener.result.error());
}

BOOST_AUTO_TEST_CASE(dialling_the_wrong_node_is_detected) {
  auto swarm = SwarmToken::generate();
  Harness h({swarm});
  Outcome dialer;
  auto link = h.dial(alice(), swarm, alice().id /* not bob */, dialer);
  h.run_until([&] { return dialer.done; });
  BOOST_REQUIRE(!dialer.result);
  BOOST_TEST(dialer.result.error().find("not the node dialled") != std::string::npos, dialer.result.error());
}

BOOST_AUTO_TEST_CASE(a_client_without_tls_gets_nothing) {
  Harness h({SwarmToken::generate()});
  auto raw = h.connect();
  asio::write(raw, asio::buffer(std::string("GET / HTTP/1.0\r\n\r\n")));
  h.run_until([&] { return h.listener.done; });
  BOOST_REQUIRE(!h.listener.result);
  BOOST_TEST(h.listener.result.error().find("TLS handshake failed") != std::string::npos, h.listener.result.error());
}

BOOST_AUTO_TEST_SUITE_END()
