// Several real daemons on 127.0.0.1 form their own OpenDHT network; two serve real
// git-annex repositories. Lookups from a third node must find exactly the right
// providers; a node of another swarm must find nothing.
#include <boost/test/unit_test.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <set>

#include <opendht/dhtrunner.h>

#include <future>

#include "node/dht_node.hpp"
#include "node/identity.hpp"
#include "protocol/annex_key.hpp"
#include "protocol/records.hpp"
#include "protocol/swarm_token.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;
using nlohmann::json;

namespace {

struct Network {
  TempDir dir;
  std::string swarm = SwarmToken::generate().str();
  std::string other_swarm = SwarmToken::generate().str();
  AnnexRepo repo_b, repo_c;
  std::unique_ptr<DaemonProcess> first, server_b, server_c, asker, outsider;
  std::string bootstrap;

  Network() {
    repo_b = make_annex_repo(dir.path() / "repo-b", {{"only-b.txt", "b content\n"},
                                                     {"shared.txt", "same bytes in both\n"},
                                                     {"dropped.txt", "soon gone\n"}});
    repo_c = make_annex_repo(dir.path() / "repo-c", {{"only-c.txt", "c content\n"},
                                                     {"shared.txt", "same bytes in both\n"}});
    first = start("first", {"--bootstrap", "none", "--swarm", swarm});
    bootstrap = "127.0.0.1:" + std::to_string(first->port());
    server_b = start("b", {"--bootstrap", bootstrap, "--swarm", swarm, "--repo", repo_b.path.string()});
    server_c = start("c", {"--bootstrap", bootstrap, "--swarm", swarm, "--repo", repo_c.path.string()});
    asker = start("asker", {"--bootstrap", bootstrap, "--swarm", swarm});
    outsider = start("outsider", {"--bootstrap", bootstrap, "--swarm", other_swarm});
  }

  std::unique_ptr<DaemonProcess> start(const std::string& name, std::vector<std::string> args) {
    return start_loopback_daemon(dir.path(), name, std::move(args));
  }

  json lookup(DaemonProcess& at, const std::string& verb, const std::string& what, int& rc) {
    auto out = annex_swarm({verb, what, "--json", "--state-dir", at.state_dir().string()});
    rc = out.exit_code;
    return rc == 0 ? json::parse(out.out) : json();
  }

  std::set<std::pair<std::string, std::string>> providers(DaemonProcess& at, const std::string& key) {
    int rc = 0;
    auto reply = lookup(at, "whereis", key, rc);
    std::set<std::pair<std::string, std::string>> out;
    if (rc == 0)
      for (const auto& p : reply["providers"]) out.emplace(p["node"], p["repo"]);
    return out;
  }
};

// One network for the tests that only read from it; tests that change it (drop a key,
// restart a node, plant hostile values) make their own, so every test passes alone and
// in any order.
std::unique_ptr<Network>& shared_slot() {
  static std::unique_ptr<Network> net;
  return net;
}
Network& network() {
  auto& net = shared_slot();
  if (!net) net = std::make_unique<Network>();
  return *net;
}
// Its daemons stop (and are checked for a clean exit) before the test module ends.
struct SharedNetworkTeardown {
  ~SharedNetworkTeardown() { shared_slot().reset(); }
};
BOOST_TEST_GLOBAL_FIXTURE(SharedNetworkTeardown);

}  // namespace

BOOST_AUTO_TEST_SUITE(loopback_discovery)

BOOST_AUTO_TEST_CASE(whereis_finds_exactly_the_providers_of_each_key) {
  auto& net = network();
  auto b = net.server_b->node_id(), c = net.server_c->node_id();
  std::set<std::pair<std::string, std::string>> only_b{{b, net.repo_b.uuid}};
  std::set<std::pair<std::string, std::string>> only_c{{c, net.repo_c.uuid}};
  std::set<std::pair<std::string, std::string>> both{{b, net.repo_b.uuid}, {c, net.repo_c.uuid}};
  auto key_b = net.repo_b.key_of("only-b.txt");
  auto key_c = net.repo_c.key_of("only-c.txt");
  auto key_shared = net.repo_b.key_of("shared.txt");
  BOOST_TEST(wait_until([&] { return net.providers(*net.asker, key_shared) == both; }));
  BOOST_TEST(wait_until([&] { return net.providers(*net.asker, key_b) == only_b; }));
  BOOST_TEST(wait_until([&] { return net.providers(*net.asker, key_c) == only_c; }));
  // whereis exits 0 when found, and reports the size from the key.
  int rc = -1;
  auto reply = net.lookup(*net.asker, "whereis", key_b, rc);
  BOOST_TEST(rc == 0);
  BOOST_TEST(reply["providers"][0]["size"].get<int>() == 10);
}

BOOST_AUTO_TEST_CASE(discover_finds_the_serving_node_and_its_endpoint) {
  auto& net = network();
  int rc = -1;
  json reply;
  BOOST_TEST(wait_until([&] {
    reply = net.lookup(*net.asker, "discover", net.repo_c.uuid, rc);
    return rc == 0 && reply["nodes"].size() == 1 && reply["nodes"][0]["contact"] == true;
  }));
  BOOST_REQUIRE(rc == 0);
  BOOST_TEST(reply["nodes"][0]["node"] == net.server_c->node_id());
  const auto& ep = reply["nodes"][0]["endpoints"][0];
  BOOST_TEST(ep["host"] == "127.0.0.1");
  BOOST_TEST(ep["port"].get<int>() == net.server_c->port());
  auto formatted = annex_swarm({"discover", net.repo_c.uuid, "--format", "{host} {port}",
                                "--state-dir", net.asker->state_dir().string()});
  BOOST_TEST(formatted.exit_code == 0);
  BOOST_TEST(formatted.out == "127.0.0.1 " + std::to_string(net.server_c->port()) + "\n");
}

BOOST_AUTO_TEST_CASE(a_node_of_another_swarm_finds_nothing) {
  auto& net = network();
  auto key_b = net.repo_b.key_of("only-b.txt");
  // The swarm's own members see the key, so the records are on the shared DHT...
  BOOST_REQUIRE(wait_until([&] { return !net.providers(*net.asker, key_b).empty(); }));
  // ...yet the outsider, on the same DHT, can neither find nor read them.
  auto out = annex_swarm({"whereis", key_b, "--state-dir", net.outsider->state_dir().string()});
  BOOST_TEST(out.exit_code == 1);
  out = annex_swarm({"discover", net.repo_b.uuid, "--state-dir", net.outsider->state_dir().string()});
  BOOST_TEST(out.exit_code == 1);
}

BOOST_AUTO_TEST_CASE(a_dropped_key_disappears_from_announcements) {
  Network net;
  auto key = net.repo_b.key_of("dropped.txt");
  BOOST_REQUIRE(wait_until([&] { return net.providers(*net.asker, key).size() == 1; }));
  sh(net.repo_b.path, "git annex drop -q --force dropped.txt");
  BOOST_TEST(wait_until([&] { return net.providers(*net.asker, key).empty(); }));
  auto out = annex_swarm({"whereis", key, "--state-dir", net.asker->state_dir().string()});
  BOOST_TEST(out.exit_code == 1);
  // The other keys of that repository are still announced.
  BOOST_TEST(net.providers(*net.asker, net.repo_b.key_of("only-b.txt")).size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_restarted_daemon_keeps_its_node_id_and_announcements) {
  Network net;
  auto before = net.server_b->node_id();
  net.server_b.reset();  // SIGTERM, wait for exit
  net.server_b = net.start("b", {"--bootstrap", net.bootstrap, "--swarm", net.swarm, "--repo",
                                 net.repo_b.path.string()});
  BOOST_TEST(net.server_b->node_id() == before);
  auto key_b = net.repo_b.key_of("only-b.txt");
  BOOST_TEST(wait_until([&] { return net.providers(*net.asker, key_b).size() == 1; }));
}

BOOST_AUTO_TEST_CASE(peers_lists_the_swarm_members) {
  auto& net = network();
  std::set<std::string> want{net.first->node_id(), net.server_b->node_id(), net.server_c->node_id(),
                             net.asker->node_id()};
  std::set<std::string> seen;
  bool all = wait_until([&] {
    auto out = annex_swarm({"peers", "--json", "--state-dir", net.asker->state_dir().string()});
    if (out.exit_code != 0) return false;
    seen.clear();
    auto reply = json::parse(out.out);
    for (const auto& p : reply["peers"]) seen.insert(p["node"].get<std::string>());
    return seen == want;
  });
  BOOST_TEST(all);
  BOOST_TEST(seen == want, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(health_fails_once_the_dht_has_been_out_of_reach_longer_than_the_window) {
  // What a container's HEALTHCHECK runs: healthy while the node has DHT peers (or is a
  // first node, alone by design); unhealthy once none answered for longer than --window.
  auto& net = network();
  auto health = [](DaemonProcess& at, const std::string& window) {
    return annex_swarm({"health", "--window", window, "--state-dir", at.state_dir().string()});
  };
  std::string last;
  BOOST_TEST(wait_until([&] {
    auto out = health(*net.asker, "1s");
    last = out.out + out.err;
    return out.exit_code == 0;
  }), last);
  BOOST_TEST(health(*net.first, "1s").exit_code == 0);
  TempDir dir;
  auto stranded = start_loopback_daemon(dir.path(), "stranded", {"--bootstrap", "127.0.0.1:9", "--swarm", net.swarm});
  BOOST_TEST(health(*stranded, "1h").exit_code == 0);  // not for long enough yet
  BOOST_TEST(wait_until([&] {
    auto out = health(*stranded, "1s");
    last = out.out + out.err;
    return out.exit_code == 1;
  }), last);
  BOOST_TEST(last.find("unhealthy: no DHT peer for") != std::string::npos, last);
  stranded->stop();
  BOOST_TEST(stranded->wait_exit() == 0);
  auto gone = health(*stranded, "1h");  // no node answering is unhealthy too
  BOOST_TEST(gone.exit_code == 1);
  BOOST_TEST(gone.err.find("no annex-swarm daemon is running") != std::string::npos, gone.err);
}

BOOST_AUTO_TEST_CASE(bad_input_gets_one_clear_line_and_a_nonzero_exit) {
  auto& net = network();
  auto state = net.asker->state_dir().string();
  for (const std::string& key : {std::string("../x"), std::string(""), std::string("WORM--" + std::string(2000, 'a'))}) {
    auto out = annex_swarm({"whereis", key, "--state-dir", state});
    BOOST_TEST(out.exit_code == 2);
    BOOST_TEST(std::count(out.err.begin(), out.err.end(), '\n') == 1);
  }
  auto out = annex_swarm({"discover", "not-a-uuid", "--state-dir", state});
  BOOST_TEST(out.exit_code == 2);
  out = annex_swarm({"discover", "00000000-1111-2222-3333-444444444444", "--state-dir", state});
  BOOST_TEST(out.exit_code == 1);  // a valid uuid nobody serves

  TempDir empty;
  out = annex_swarm({"status", "--state-dir", (empty.path() / "none").string()});
  BOOST_TEST(out.exit_code == 2);
  BOOST_TEST(out.err.find("no annex-swarm daemon is running") != std::string::npos);

  out = annex_swarm({"daemon", "--state-dir", (empty.path() / "s").string(), "--bootstrap", "none",
                     "--port", "0", "--repo", (empty.path() / "missing").string()});
  BOOST_TEST(out.exit_code == 2);
  BOOST_TEST(out.err.find("does not exist") != std::string::npos);

  sh(empty.path(), "touch file-not-dir");
  out = annex_swarm({"daemon", "--state-dir", (empty.path() / "file-not-dir").string(), "--bootstrap",
                     "none", "--port", "0"});
  BOOST_TEST(out.exit_code == 2);
  BOOST_TEST(out.err.find("state dir") != std::string::npos);

  // A second daemon on the same state dir is refused; the first keeps running.
  out = annex_swarm({"daemon", "--state-dir", state, "--bootstrap", "none", "--port", "0"});
  BOOST_TEST(out.exit_code == 2);
  BOOST_TEST(out.err.find("another annex-swarm daemon") != std::string::npos);
  BOOST_TEST(annex_swarm({"status", "--state-dir", state}).exit_code == 0);

  out = annex_swarm({"daemon", "--port", "99999", "--swarm", "nonsense", "--state-dir", state});
  BOOST_TEST(out.exit_code == 2);
  BOOST_TEST(out.err.find("--port") != std::string::npos);
  BOOST_TEST(out.err.find("--swarm") != std::string::npos);  // every problem at once
}

BOOST_AUTO_TEST_CASE(the_control_socket_answers_garbage_with_errors_and_keeps_serving) {
  auto& net = network();
  auto socket_path = (net.asker->state_dir() / "control.sock").string();
  auto exchange = [&](const std::string& bytes) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
    BOOST_REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;  // the daemon may hang up on an oversized line
      sent += static_cast<std::size_t>(n);
    }
    std::string reply;
    char buf[4096];
    while (reply.find('\n') == std::string::npos) {
      auto n = ::read(fd, buf, sizeof buf);
      if (n <= 0) break;
      reply.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return reply;
  };
  auto not_json = json::parse(exchange("this is not json\n"));
  BOOST_TEST(not_json["ok"] == false);
  BOOST_TEST(not_json["code"] == "bad-request");
  auto unknown = json::parse(exchange("{\"op\":\"format-disk\"}\n"));
  BOOST_TEST(unknown["code"] == "unknown-op");
  auto bad_key = json::parse(exchange("{\"op\":\"whereis\",\"key\":\"../../etc/passwd\"}\n"));
  BOOST_TEST(bad_key["code"] == "bad-key");
  auto no_key = json::parse(exchange("{\"op\":\"whereis\",\"key\":7}\n"));
  BOOST_TEST(no_key["code"] == "bad-request");
  auto huge = exchange(std::string(1 << 20, 'x') + "\n");
  BOOST_TEST(huge.find("too long") != std::string::npos);
  // Still serving.
  BOOST_TEST(annex_swarm({"status", "--state-dir", net.asker->state_dir().string()}).exit_code == 0);
}

BOOST_AUTO_TEST_CASE(no_value_from_the_dht_was_refused_in_a_clean_swarm) {
  auto& net = network();
  auto ignored = net.asker->status()["ignored_values"];
  BOOST_TEST(ignored["undecryptable"].get<int>() == 0);
  BOOST_TEST(ignored["forged"].get<int>() == 0);
  BOOST_TEST(ignored["expired"].get<int>() == 0);
}

BOOST_AUTO_TEST_CASE(hostile_dht_values_are_counted_and_never_trusted) {
  Network net;
  auto key_b = net.repo_b.key_of("only-b.txt");
  auto b = net.server_b->node_id();
  BOOST_REQUIRE(wait_until([&] { return net.providers(*net.asker, key_b).size() == 1; }));

  // A plain OpenDHT node joins the same DHT and writes at the swarm's location for the
  // key: garbage, a value sealed for another swarm, and a record sealed with the right
  // swarm key (a member gone bad) that claims to come from node b but is signed by us.
  dht::DhtRunner attacker;
  dht::DhtRunner::Config cfg;
  cfg.dht_config.id = dht::crypto::generateIdentity("attacker", {}, 2048);
  cfg.threaded = true;
  cfg.bind4 = dht::SockAddr::resolve("127.0.0.1", "0").front();
  attacker.run(cfg, {});
  attacker.bootstrap("127.0.0.1", std::to_string(net.first->port()));
  auto token = SwarmToken::parse(net.swarm).value();
  auto index = token.key_index(AnnexKey::parse(key_b).value());
  auto loc = token.bucket_location(index.bucket);
  dht::InfoHash hash;
  std::copy(loc.bytes.begin(), loc.bytes.end(), hash.data());
  auto put = [&](dht::Blob data, bool sign, std::uint64_t id) {
    auto v = std::make_shared<dht::Value>(kRecordValueType, std::move(data), id);
    std::promise<bool> done;
    if (sign)
      attacker.putSigned(hash, v, [&](bool ok) { done.set_value(ok); });
    else
      attacker.put(hash, v, [&](bool ok) { done.set_value(ok); });
    return done.get_future().get();
  };
  NodeId claimed = NodeId::from_hex(b).value();
  auto forged = encode(ProviderBucketRecord{claimed, net.repo_c.uuid, index.bucket, {index.tag}});
  auto other = SwarmToken::generate();
  BOOST_TEST(put(dht::Blob(300, 0x41), false, 11));
  BOOST_TEST(put(dht::Blob(300, 0x42), true, 12));
  auto now = static_cast<std::uint64_t>(std::time(nullptr));
  auto sealed_other = seal_record(other, loc, forged, now);
  BOOST_TEST(put(dht::Blob(sealed_other.begin(), sealed_other.end()), true, 13));
  auto sealed_forged = seal_record(token, loc, forged, now);
  BOOST_TEST(put(dht::Blob(sealed_forged.begin(), sealed_forged.end()), true, 14));
  // A record of our own, signed right, but issued two hours ago: what a replay of an
  // old value looks like once its lifetime is over.
  NodeId attacker_id = node_id_of(cfg.dht_config.id);
  auto stale = seal_record(token, loc, encode(ProviderBucketRecord{attacker_id, net.repo_c.uuid, index.bucket, {index.tag}}),
                           now - 7200);
  BOOST_TEST(put(dht::Blob(stale.begin(), stale.end()), true, 15));

  // Lookups still return exactly the honest provider, and each hostile value is counted.
  std::set<std::pair<std::string, std::string>> honest{{b, net.repo_b.uuid}};
  json ignored;
  BOOST_TEST(wait_until([&] {
    if (net.providers(*net.asker, key_b) != honest) return false;
    ignored = net.asker->status()["ignored_values"];
    return ignored["unsigned"].get<int>() > 0 && ignored["undecryptable"].get<int>() > 0 &&
           ignored["forged"].get<int>() > 0 && ignored["expired"].get<int>() > 0;
  }));
  BOOST_TEST(net.providers(*net.asker, key_b) == honest);
  attacker.join();
}

BOOST_AUTO_TEST_SUITE_END()
