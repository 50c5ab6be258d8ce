// The object server against clients in the same process on 127.0.0.1: good requests are
// answered from the file, bad ones get ERROR, and the server keeps serving others.
#include <boost/test/unit_test.hpp>

#include "tests/support/test_support.hpp"

#include <asio/io_context.hpp>
#include <asio/write.hpp>
#include <fstream>
#include <map>

#include "node/identity.hpp"
#include "protocol/crypto.hpp"
#include "transfer/peer_server.hpp"

using namespace annexswarm;
using namespace annexswarm::peer;
using asio::ip::tcp;

namespace {

test::TestIdentity& server_identity() {
  static test::TestIdentity i;
  return i;
}
test::TestIdentity& client_identity() {
  static test::TestIdentity i;
  return i;
}

std::string object_key(const std::string& content) {
  auto digest = crypto::sha256(as_bytes(content));
  return "SHA256E-s" + std::to_string(content.size()) + "--" + to_hex(digest) + ".bin";
}

constexpr std::string_view kStore = "11111111-2222-3333-4444-555555555555";
constexpr std::string_view kOtherRepo = "99999999-2222-3333-4444-555555555555";

struct Fixture {
  test::TempDir dir;
  asio::io_context io;
  std::string content;
  std::string key;
  SwarmToken swarm = SwarmToken::generate();
  std::unique_ptr<PeerServer> server;
  std::uint16_t port = 0;

  explicit Fixture(PeerServerLimits limits = {}) {
    for (int i = 0; i < 700000; ++i) content.push_back(static_cast<char>('a' + i % 26));
    key = object_key(content);
    std::ofstream(dir.path() / "object", std::ios::binary) << content;
    server = std::make_unique<PeerServer>(io, server_identity().credentials, std::vector<SwarmToken>{swarm},
                                          [this](const AnnexKey& k, std::string_view repo) -> std::optional<std::filesystem::path> {
                                            if (!repo.empty() && repo != kStore) return std::nullopt;
                                            if (k.str() == key) return dir.path() / "object";
                                            return std::nullopt;
                                          },
                                          limits);
    port = server->listen(asio::ip::make_address("127.0.0.1"), 0).value();
  }

  void run_until(const std::function<bool()>& done) { test::run_io_until(io, done, std::chrono::seconds(20)); }

  tcp::socket connect() {
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    return s;
  }

  std::shared_ptr<PeerLink> dial() {
    auto stream = std::make_shared<TlsStream>(connect(), client_identity().credentials, TlsStream::Side::Client);
    auto link = std::make_shared<PeerLink>(stream, std::vector<SwarmToken>{swarm}, Role::Dialer);
    bool done = false;
    link->establish(std::nullopt, [&](Result<PeerLink::Established> r) {
      BOOST_REQUIRE_MESSAGE(r, r.error());
      done = true;
    });
    run_until([&] { return done; });
    return link;
  }

  // Sends one request and collects frames until a DATA with fin, a reply or an error.
  // `hostile`: the request's bytes as a peer might send them, field rules not applied.
  std::vector<Frame> ask(PeerLink& link, const Frame& request, bool hostile = false) {
    std::vector<Frame> frames;
    bool finished = false;
    std::function<void(Result<Frame>)> on_frame = [&](Result<Frame> f) {
      if (!f) {
        finished = true;
        return;
      }
      frames.push_back(*f);
      auto* data = std::get_if<Data>(&*f);
      if (data && !data->fin) return link.receive(on_frame);
      finished = true;
    };
    if (hostile) link.send_encoded(encode_frame_unchecked(request).value());
    else link.send(request);
    link.receive(on_frame);
    run_until([&] { return finished; });
    return frames;
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(peer_server)

BOOST_AUTO_TEST_CASE(get_streams_the_requested_range_from_the_file) {
  Fixture f;
  auto link = f.dial();
  auto frames = f.ask(*link, Get{1, f.key, 1000, 600000});
  std::string got;
  for (const auto& fr : frames) {
    const auto& d = std::get<Data>(fr);
    BOOST_TEST(d.id == 1u);
    BOOST_TEST(d.offset == 1000u + got.size());
    BOOST_TEST(d.bytes.size() <= kMaxDataBytes);
    got.append(d.bytes.begin(), d.bytes.end());
  }
  BOOST_TEST(frames.size() == 3u);  // 600000 bytes in frames of at most 256 KiB
  BOOST_TEST((got == f.content.substr(1000, 600000)));
  BOOST_TEST(f.server->stats().bytes_served == 600000u);
}

BOOST_AUTO_TEST_CASE(cancel_stops_a_get_being_served_and_drops_queued_ones) {
  Fixture f;
  auto link = f.dial();
  // Three requests queue up; the first is cancelled while it is served, the second
  // before it starts. Only the third is answered in full.
  link->send(Get{1, f.key, 0, f.content.size()});
  link->send(Get{2, f.key, 0, f.content.size()});
  link->send(Cancel{1});
  link->send(Cancel{2});
  link->send(Get{3, f.key, 0, 1000});
  std::map<std::uint32_t, std::size_t> bytes;
  bool finished = false;
  std::function<void(Result<Frame>)> on_frame = [&](Result<Frame> fr) {
    BOOST_REQUIRE_MESSAGE(fr, fr.error());
    auto& d = std::get<Data>(*fr);
    bytes[d.id] += d.bytes.size();
    if (d.id == 3 && d.fin) finished = true;
    else link->receive(on_frame);
  };
  link->receive(on_frame);
  f.run_until([&] { return finished; });
  BOOST_TEST(bytes[1] < f.content.size());
  BOOST_TEST(bytes.count(2) == 0u);
  BOOST_TEST(bytes[3] == 1000u);
}

BOOST_AUTO_TEST_CASE(links_over_the_peer_cap_are_refused_and_one_peers_rate_is_capped) {
  Fixture f(PeerServerLimits{1, 0, 1e6});
  std::vector<std::string> refusals;
  f.server->on_refused([&](const std::string& why) { refusals.push_back(why); });
  auto first = f.dial();
  // The cap is 1: a second member proves itself, then hears that the node is busy and
  // when to come back, instead of a torn handshake.
  auto second = f.dial();
  auto busy = f.ask(*second, Ping{1});
  BOOST_REQUIRE_EQUAL(busy.size(), 1u);
  BOOST_TEST((std::get<ErrorFrame>(busy[0]).code == ErrorCode::Busy));
  BOOST_TEST(std::get<ErrorFrame>(busy[0]).retry_after_ms > 0u);
  f.run_until([&] { return !refusals.empty(); });
  BOOST_TEST(refusals[0].find("over the cap of 1 peers") != std::string::npos, refusals[0]);
  // 600000 bytes with 1 MB/s for this peer: what exceeds the 256 KiB burst is held back.
  auto frames = f.ask(*first, Get{1, f.key, 0, 600000});
  BOOST_TEST(std::get<Data>(frames.back()).fin);
  BOOST_TEST(f.server->stats().bytes_served == 600000u);
  BOOST_TEST(f.server->stats().frames_paced >= 1u);
  // Without a limit nothing is held back.
  Fixture unlimited;
  auto link = unlimited.dial();
  unlimited.ask(*link, Get{1, unlimited.key, 0, 600000});
  BOOST_TEST(unlimited.server->stats().frames_paced == 0u);
}

BOOST_AUTO_TEST_CASE(connections_over_the_handshake_caps_wait_their_turn_instead_of_being_cut_off) {
  PeerServerLimits limits;
  limits.max_unauthenticated_per_address = 1;
  limits.max_parked_per_address = 2;
  Fixture f(limits);
  // Four connections from one address, accepted before any of them says a word: one gets
  // the handshake slot, two wait, the fourth is over the waiting cap and closed.
  std::vector<tcp::socket> sockets;
  for (int i = 0; i < 4; ++i) sockets.push_back(f.connect());
  f.run_until([&] { return f.server->stats().links_accepted == 4; });
  BOOST_TEST(f.server->stats().unauthenticated == 1u);
  BOOST_TEST(f.server->stats().parked == 2u);
  int established = 0, failed = 0;
  std::vector<std::shared_ptr<PeerLink>> links;
  for (auto& socket : sockets) {
    auto stream = std::make_shared<TlsStream>(std::move(socket), client_identity().credentials, TlsStream::Side::Client);
    links.push_back(std::make_shared<PeerLink>(stream, std::vector<SwarmToken>{f.swarm}, Role::Dialer));
    links.back()->establish(std::nullopt, [&](Result<PeerLink::Established> r) { ++(r ? established : failed); });
  }
  f.run_until([&] { return established + failed == 4; });
  BOOST_TEST(established == 3);
  BOOST_TEST(failed == 1);
  auto stats = f.server->stats();
  BOOST_TEST(stats.parked == 0u);
  BOOST_TEST(stats.parked_total == 2u);
  BOOST_TEST(stats.parked_timeouts == 0u);
  BOOST_TEST(stats.links_open_peak == 3u);
  // And the ones that waited are served like any other.
  auto frames = f.ask(*links[2], Get{1, f.key, 0, 1000});
  BOOST_REQUIRE(!frames.empty());
  BOOST_TEST(std::holds_alternative<Data>(frames.front()));
}

BOOST_AUTO_TEST_CASE(have_and_manifest_describe_the_object) {
  Fixture f;
  auto link = f.dial();
  auto have = f.ask(*link, Have{2, {f.key, object_key("other")}, ""});
  BOOST_REQUIRE_EQUAL(have.size(), 1u);
  BOOST_TEST((std::get<HaveReply>(have[0]).sizes == std::vector<std::uint64_t>{f.content.size() + 1, 0}));
  auto manifest = f.ask(*link, Manifest{3, f.key});
  BOOST_REQUIRE_EQUAL(manifest.size(), 1u);
  const auto& m = std::get<ManifestReply>(manifest[0]);
  BOOST_TEST(m.object_size == f.content.size());
  BOOST_TEST(m.chunk_size == kManifestChunk);
  auto first = crypto::sha256(as_bytes(f.content));  // one chunk: 700000 < 1 MiB
  BOOST_TEST((m.hashes == Bytes(first.begin(), first.end())));
}

BOOST_AUTO_TEST_CASE(have_counts_only_the_repository_asked_about_and_remove_drops_from_a_store) {
  Fixture f;
  std::vector<std::string> removed;
  f.server->on_remove([&](const PeerServer::StoreRemoval& r) -> std::variant<bool, PeerServer::Refusal> {
    BOOST_TEST(r.swarm == 0u);
    if (r.capability != f.swarm.store_capability(r.store))
      return PeerServer::Refusal{ErrorCode::NotAllowed, "no write capability"};
    if (r.store != kStore) return PeerServer::Refusal{ErrorCode::NotPresent, "not a swarm store here"};
    removed.push_back(r.key);
    return true;
  });
  auto link = f.dial();
  auto sizes = [&](std::string_view repo) {
    return std::get<HaveReply>(f.ask(*link, Have{2, {f.key}, std::string(repo)})[0]).sizes[0];
  };
  BOOST_TEST(sizes("") == f.content.size() + 1);
  BOOST_TEST(sizes(kStore) == f.content.size() + 1);
  BOOST_TEST(sizes(kOtherRepo) == 0u);  // held here, but not in that repository
  auto refused = f.ask(*link, Remove{3, f.key, std::string(kOtherRepo), f.swarm.store_capability(kOtherRepo)});
  BOOST_TEST((std::get<ErrorFrame>(refused[0]).code == ErrorCode::NotPresent));
  // The asker's power is the callee's to check; its refusal reaches the asker with its code.
  auto powerless = f.ask(*link, Remove{5, f.key, std::string(kStore), Bytes(32, 0)});
  BOOST_TEST((std::get<ErrorFrame>(powerless[0]).code == ErrorCode::NotAllowed));
  BOOST_TEST(removed.empty());
  auto done = f.ask(*link, Remove{4, f.key, std::string(kStore), f.swarm.store_capability(kStore)});
  BOOST_TEST((std::get<HaveReply>(done[0]).sizes == std::vector<std::uint64_t>{0}));
  BOOST_TEST(removed == std::vector<std::string>{f.key});
}

BOOST_AUTO_TEST_CASE(bad_requests_get_errors_and_the_link_keeps_serving) {
  Fixture f;
  auto link = f.dial();
  auto missing = f.ask(*link, Get{4, object_key("not here"), 0, 10});
  BOOST_REQUIRE_EQUAL(missing.size(), 1u);
  BOOST_TEST((std::get<ErrorFrame>(missing[0]).code == ErrorCode::NotPresent));
  auto huge = f.ask(*link, Get{5, f.key, f.content.size(), 1});
  BOOST_TEST((std::get<ErrorFrame>(huge[0]).code == ErrorCode::BadRange));
  auto past_end = f.ask(*link, Get{6, f.key, 10, UINT64_MAX - 10});
  BOOST_TEST((std::get<ErrorFrame>(past_end[0]).code == ErrorCode::BadRange));
  auto reply_as_request = f.ask(*link, Pong{1});
  BOOST_TEST((std::get<ErrorFrame>(reply_as_request[0]).code == ErrorCode::Unsupported));
  auto still = f.ask(*link, Ping{77});
  BOOST_TEST(std::get<Pong>(still[0]).nonce == 77u);
}

BOOST_AUTO_TEST_CASE(a_path_like_key_closes_that_link_only) {
  Fixture f;
  auto bad = f.dial();
  // Our encoder refuses such keys; a hostile peer's need not, so the server's decoder must.
  auto frames = f.ask(*bad, Get{7, "../../etc/passwd", 0, 10}, true);
  BOOST_REQUIRE_EQUAL(frames.size(), 1u);
  BOOST_TEST((std::get<ErrorFrame>(frames[0]).code == ErrorCode::BadFrame));
  auto good = f.dial();
  BOOST_TEST(std::get<Pong>(f.ask(*good, Ping{1})[0]).nonce == 1u);
}

BOOST_AUTO_TEST_CASE(garbage_an_oversized_frame_and_no_tls_are_refused) {
  Fixture f;
  std::vector<std::string> refusals;
  f.server->on_refused([&](const std::string& why) { refusals.push_back(why); });
  {
    // Plain TCP with HTTP: the TLS handshake fails, and the server says so.
    auto raw = f.connect();
    asio::write(raw, asio::buffer(std::string("GET / HTTP/1.0\r\n\r\n")));
    f.run_until([&] { return f.server->stats().links_refused >= 1; });
    BOOST_REQUIRE_EQUAL(refusals.size(), 1u);
    BOOST_TEST(refusals[0].find("127.0.0.1:") == 0u, refusals[0]);
    BOOST_TEST(refusals[0].find("TLS") != std::string::npos, refusals[0]);
  }
  {
    // Inside TLS, a frame announcing 4 GiB.
    auto link = f.dial();
    auto stream = std::make_shared<TlsStream>(f.connect(), client_identity().credentials, TlsStream::Side::Client);
    auto raw_link = std::make_shared<PeerLink>(stream, std::vector<SwarmToken>{f.swarm}, Role::Dialer);
    bool ready = false;
    raw_link->establish(std::nullopt, [&](Result<PeerLink::Established> r) { ready = r.ok(); });
    f.run_until([&] { return ready; });
    bool answered = false;
    Result<Frame> answer = Error{"none"};
    stream->write(Bytes{0xff, 0xff, 0xff, 0xff, 1, 2, 3}, [](Result<bool>) {});
    raw_link->receive([&](Result<Frame> fr) {
      answer = std::move(fr);
      answered = true;
    });
    f.run_until([&] { return answered; });
    BOOST_REQUIRE(answer);
    BOOST_TEST((std::get<ErrorFrame>(*answer).code == ErrorCode::BadFrame));
    // Others are still served.
    BOOST_TEST(std::get<Pong>(f.ask(*link, Ping{5})[0]).nonce == 5u);
  }
}

BOOST_AUTO_TEST_SUITE_END()
