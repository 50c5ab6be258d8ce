// Relays in one process on 127.0.0.1: a relay (PeerServer + RelayServer), a target that
// holds a reservation on it (RelayReservations) and serves an object, and dialers.
#include <boost/test/unit_test.hpp>

#include "tests/support/test_support.hpp"

#include <asio/read.hpp>
#include <asio/write.hpp>
#include <fstream>

#include "protocol/crypto.hpp"
#include "relay/relay_client.hpp"
#include "relay/relay_server.hpp"
#include "transfer/peer_server.hpp"

using namespace annexswarm;
using namespace annexswarm::peer;
using asio::ip::tcp;

namespace {

test::TestIdentity& identity(int i) {
  static test::TestIdentity ids[4];
  return ids[i];
}

struct RelayFixture {
  test::TempDir dir;
  asio::io_context io;
  SwarmToken swarm = SwarmToken::generate();
  std::string content;
  std::string key;
  // The relay.
  std::unique_ptr<PeerServer> relay_server;
  std::unique_ptr<RelayServer> relay;
  tcp::endpoint relay_at;
  // The target: serves `content`, reachable only through the relay.
  std::unique_ptr<PeerServer> target_server;
  std::unique_ptr<PeerPool> target_pool;
  std::unique_ptr<RelayReservations> reservations;

  explicit RelayFixture(RelayLimits limits = {}) {
    for (int i = 0; i < 600000; ++i) content.push_back(static_cast<char>('a' + i % 26));
    key = "SHA256E-s" + std::to_string(content.size()) + "--" + to_hex(crypto::sha256(as_bytes(content))) + ".bin";
    std::ofstream(dir.path() / "object", std::ios::binary) << content;
    relay_server = std::make_unique<PeerServer>(io, identity(0).credentials, std::vector<SwarmToken>{swarm},
                                                [](const AnnexKey&, std::string_view) { return std::nullopt; });
    relay = std::make_unique<RelayServer>(io, limits);
    PeerServer::RelayHooks hooks;
    hooks.reserve = [this](const NodeId& n, std::function<void(const Frame&)> notify, std::weak_ptr<void> alive) {
      return relay->reserve(n, std::move(notify), std::move(alive));
    };
    hooks.connect = [this](const NodeId& from, const NodeId& to) { return relay->connect(from, to); };
    hooks.join = [this](tcp::socket s, Bytes token) { relay->join(std::move(s), std::move(token)); };
    relay_server->on_relay(hooks);
    relay_at = tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                             relay_server->listen(asio::ip::make_address("127.0.0.1"), 0).value());
    target_server = std::make_unique<PeerServer>(io, identity(1).credentials, std::vector<SwarmToken>{swarm},
                                                 [this](const AnnexKey& k, std::string_view) -> std::optional<std::filesystem::path> {
                                                   if (k.str() == key) return dir.path() / "object";
                                                   return std::nullopt;
                                                 });
  }

  void run_until(const std::function<bool()>& done) { test::run_io_until(io, done, std::chrono::seconds(30)); }

  void reserve() {
    auto dialer = std::make_shared<DirectDialer>(io, identity(1).credentials);
    target_pool = std::make_unique<PeerPool>(io, dialer);
    reservations = std::make_unique<RelayReservations>(
        io, *target_pool, std::vector<SwarmToken>{swarm}, [this](const tcp::endpoint& at, Bytes token, NodeId) {
          auto s = std::make_shared<tcp::socket>(io);
          s->connect(at);
          Bytes preamble(kCircuitMagic.begin(), kCircuitMagic.end());
          preamble.insert(preamble.end(), token.begin(), token.end());
          asio::write(*s, asio::buffer(preamble));
          target_server->adopt(std::move(*s), "circuit");
        });
    reservations->reserve({RelayCandidate{{identity(0).id, {relay_at}, {}, false}, 0}}, 1);
    run_until([&] { return reservations->confirmed_count() == 1; });
  }

  // An authenticated link to the relay itself, as member `who`.
  std::shared_ptr<PeerLink> dial_relay(int who) {
    DirectDialer dialer(io, identity(who).credentials);
    std::shared_ptr<PeerLink> link;
    dialer.dial({identity(0).id, {relay_at}, {}, false}, swarm, [&](Result<std::shared_ptr<PeerLink>> r) {
      BOOST_REQUIRE_MESSAGE(r, r.error());
      link = *r;
    });
    run_until([&] { return link != nullptr; });
    return link;
  }

  // Dials the target through the relay as member `who`.
  Result<std::shared_ptr<PeerLink>> dial_target(int who, const SwarmToken& token) {
    DirectDialer dialer(io, identity(who).credentials);
    PeerAddress target{identity(1).id, {}, {{identity(0).id, {relay_at}}}, false};
    std::optional<Result<std::shared_ptr<PeerLink>>> out;
    dialer.dial(target, token, [&](Result<std::shared_ptr<PeerLink>> r) { out = std::move(r); });
    run_until([&] { return out.has_value(); });
    return std::move(*out);
  }

  // Sends a request on `link` and collects frames until the last DATA, a reply, or an error.
  std::pair<std::vector<Frame>, std::string> ask(PeerLink& link, const Frame& request) {
    std::vector<Frame> frames;
    std::string failure;
    bool finished = false;
    std::function<void(Result<Frame>)> on_frame = [&](Result<Frame> f) {
      if (!f) {
        failure = f.error();
        finished = true;
        return;
      }
      frames.push_back(*f);
      auto* data = std::get_if<Data>(&*f);
      if (data && !data->fin) return link.receive(on_frame);
      finished = true;
    };
    link.send(request);
    link.receive(on_frame);
    run_until([&] { return finished; });
    return {frames, failure};
  }
};

Bytes joined(const std::vector<Frame>& frames) {
  Bytes out;
  for (const auto& f : frames)
    if (auto* d = std::get_if<Data>(&f)) out.insert(out.end(), d->bytes.begin(), d->bytes.end());
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(relay)

BOOST_AUTO_TEST_CASE(a_circuit_carries_an_authenticated_link_to_the_reserved_node_end_to_end) {
  RelayFixture f;
  f.reserve();
  auto link = f.dial_target(2, f.swarm);
  BOOST_REQUIRE_MESSAGE(link, link.error());
  auto [frames, failure] = f.ask(**link, Get{1, f.key, 0, f.content.size()});
  BOOST_TEST(failure.empty());
  auto got = joined(frames);
  BOOST_TEST((std::string(got.begin(), got.end()) == f.content));
  BOOST_TEST(f.relay->stats().circuits_opened == 1u);
  BOOST_TEST(f.relay->stats().bytes_relayed > f.content.size());
  BOOST_TEST(f.reservations->held().front().circuits == 1u);
}

BOOST_AUTO_TEST_CASE(outsiders_cannot_use_the_relay_and_unknown_tokens_get_nothing) {
  RelayFixture f;
  f.reserve();
  // Another swarm's member fails the membership proof at the relay.
  auto outsider = f.dial_target(3, SwarmToken::generate());
  BOOST_REQUIRE(!outsider);
  BOOST_TEST_INFO(outsider.error());
  BOOST_TEST(outsider.error().find("member") != std::string::npos);
  BOOST_TEST(f.relay->stats().circuits_opened == 0u);
  // A made-up token: the connection is closed and nothing is relayed.
  tcp::socket raw(f.io);
  raw.connect(f.relay_at);
  Bytes preamble(kCircuitMagic.begin(), kCircuitMagic.end());
  Bytes token(kCircuitToken, 0x5a);
  preamble.insert(preamble.end(), token.begin(), token.end());
  asio::write(raw, asio::buffer(preamble));
  bool closed = false;
  std::array<char, 16> buf{};
  raw.async_read_some(asio::buffer(buf), [&](const std::error_code& ec, std::size_t n) { closed = ec && n == 0; });
  f.run_until([&] { return closed; });
  BOOST_TEST(f.relay->stats().joins_refused == 1u);
  // A member asking for a node with no reservation is told so.
  auto control = f.dial_relay(2);
  auto [frames, failure] = f.ask(*control, Connect{7, identity(3).id});
  BOOST_REQUIRE(frames.size() == 1u);
  auto* reply = std::get_if<ConnectReply>(&frames[0]);
  BOOST_REQUIRE(reply);
  BOOST_TEST(!reply->ok);
  BOOST_TEST(reply->reason.find("no reservation") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(over_its_limits_the_relay_refuses_clearly_and_cuts_a_circuit_over_its_byte_cap) {
  RelayLimits limits;
  limits.max_reservations = 1;
  limits.max_circuit_bytes = 200 * 1000;
  RelayFixture f(limits);
  f.reserve();
  // A second member asking for a reservation: the relay is full.
  auto other = f.dial_relay(2);
  auto [frames, failure] = f.ask(*other, Reserve{1});
  BOOST_REQUIRE(frames.size() == 1u);
  auto* reply = std::get_if<ReserveReply>(&frames[0]);
  BOOST_REQUIRE(reply);
  BOOST_TEST(!reply->ok);
  BOOST_TEST(reply->reason.find("relay full") != std::string::npos);
  BOOST_TEST(f.relay->stats().reservations_refused == 1u);
  // 600 kB through a circuit capped at 200 kB: the link is cut, not hung.
  auto link = f.dial_target(2, f.swarm);
  BOOST_REQUIRE_MESSAGE(link, link.error());
  auto [data, cut] = f.ask(**link, Get{1, f.key, 0, f.content.size()});
  BOOST_TEST(!cut.empty());
  BOOST_TEST(joined(data).size() < f.content.size());
  BOOST_TEST(f.relay->stats().circuits_cut == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
