// Multi-source downloads from object servers in the same process on 127.0.0.1.
#include <boost/test/unit_test.hpp>

#include "tests/support/test_support.hpp"

#include <asio/io_context.hpp>
#include <asio/thread_pool.hpp>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "node/identity.hpp"
#include "protocol/crypto.hpp"
#include "transfer/fetcher.hpp"
#include "transfer/peer_server.hpp"

using namespace annexswarm;
using asio::ip::tcp;

namespace {

struct Seeder : test::TestIdentity {
  std::unique_ptr<PeerServer> server;
  std::uint16_t port = 0;
};

struct Swarm {
  asio::io_context io;
  asio::thread_pool disk{1};
  test::TempDir dir;
  SwarmToken token = SwarmToken::generate();
  std::string content;
  std::string key;
  std::vector<std::unique_ptr<Seeder>> seeders;
  std::map<std::size_t, std::filesystem::path> replica;  // a seeder serving another file than `object`
  test::TestIdentity client;

  explicit Swarm(std::size_t count, std::size_t size = 9 * 1024 * 1024 + 12345, double slow_rate = 0) {
    std::mt19937 rng(1);
    content.resize(size);
    for (auto& c : content) c = static_cast<char>(rng());
    key = "SHA256E-s" + std::to_string(size) + "--" + to_hex(crypto::sha256(as_bytes(content))) + ".dat";
    std::ofstream(dir.path() / "object", std::ios::binary) << content;
    for (std::size_t i = 0; i < count; ++i) {
      auto s = std::make_unique<Seeder>();
      // With slow_rate, the first seeder's uploads are capped.
      PeerServerLimits limits{64, i == 0 ? slow_rate : 0, 0};
      s->server = std::make_unique<PeerServer>(io, s->credentials, std::vector<SwarmToken>{token},
                                               [this, i](const AnnexKey& k, std::string_view) -> std::optional<std::filesystem::path> {
                                                 if (k.str() == key && replica.count(i)) return replica[i];
                                                 if (k.str() == key) return dir.path() / "object";
                                                 return std::nullopt;
                                               },
                                               limits);
      s->port = s->server->listen(asio::ip::make_address("127.0.0.1"), 0).value();
      seeders.push_back(std::move(s));
    }
  }

  std::vector<FetchSource> sources() const {
    std::vector<FetchSource> out;
    for (const auto& s : seeders)
      out.push_back({{s->id, {tcp::endpoint(asio::ip::make_address("127.0.0.1"), s->port)}}, 0});
    return out;
  }

  struct Outcome {
    bool done = false;
    std::optional<std::string> error;
    FetchReport report;
  };

  Outcome fetch(const std::string& which_key, std::vector<FetchSource> from, bool allow_unverified = false) {
    Outcome out;
    FetchOptions options{dir.path() / "fetched", allow_unverified, 4, 16, nullptr, {}};
    PeerPool pool(io, std::make_shared<DirectDialer>(io, client.credentials));
    auto fetcher = std::make_shared<Fetcher>(
        io, disk.get_executor(), pool, std::vector<SwarmToken>{token}, AnnexKey::parse(which_key).value(), std::move(from),
        options, nullptr, [&](std::optional<std::string> error, FetchReport report) {
          out = {true, std::move(error), std::move(report)};
        });
    fetcher->start();
    test::run_io_until(io, [&] { return out.done; });
    return out;
  }

  std::string fetched() const {
    std::ifstream in(dir.path() / "fetched", std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(fetcher)

BOOST_AUTO_TEST_CASE(an_object_held_by_four_peers_comes_from_all_four) {
  Swarm swarm(4);
  auto out = swarm.fetch(swarm.key, swarm.sources());
  BOOST_REQUIRE_MESSAGE(!out.error, out.error.value_or(""));
  BOOST_TEST((swarm.fetched() == swarm.content));
  BOOST_TEST(out.report.bytes_from.size() == 4u);
  for (const auto& s : swarm.seeders) {
    BOOST_TEST(out.report.bytes_from[s->id.hex()] > 0u);
    BOOST_TEST(s->server->stats().bytes_served > 0u);
  }
  BOOST_TEST(!std::filesystem::exists(swarm.dir.path() / "fetched.part"));
}

BOOST_AUTO_TEST_CASE(a_peer_sending_corrupt_chunks_is_dropped_and_the_result_is_right) {
  Swarm swarm(4);
  swarm.seeders[2]->server->corrupt_data_for_test(true);
  auto out = swarm.fetch(swarm.key, swarm.sources());
  BOOST_REQUIRE_MESSAGE(!out.error, out.error.value_or(""));
  BOOST_TEST((swarm.fetched() == swarm.content));
  auto bad = swarm.seeders[2]->id.hex();
  BOOST_REQUIRE(out.report.dropped.count(bad));
  BOOST_TEST(out.report.dropped[bad].find("fails verification") != std::string::npos);
  BOOST_TEST(out.report.bytes_from.count(bad) == 0u);
}

// Chunks are not hashed one by one on arrival (the object's digest checks it all); when
// the digest fails, the recheck names the chunks, and so the seeder: a lone corrupt seeder
// fails the download, clearly, and its bytes never count.
BOOST_AUTO_TEST_CASE(a_lone_corrupt_seeder_fails_on_the_digest_and_a_good_one_then_replaces_its_chunks) {
  Swarm swarm(2);
  swarm.seeders[0]->server->corrupt_data_for_test(true);
  auto bad = swarm.fetch(swarm.key, {swarm.sources()[0]});
  BOOST_REQUIRE(bad.error);
  BOOST_TEST_MESSAGE("lone corrupt seeder: " << *bad.error);
  BOOST_TEST(bad.error->find("fails verification") != std::string::npos);
  BOOST_TEST(!std::filesystem::exists(swarm.dir.path() / "fetched"));
  // The good seeder, alone too: whatever the bad one left is checked against the manifest
  // at the start and fetched again.
  auto good = swarm.fetch(swarm.key, {swarm.sources()[1]});
  BOOST_REQUIRE_MESSAGE(!good.error, good.error.value_or(""));
  BOOST_TEST((swarm.fetched() == swarm.content));
}

// The root of an object's manifest: SHA-256 over its chunks' SHA-256s.
std::string manifest_root(const std::string& content) {
  Bytes hashes;
  for (std::size_t at = 0; at < content.size(); at += peer::kManifestChunk) {
    auto h = crypto::sha256(as_bytes(std::string_view(content).substr(at, peer::kManifestChunk)));
    hashes.insert(hashes.end(), h.begin(), h.end());
  }
  return to_hex(crypto::sha256(hashes));
}

BOOST_AUTO_TEST_CASE(one_good_and_one_corrupt_replica_the_good_one_wins_whichever_manifest_sorts_first) {
  // Ten runs, each with other corrupt bytes (a flipped byte, a zeroed run, a chunk of
  // another object's bytes), five where the corrupt manifest's root sorts first and five
  // where it sorts last.
  int corrupt_first = 0, corrupt_last = 0;
  Swarm swarm(2, 5 * 1024 * 1024 + 77);  // each run serves its corrupt copy from a file of its own
  for (std::uint32_t variant = 0; corrupt_first + corrupt_last < 10; ++variant) {
    BOOST_REQUIRE(variant < 200);
    auto bad = swarm.content;
    std::mt19937 rng(variant);
    auto at = rng() % bad.size();
    switch (variant % 3) {
      case 0: bad[at] = static_cast<char>(bad[at] ^ 0x20); break;
      case 1: std::fill_n(bad.begin() + static_cast<std::ptrdiff_t>(at), std::min<std::size_t>(4096, bad.size() - at), '\0'); break;
      default:
        for (std::size_t i = at; i < std::min(bad.size(), at + peer::kManifestChunk); ++i) bad[i] = static_cast<char>(rng());
    }
    bool sorts_first = manifest_root(bad) < manifest_root(swarm.content);
    if ((sorts_first && corrupt_first == 5) || (!sorts_first && corrupt_last == 5)) continue;
    (sorts_first ? corrupt_first : corrupt_last)++;
    auto corrupt = swarm.dir.path() / ("corrupt-" + std::to_string(variant));
    std::ofstream(corrupt, std::ios::binary) << bad;
    swarm.replica[1] = corrupt;
    std::filesystem::remove(swarm.dir.path() / "fetched");
    auto out = swarm.fetch(swarm.key, swarm.sources());
    BOOST_REQUIRE_MESSAGE(!out.error, "variant " << variant << ": " << out.error.value_or(""));
    BOOST_TEST((swarm.fetched() == swarm.content), "variant " << variant);
    // The good seeder was never dropped; the corrupt one served nothing that was kept
    // beyond the chunks it shares with the good copy.
    BOOST_TEST(out.report.dropped.count(swarm.seeders[0]->id.hex()) == 0u, "variant " << variant);
  }
}

BOOST_AUTO_TEST_CASE(a_rate_capped_seeder_gets_less_work_than_a_fast_one) {
  Swarm swarm(2, 9 * 1024 * 1024 + 12345, 2e6);  // seeder 0 capped at 2 MB/s
  auto out = swarm.fetch(swarm.key, swarm.sources());
  BOOST_REQUIRE_MESSAGE(!out.error, out.error.value_or(""));
  BOOST_TEST((swarm.fetched() == swarm.content));
  auto slow = out.report.bytes_from[swarm.seeders[0]->id.hex()];
  auto fast = out.report.bytes_from[swarm.seeders[1]->id.hex()];
  BOOST_TEST(slow < fast, "slow " << slow << " fast " << fast);
}

BOOST_AUTO_TEST_CASE(a_seeder_hanging_up_mid_transfer_is_dialled_again_and_costs_only_its_chunks) {
  Swarm swarm(3);
  swarm.seeders[0]->server->hang_up_after_for_test(2 * kManifestChunk);  // on every link
  auto out = swarm.fetch(swarm.key, swarm.sources());
  BOOST_REQUIRE_MESSAGE(!out.error, out.error.value_or(""));
  BOOST_TEST((swarm.fetched() == swarm.content));
  auto gone = swarm.seeders[0]->id.hex();
  // Its link broke, so it was dialled again (twice at most), and finally dropped or not.
  BOOST_REQUIRE(out.report.redialled.count(gone));
  BOOST_TEST(out.report.redialled[gone].find("link lost") != std::string::npos);
  BOOST_TEST(out.report.bytes_from[gone] <= 3u * 2u * kManifestChunk);  // what each link delivered still counts
  BOOST_TEST(out.report.bytes_fetched == swarm.content.size());     // nothing fetched twice into the file
}

BOOST_AUTO_TEST_CASE(a_partial_download_resumes_without_fetching_finished_chunks) {
  Swarm swarm(2);
  // A previous run wrote and listed the first five chunks.
  auto part = swarm.dir.path() / "fetched.part";
  {
    std::ofstream out(part, std::ios::binary);
    out << swarm.content.substr(0, 5 * kManifestChunk);
    std::ofstream list(part.string() + ".chunks");
    for (int i = 0; i < 5; ++i) list << i << "\n";
    list << "7\n";  // listed but never written: must be fetched again, not trusted
  }
  auto out = swarm.fetch(swarm.key, swarm.sources());
  BOOST_REQUIRE_MESSAGE(!out.error, out.error.value_or(""));
  BOOST_TEST((swarm.fetched() == swarm.content));
  BOOST_TEST(out.report.bytes_resumed == 5u * kManifestChunk);
  BOOST_TEST(out.report.bytes_fetched == swarm.content.size() - 5u * kManifestChunk);
}

BOOST_AUTO_TEST_CASE(unreachable_or_impostor_peers_are_dropped_and_reported) {
  Swarm swarm(2);
  test::TestIdentity ghost, nobody;
  auto sources = swarm.sources();
  sources[1].address.node = ghost.id;  // claims to dial `ghost` at seeder 1's address
  FetchSource dead{{nobody.id, {tcp::endpoint(asio::ip::make_address("127.0.0.1"), 1)}}, 0};
  sources.push_back(dead);
  auto out = swarm.fetch(swarm.key, sources);
  BOOST_REQUIRE_MESSAGE(!out.error, out.error.value_or(""));
  BOOST_TEST((swarm.fetched() == swarm.content));
  // Each failed source is reported under the node id it was dialled as.
  BOOST_TEST(out.report.dropped[ghost.id.hex()].find("not the node dialled") != std::string::npos);
  BOOST_TEST(out.report.dropped[nobody.id.hex()].find("cannot connect") != std::string::npos);
  BOOST_TEST(out.report.bytes_from.size() == 1u);
  BOOST_TEST(out.report.bytes_from.count(swarm.seeders[0]->id.hex()) == 1u);
}

BOOST_AUTO_TEST_CASE(no_usable_provider_is_a_clear_failure) {
  Swarm swarm(1);
  auto missing = "SHA256E-s5--" + to_hex(crypto::sha256(as_bytes("nope"))) + ".dat";
  auto out = swarm.fetch(missing, swarm.sources());
  BOOST_REQUIRE(out.error);
  BOOST_TEST(out.error->find("no provider could serve") != std::string::npos, *out.error);
  BOOST_TEST(!std::filesystem::exists(swarm.dir.path() / "fetched"));
}

BOOST_AUTO_TEST_CASE(keys_without_a_hash_are_refused_unless_allowed) {
  Swarm swarm(1);
  auto out = swarm.fetch("WORM-s5-m1--photo.jpg", swarm.sources());
  BOOST_REQUIRE(out.error);
  BOOST_TEST(out.error->find("cannot be verified") != std::string::npos, *out.error);
}

BOOST_AUTO_TEST_SUITE_END()
