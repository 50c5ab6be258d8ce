// `annex-swarm get` between real daemons on 127.0.0.1: providers found on the DHT, a
// 64 MiB object pulled from every seeder at once over TLS, bad data caught.
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>

#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "protocol/swarm_token.hpp"
#include "tests/support/tcp_forwarder.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;
using nlohmann::json;

namespace {

struct GetNetwork {
  TempDir dir;
  std::string swarm = SwarmToken::generate().str();
  std::string content;
  std::string key;
  std::unique_ptr<DaemonProcess> first, downloader, outsider;
  std::vector<std::unique_ptr<DaemonProcess>> seeders;
  std::string bootstrap;

  explicit GetNetwork(std::size_t seeder_count = 4, std::size_t size = 64u << 20) {
    std::mt19937_64 rng(3);
    content.resize(size);
    for (std::size_t i = 0; i < content.size(); i += 8) {
      auto v = rng();
      std::memcpy(&content[i], &v, 8);
    }
    first = start("first", {"--bootstrap", "none", "--swarm", swarm});
    bootstrap = "127.0.0.1:" + std::to_string(first->port());
    for (std::size_t i = 0; i < seeder_count; ++i) seeders.push_back(start_seeder("seeder" + std::to_string(i), {}));
    downloader = start("downloader", {"--bootstrap", bootstrap, "--swarm", swarm});
    outsider = start("outsider", {"--bootstrap", bootstrap, "--swarm", SwarmToken::generate().str()});
  }

  std::unique_ptr<DaemonProcess> start(const std::string& name, std::vector<std::string> args) {
    return start_loopback_daemon(dir.path(), name, std::move(args));
  }

  std::unique_ptr<DaemonProcess> start_seeder(const std::string& name, std::vector<std::string> extra) {
    auto repo_path = dir.path() / ("repo-" + name);
    auto repo = make_annex_repo(repo_path, {{"big.bin", content}});
    key = repo.key_of("big.bin");
    std::vector<std::string> args{"--bootstrap", bootstrap, "--swarm", swarm, "--repo", repo_path.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return start(name, args);
  }

  std::size_t provider_count(DaemonProcess& at) {
    auto out = annex_swarm({"whereis", key, "--json", "--state-dir", at.state_dir().string()});
    if (out.exit_code != 0) return 0;
    return json::parse(out.out)["providers"].size();
  }

  json get(DaemonProcess& at, const std::string& to, int& rc) {
    auto out = annex_swarm({"get", key, "--to", (dir.path() / to).string(), "--json", "--state-dir",
                            at.state_dir().string()});
    rc = out.exit_code;
    BOOST_TEST_MESSAGE("get: " << out.err << out.out);
    return out.out.empty() ? json() : json::parse(out.out);
  }

  std::string read(const std::string& name) {
    std::ifstream in(dir.path() / name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
};

// One network for the tests that leave it as they found it; a test that adds a liar or
// kills a seeder makes its own, so every test passes alone and in any order.
std::unique_ptr<GetNetwork>& shared_slot() {
  static std::unique_ptr<GetNetwork> net;
  return net;
}
GetNetwork& network() {
  auto& net = shared_slot();
  if (!net) net = std::make_unique<GetNetwork>();
  return *net;
}
struct SharedNetworkTeardown {
  ~SharedNetworkTeardown() { shared_slot().reset(); }
};
BOOST_TEST_GLOBAL_FIXTURE(SharedNetworkTeardown);

}  // namespace

BOOST_AUTO_TEST_SUITE(swarm_get)

BOOST_AUTO_TEST_CASE(an_object_held_by_four_nodes_is_fetched_from_all_four) {
  auto& net = network();
  BOOST_REQUIRE(wait_until([&] { return net.provider_count(*net.downloader) == 4; }));
  int rc = -1;
  auto reply = net.get(*net.downloader, "got-1", rc);
  BOOST_REQUIRE_EQUAL(rc, 0);
  BOOST_TEST((net.read("got-1") == net.content));
  BOOST_TEST(reply["bytes_from"].size() == 4u, net.downloader->log());
  for (auto& s : net.seeders) {
    BOOST_TEST(reply["bytes_from"][s->node_id()].get<std::uint64_t>() > 0u);
    BOOST_TEST(s->status()["peers_served"]["bytes_served"].get<std::uint64_t>() > 0u);
  }
  // git-annex accepts it: the key's own hash check.
  auto check = run_process({"sha256sum", (net.dir.path() / "got-1").string()});
  BOOST_TEST(net.key.find(check.out.substr(0, 64)) != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_seeder_sending_corrupt_data_is_dropped_and_reported) {
  // Two honest seeders and the liar: the first round of requests (4 per peer) gives the
  // liar chunks of the 16 whatever order the links come up in.
  GetNetwork net(2, 16u << 20);
  net.seeders.push_back(net.start_seeder("liar", {"--test-fault", "corrupt-data"}));
  auto liar = net.seeders.back()->node_id();
  BOOST_REQUIRE(wait_until([&] { return net.provider_count(*net.downloader) == 3; }));
  int rc = -1;
  auto reply = net.get(*net.downloader, "got-2", rc);
  BOOST_REQUIRE_EQUAL(rc, 0);
  BOOST_TEST((net.read("got-2") == net.content));
  BOOST_REQUIRE(reply["dropped"].contains(liar));
  BOOST_TEST(reply["dropped"][liar].get<std::string>().find("fails verification") != std::string::npos);
  BOOST_TEST(!reply["bytes_from"].contains(liar));
}

BOOST_AUTO_TEST_CASE(a_node_outside_the_swarm_can_neither_list_nor_fetch) {
  auto& net = network();
  int rc = -1;
  net.get(*net.outsider, "got-outsider", rc);
  BOOST_TEST(rc == 1);
  BOOST_TEST(!std::filesystem::exists(net.dir.path() / "got-outsider"));
}

BOOST_AUTO_TEST_CASE(a_downloader_killed_halfway_resumes_after_restart) {
  auto& net = network();
  // An object only one seeder holds, served at 6 MB/s so the download takes seconds.
  std::string other(24u << 20, '\0');
  std::mt19937_64 rng(5);
  for (std::size_t i = 0; i < other.size(); i += 8) {
    auto v = rng();
    std::memcpy(&other[i], &v, 8);
  }
  auto repo_path = net.dir.path() / "repo-slow";
  auto repo = make_annex_repo(repo_path, {{"other.bin", other}});
  auto key = repo.key_of("other.bin");
  auto slow = net.start("slow", {"--bootstrap", net.bootstrap, "--swarm", net.swarm, "--repo", repo_path.string(),
                                 "--upload-rate", "6M"});
  auto fetcher = net.start("fetcher", {"--bootstrap", net.bootstrap, "--swarm", net.swarm});
  BOOST_REQUIRE(wait_until([&] {
    auto out = annex_swarm({"whereis", key, "--state-dir", fetcher->state_dir().string()});
    return out.exit_code == 0;
  }));
  auto to = net.dir.path() / "resumed.bin";
  auto chunks_done = [&] { return chunks_listed(to); };
  int cli = spawn_process({ANNEX_SWARM_BIN, "get", key, "--to", to.string(), "--state-dir",
                           fetcher->state_dir().string()},
                          (net.dir.path() / "cli.log").string());
  BOOST_REQUIRE(cli > 0);
  BOOST_REQUIRE(wait_until([&] { return chunks_done() >= 12; }));  // half of 24 chunks
  fetcher->kill_hard();
  ::waitpid(cli, nullptr, 0);
  BOOST_TEST(!std::filesystem::exists(to));

  fetcher = net.start("fetcher", {"--bootstrap", net.bootstrap, "--swarm", net.swarm});
  BOOST_REQUIRE(wait_until([&] {
    auto out = annex_swarm({"whereis", key, "--state-dir", fetcher->state_dir().string()});
    return out.exit_code == 0;
  }));
  auto out = annex_swarm({"get", key, "--to", to.string(), "--json", "--state-dir", fetcher->state_dir().string()});
  BOOST_REQUIRE_MESSAGE(out.exit_code == 0, out.err);
  auto reply = json::parse(out.out);
  BOOST_TEST(reply["bytes_resumed"].get<std::uint64_t>() >= 12u << 20);
  BOOST_TEST(reply["bytes_fetched"].get<std::uint64_t>() < other.size());
  std::ifstream in(to, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  BOOST_TEST((ss.str() == other));
}

BOOST_AUTO_TEST_CASE(get_refuses_unverifiable_and_malformed_keys) {
  auto& net = network();
  auto state = net.downloader->state_dir().string();
  auto out = annex_swarm({"get", "WORM-s5-m1--photo.jpg", "--to", (net.dir.path() / "w").string(), "--state-dir", state});
  BOOST_TEST(out.exit_code == 2);
  BOOST_TEST(out.err.find("--unverified") != std::string::npos);
  out = annex_swarm({"get", "../../etc/passwd", "--to", (net.dir.path() / "x").string(), "--state-dir", state});
  BOOST_TEST(out.exit_code == 2);
  out = annex_swarm({"get", net.key, "--state-dir", state});
  BOOST_TEST(out.exit_code == 2);  // no --to
}

BOOST_AUTO_TEST_CASE(a_seeder_killed_mid_transfer_costs_only_its_chunks) {
  GetNetwork net;
  // A downloader capped at 16 MB/s, so the 64 MiB download takes seconds.
  auto capped = net.start("capped", {"--bootstrap", net.bootstrap, "--swarm", net.swarm, "--download-rate", "16M"});
  BOOST_REQUIRE(wait_until([&] { return net.provider_count(*capped) >= 4; }));
  auto to = net.dir.path() / "survived.bin";
  auto chunks_done = [&] { return chunks_listed(to); };
  auto log = net.dir.path() / "survived.log";
  int cli = spawn_process({ANNEX_SWARM_BIN, "get", net.key, "--to", to.string(), "--json", "--state-dir",
                           capped->state_dir().string()},
                          log.string());
  BOOST_REQUIRE(cli > 0);
  BOOST_REQUIRE(wait_until([&] { return chunks_done() >= 16; }));  // a quarter of 64 chunks
  auto victim = net.seeders[0]->node_id();
  net.seeders[0]->kill_hard();
  int status = 0;
  ::waitpid(cli, &status, 0);
  BOOST_REQUIRE_MESSAGE(WIFEXITED(status) && WEXITSTATUS(status) == 0, capped->log());
  BOOST_TEST((net.read("survived.bin") == net.content));
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  auto text = ss.str();
  auto start = text.find('{'), end = text.rfind('}');  // the JSON reply among stderr lines
  BOOST_REQUIRE(start != std::string::npos && end != std::string::npos);
  auto reply = json::parse(text.substr(start, end - start + 1));
  BOOST_TEST(reply["dropped"].contains(victim));
  BOOST_TEST(reply["bytes_fetched"].get<std::uint64_t>() == net.content.size());
}

// A node remembers where it last reached a peer for a little while; when the peer has
// moved since (a restart on another port, a new address from DHCP), the get must not
// fail on the old address: it reads the peer's record afresh and tries again.
BOOST_AUTO_TEST_CASE(a_seeder_that_moved_is_reached_at_its_new_address) {
  auto& net = network();
  auto repo_path = net.dir.path() / "repo-mover";
  auto repo = make_annex_repo(repo_path, {{"one.txt", "first object of the mover\n"},
                                          {"two.txt", "second object of the mover\n"}});
  std::vector<std::string> args{"--bootstrap", net.bootstrap, "--swarm", net.swarm, "--repo", repo_path.string()};
  auto mover = net.start("mover", args);
  auto whereis = [&](const std::string& key) {
    return annex_swarm({"whereis", key, "--state-dir", net.downloader->state_dir().string()}).exit_code == 0;
  };
  BOOST_REQUIRE(wait_until([&] { return whereis(repo.key_of("one.txt")) && whereis(repo.key_of("two.txt")); }));
  auto get = [&](const std::string& file) {
    return annex_swarm({"get", repo.key_of(file), "--to", (net.dir.path() / ("moved-" + file)).string(), "--json",
                        "--state-dir", net.downloader->state_dir().string()});
  };
  auto first = get("one.txt");  // the downloader now remembers the mover's address
  BOOST_REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  auto old_port = mover->port();
  mover->stop();
  mover->wait_exit();  // a restart: the old process has let go of the state dir
  mover = net.start("mover", args);  // same identity, a new port
  BOOST_REQUIRE(mover->port() != old_port);
  // Its new record is on the DHT (read by another node, which has nothing remembered).
  auto new_port = mover->port();
  std::string last;
  BOOST_REQUIRE_MESSAGE(wait_until([&] {
    auto out = annex_swarm({"discover", repo.uuid, "--json", "--state-dir", net.first->state_dir().string()});
    last = out.out + out.err;
    if (out.exit_code != 0) return false;
    auto reply = json::parse(out.out);
    for (const auto& n : reply["nodes"])
      for (const auto& e : n["endpoints"])
        if (e.value("port", 0) == new_port) return true;
    return false;
  }), "the mover's new address " << new_port << " never showed: " << last << "\n" << mover->log());
  auto second = get("two.txt");
  BOOST_REQUIRE_MESSAGE(second.exit_code == 0, second.err << "\n" << net.downloader->log());
  BOOST_TEST(net.read("moved-two.txt") == "second object of the mover\n");
  BOOST_TEST(net.downloader->log().find("reading their contact records afresh") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_node_behind_a_port_forward_is_reached_at_the_port_it_advertises) {
  // A container published on another host port (`docker run -p Q:4224`), or a router's
  // port forwarded by hand: other nodes must dial Q, not the port the node listens on.
  auto& net = network();
  TcpForwarder forward;
  auto repo_path = net.dir.path() / "repo-forwarded";
  auto repo = make_annex_repo(repo_path, {{"behind.txt", "served through a port forward\n"}});
  auto advertised = "127.0.0.1:" + std::to_string(forward.port());
  auto hidden = net.start("forwarded", {"--bootstrap", net.bootstrap, "--swarm", net.swarm, "--repo",
                                        repo_path.string(), "--advertise", advertised});
  forward.forward_to(hidden->port());
  // Its contact record names the forwarded port only.
  std::string last;
  BOOST_REQUIRE_MESSAGE(wait_until([&] {
    auto out = annex_swarm({"discover", repo.uuid, "--json", "--state-dir", net.downloader->state_dir().string()});
    last = out.out + out.err;
    if (out.exit_code != 0) return false;
    auto nodes = json::parse(out.out)["nodes"];
    if (nodes.size() != 1) return false;
    std::size_t direct = 0;
    for (const auto& e : nodes[0]["endpoints"])
      if (e.value("kind", "") != "relay" && (++direct, e.value("port", 0) != forward.port())) return false;
    return direct == 1;
  }), "the advertised endpoint " << advertised << " never showed alone: " << last);
  auto key = repo.key_of("behind.txt");
  BOOST_REQUIRE(wait_until([&] {
    return annex_swarm({"whereis", key, "--state-dir", net.downloader->state_dir().string()}).exit_code == 0;
  }));
  auto got = annex_swarm({"get", key, "--to", (net.dir.path() / "forwarded.txt").string(), "--state-dir",
                          net.downloader->state_dir().string()});
  BOOST_REQUIRE_MESSAGE(got.exit_code == 0, got.err << "\n" << net.downloader->log());
  BOOST_TEST(net.read("forwarded.txt") == "served through a port forward\n");
  BOOST_TEST(forward.connections() >= 1u);
  BOOST_TEST(forward.bytes() > 0u);
  // A bad value is refused at start, naming the setting.
  auto bad = annex_swarm({"daemon", "--state-dir", (net.dir.path() / "state-bad").string(), "--bootstrap", "none",
                          "--advertise", "example.org:5000"});
  BOOST_TEST(bad.exit_code != 0);
  BOOST_TEST(bad.err.find("--advertise") != std::string::npos, bad.err);
}

BOOST_AUTO_TEST_SUITE_END()
