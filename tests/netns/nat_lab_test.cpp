// The NAT lab (tests/netns/nat_lab.sh): real daemons in network namespaces behind real
// NAT, with Debian's miniupnpd as the home router. Needs root; skipped with a message
// otherwise.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <fstream>

#include "tests/support/sshd.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kPrefix = "aslab";

BOOST_TEST_GLOBAL_FIXTURE(AnnexEnvironment);  // git-annex commits, in the tunnel's test

boost::test_tools::assertion_result is_root(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result r(::geteuid() == 0);
  r.message() << "the NAT lab needs root (network namespaces); run the netns tests as root";
  return r;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

ProcessOutput in_ns(const std::string& ns, std::vector<std::string> argv) {
  argv.insert(argv.begin(), {"ip", "netns", "exec", std::string(kPrefix) + "-" + ns});
  return run_process(argv);
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}

struct Lab {
  TempDir tmp;
  fs::path dir = tmp.path() / "lab";
  std::string token;
  std::map<int, pid_t> routers;

  Lab() {
    ::setenv("NAT_LAB_PREFIX", kPrefix, 1);
    auto t0 = std::chrono::steady_clock::now();
    auto up = run_process({"bash", NAT_LAB_SCRIPT, "up", dir.string()});
    BOOST_REQUIRE_MESSAGE(up.exit_code == 0, "the NAT lab did not come up: " + up.err);
    BOOST_TEST_MESSAGE("lab up in " << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
                                    << " s");
    token = trim(annex_swarm({"swarm", "new"}).out);
    BOOST_REQUIRE(!token.empty());
  }
  ~Lab() {
    nodes.clear();  // first, so they can take their mappings off the routers
    for (auto& [i, pid] : routers) stop_router(pid, SIGTERM);
    run_process({"bash", NAT_LAB_SCRIPT, "down"});
  }

  static void stop_router(pid_t pid, int sig) {
    if (pid <= 0) return;
    ::kill(pid, sig);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }

  // Router 1: UPnP IGD and NAT-PMP; router 3: NAT-PMP only. Returns once it listens.
  void start_router(int i) {
    auto log = dir / ("r" + std::to_string(i) + ".log");
    auto size_before = fs::exists(log) ? fs::file_size(log) : 0;
    pid_t pid = spawn_process({"bash", NAT_LAB_SCRIPT, "routerd", std::to_string(i), dir.string()}, log.string());
    BOOST_REQUIRE(pid > 0);
    routers[i] = pid;
    BOOST_REQUIRE_MESSAGE(wait_until([&] {
                            auto text = read_text(log);
                            return text.find("Listening for NAT-PMP", size_before) != std::string::npos;
                          }, std::chrono::seconds(20)),
                          "miniupnpd on router " << i << " did not start:\n" << read_text(log));
  }
  void kill_router(int i) {
    stop_router(routers[i], SIGKILL);
    routers.erase(i);
  }

  DaemonProcess& node(const std::string& name, const std::string& ns, std::vector<std::string> args) {
    args.insert(args.end(), {"--swarm", token, "--poll-interval", "1s", "--lookup-timeout", "10s"});
    auto d = std::make_unique<DaemonProcess>(tmp.path() / ("state-" + name), args,
                                             std::vector<std::string>{"ip", "netns", "exec", std::string(kPrefix) + "-" + ns});
    BOOST_REQUIRE_MESSAGE(d->wait_ready(), "daemon " + name + " did not start:\n" + d->log());
    nodes.push_back(std::move(d));
    return *nodes.back();
  }
  DaemonProcess& public_node() { return node("pub", "pub", {"--bootstrap", "none", "--nat", "none"}); }
  DaemonProcess& home_node(int i, std::vector<std::string> args) {
    args.insert(args.end(), {"--bootstrap", "11.0.0.10:4224"});
    return node("h" + std::to_string(i), "h" + std::to_string(i), std::move(args));
  }

  std::vector<std::unique_ptr<DaemonProcess>> nodes;
};

bool has_endpoint(const json& list, const std::string& kind, const std::string& host) {
  for (const auto& e : list)
    if (e.value("kind", "") == kind && e.value("host", "") == host) return true;
  return false;
}

// Waits until `node` has confirmed an endpoint of that kind and address by dial-back.
void await_confirmed(DaemonProcess& node, const std::string& kind, const std::string& host) {
  json last;
  bool ok = wait_until([&] {
    last = node.status()["nat"];
    return has_endpoint(last["reachability"]["confirmed"], kind, host);
  }, std::chrono::seconds(90));
  BOOST_REQUIRE_MESSAGE(ok, "no confirmed " << kind << " endpoint " << host << "; nat status: " << last.dump()
                                            << "\nlog:\n" << node.log());
  BOOST_TEST_MESSAGE(kind << " endpoint " << host << " confirmed "
                          << last["reachability"].value("first_confirmed_after_seconds", -1.0)
                          << " s after the daemon started");
}

void await_announced(DaemonProcess& node) {
  BOOST_REQUIRE_MESSAGE(wait_until([&] {
                          auto s = node.status();
                          return !s["repos"].empty() && s["repos"][0]["swarms"][0].value("announced", 0) >= 1;
                        }, std::chrono::seconds(60)),
                        "keys not announced:\n" + node.log());
}

// The public node fetches `key`; returns the address it reached the holder at.
std::string fetch_from_public(Lab& lab, DaemonProcess& pub, DaemonProcess& holder, const std::string& key,
                              const std::string& content) {
  auto to = lab.tmp.path() / ("got-" + key.substr(key.size() - 8));
  auto got = annex_swarm({"get", key, "--to", to.string(), "--json", "--state-dir", pub.state_dir().string()});
  BOOST_REQUIRE_MESSAGE(got.exit_code == 0, "get failed: " + got.err + "\npublic node log:\n" + pub.log());
  BOOST_TEST(read_text(to) == content);
  auto reply = json::parse(got.out);
  return reply["paths"].value(holder.node_id(), "");
}

std::string upnp_list(int home) {
  return in_ns("h" + std::to_string(home), {"upnpc", "-l"}).out;
}

std::string router_rules(int router) {
  return in_ns("r" + std::to_string(router), {"nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd"}).out;
}

std::string big_content(char seed) {
  std::string s(3 * 1024 * 1024 + 17, '\0');
  std::uint32_t x = static_cast<unsigned char>(seed) * 2654435761u;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(nat_lab, *boost::unit_test::precondition(is_root))

BOOST_AUTO_TEST_CASE(a_node_behind_a_upnp_router_maps_its_ports_and_serves_the_public_host_through_the_wan_address) {
  Lab lab;
  lab.start_router(1);
  // IPv4 only here, so the only way in is the mapped port on the router.
  in_ns("h1", {"ip", "-6", "addr", "flush", "dev", "eth0", "scope", "global"});
  auto content = big_content('u');
  auto repo = make_annex_repo(lab.tmp.path() / "repo1", {{"big.bin", content}});
  auto key = repo.key_of("big.bin");
  auto& pub = lab.public_node();
  auto& h1 = lab.home_node(1, {"--nat", "upnp", "--nat-lease", "60s", "--repo", repo.path.string()});
  await_confirmed(h1, "mapped", "11.0.0.1");
  auto nat = h1.status()["nat"];
  BOOST_TEST(nat.value("in_use", "") == "upnp");
  BOOST_TEST(nat.value("external_address", "") == "11.0.0.1");
  BOOST_TEST(nat["mappings"].size() == 2u);  // TCP for peers, UDP for the DHT
  auto listed = upnp_list(1);
  BOOST_TEST_INFO("upnpc -l:\n" << listed);
  BOOST_TEST(listed.find("TCP  4224->10.0.1.2:4224") != std::string::npos);
  BOOST_TEST(listed.find("UDP  4224->10.0.1.2:4224") != std::string::npos);
  await_announced(h1);
  BOOST_TEST(fetch_from_public(lab, pub, h1, key, content) == "11.0.0.1:4224");

  // Stopping the daemon takes its mappings off the router.
  h1.stop();
  BOOST_TEST(h1.wait_exit() == 0);
  BOOST_TEST_INFO("log:\n" << h1.log());
  BOOST_TEST(h1.log().find("port mappings removed from the router") != std::string::npos);
  listed = upnp_list(1);
  BOOST_TEST_INFO("upnpc -l after stop:\n" << listed);
  BOOST_TEST(listed.find("4224->10.0.1.2") == std::string::npos);
  BOOST_TEST(router_rules(1).find("10.0.1.2") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_node_behind_a_nat_pmp_router_maps_its_ports_and_serves_the_public_host) {
  Lab lab;
  lab.start_router(3);
  auto content = big_content('p');
  auto repo = make_annex_repo(lab.tmp.path() / "repo3", {{"big.bin", content}});
  auto key = repo.key_of("big.bin");
  auto& pub = lab.public_node();
  auto& h3 = lab.home_node(3, {"--nat", "auto", "--repo", repo.path.string()});
  await_confirmed(h3, "mapped", "11.0.0.3");
  auto nat = h3.status()["nat"];
  BOOST_TEST(nat.value("in_use", "") == "natpmp");  // auto: UPnP found nothing, NAT-PMP did
  BOOST_TEST(router_rules(3).find("10.0.3.2") != std::string::npos);
  await_announced(h3);
  BOOST_TEST(fetch_from_public(lab, pub, h3, key, content) == "11.0.0.3:4224");
  h3.stop();
  BOOST_TEST(h3.wait_exit() == 0);
  BOOST_TEST(router_rules(3).find("10.0.3.2") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_router_that_restarts_and_loses_the_mapping_is_mapped_again_at_the_next_renewal) {
  Lab lab;
  lab.start_router(1);
  auto& pub = lab.public_node();
  (void)pub;
  auto& h1 = lab.home_node(1, {"--nat", "upnp", "--nat-lease", "10s"});  // renewed every 5 s
  await_confirmed(h1, "mapped", "11.0.0.1");
  lab.kill_router(1);
  lab.start_router(1);  // a rebooted router: its mapping rules are gone
  auto restarted = std::chrono::steady_clock::now();
  BOOST_REQUIRE_MESSAGE(wait_until([&] { return upnp_list(1).find("TCP  4224->10.0.1.2:4224") != std::string::npos; },
                                   std::chrono::seconds(60)),
                        "the mapping did not come back:\n" << h1.log());
  BOOST_TEST_MESSAGE("mapped again "
                     << std::chrono::duration<double>(std::chrono::steady_clock::now() - restarted).count()
                     << " s after the router restarted (lease 10 s, renewal every 5 s)");
  auto log = h1.log();
  BOOST_TEST_INFO("log:\n" << log);
  // Either the renewal found the mapping gone, or it found the router away and looked again.
  bool lost = log.find("the router lost the mapping") != std::string::npos;
  bool failed = log.find("port mapping failed") != std::string::npos;
  BOOST_TEST((lost || failed));
  BOOST_TEST_MESSAGE("the node noticed: " << (lost ? "the mapping was gone" : "the router did not answer"));
  // And it is still confirmed reachable there.
  await_confirmed(h1, "mapped", "11.0.0.1");
}

BOOST_AUTO_TEST_CASE(a_node_behind_plain_nat_advertises_no_public_endpoint_and_says_why) {
  Lab lab;
  auto& pub = lab.public_node();
  auto& h2 = lab.home_node(2, {"--nat", "auto"});
  json nat;
  BOOST_REQUIRE_MESSAGE(wait_until([&] {
                          nat = h2.status()["nat"];
                          return nat["reachability"].contains("checked_seconds_ago") &&
                                 !nat["reachability"]["failed"].empty();
                        }, std::chrono::seconds(90)),
                        "no reachability verdict: " << nat.dump() << "\n" << h2.log());
  auto summary = nat["reachability"].value("summary", "");
  BOOST_TEST_INFO("nat status: " << nat.dump());
  BOOST_TEST(nat["reachability"]["confirmed"].empty());
  BOOST_TEST(summary.find("not reachable from outside") != std::string::npos);
  BOOST_TEST(summary.find("no port mapping") != std::string::npos);
  BOOST_TEST(summary.find("11.0.0.2:4224") != std::string::npos);  // the address the helper saw
  BOOST_TEST(nat.value("error", "").find("NAT-PMP") != std::string::npos);
  BOOST_TEST(h2.log().find("warn: not reachable from outside") != std::string::npos);
  // What the swarm sees: a contact record with no public or mapped endpoint (LAN ones,
  // and a relay's once it holds a reservation).
  json peers;
  BOOST_REQUIRE(wait_until([&] {
    auto out = annex_swarm({"peers", "--json", "--state-dir", pub.state_dir().string()});
    if (out.exit_code != 0) return false;
    peers = json::parse(out.out);
    for (const auto& p : peers["peers"])
      if (p.value("node", "") == h2.node_id()) return true;
    return false;
  }, std::chrono::seconds(60)));
  for (const auto& p : peers["peers"]) {
    if (p.value("node", "") != h2.node_id()) continue;
    for (const auto& e : p["endpoints"]) {
      BOOST_TEST(e.value("kind", "") != "public");
      BOOST_TEST(e.value("kind", "") != "mapped");
    }
  }
}

BOOST_AUTO_TEST_CASE(a_global_ipv6_address_that_passes_dial_back_is_advertised_and_used) {
  Lab lab;
  auto content = big_content('6');
  auto repo = make_annex_repo(lab.tmp.path() / "repo1", {{"big.bin", content}});
  auto key = repo.key_of("big.bin");
  auto& pub = lab.public_node();
  auto& h1 = lab.home_node(1, {"--nat", "none", "--repo", repo.path.string()});
  await_confirmed(h1, "public", "2001:db8:1::2");
  // Its IPv4 side is behind NAT with no mapping: that one is not advertised.
  auto nat = h1.status()["nat"];
  BOOST_TEST(!has_endpoint(nat["reachability"]["confirmed"], "public", "11.0.0.1"));
  await_announced(h1);
  BOOST_TEST(fetch_from_public(lab, pub, h1, key, content) == "[2001:db8:1::2]:4224");
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// Content in which every chunk carries a known plaintext marker.
const std::string kMarker = "annex-swarm-plaintext-marker-5d41402abc4b2a76";
std::string marked_content(std::size_t bytes) {
  std::string s;
  std::uint32_t n = 0;
  while (s.size() < bytes) s += kMarker + " " + std::to_string(n++) + "\n";
  s.resize(bytes);
  return s;
}

// Waits until `node` holds `count` confirmed relay reservations.
void await_reservations(DaemonProcess& node, std::size_t count) {
  json relay;
  bool ok = wait_until([&] {
    relay = node.status()["relay"];
    std::size_t confirmed = 0;
    for (const auto& r : relay["reservations_held"]) confirmed += r.value("confirmed", false) ? 1 : 0;
    return confirmed >= count;
  }, std::chrono::seconds(90));
  BOOST_REQUIRE_MESSAGE(ok, "no " << count << " relay reservation(s): " << relay.dump() << "\n" << node.log());
}

// Waits until `at` can look up how to reach `holder` (of repository `uuid`) through a relay:
// its contact record with a relay endpoint is on the DHT where `at` looks. A get started
// before that would not know the relayed path yet.
void await_relayed_contact(DaemonProcess& at, DaemonProcess& holder, const std::string& uuid, std::size_t relays = 1) {
  json last;
  bool ok = wait_until([&] {
    auto out = annex_swarm({"discover", uuid, "--json", "--state-dir", at.state_dir().string()});
    if (out.exit_code != 0) return false;
    last = json::parse(out.out);
    std::size_t found = 0;
    for (const auto& n : last["nodes"])
      if (n.value("node", "") == holder.node_id())
        for (const auto& e : n["endpoints"]) found += e.value("kind", "") == "relay";
    return found >= relays;
  }, std::chrono::seconds(60));
  BOOST_REQUIRE_MESSAGE(ok, "no relayed contact for " << holder.node_id() << ": " << last.dump());
}

ProcessOutput get_key(DaemonProcess& node, const std::string& key, const fs::path& to) {
  return annex_swarm({"get", key, "--to", to.string(), "--json", "--state-dir", node.state_dir().string()});
}

}  // namespace

BOOST_AUTO_TEST_SUITE(relay_lab, *boost::unit_test::precondition(is_root))

BOOST_AUTO_TEST_CASE(a_node_behind_plain_nat_is_reached_through_a_relay_that_sees_only_ciphertext) {
  Lab lab;
  lab.start_router(1);
  auto capture = lab.tmp.path() / "relayed.bin";
  auto& pub = lab.node("pub", "pub",
                       {"--bootstrap", "none", "--nat", "none", "--relay", "on", "--test-relay-capture", capture.string()});
  auto content = marked_content(3 * 1024 * 1024 + 5);
  auto repo = make_annex_repo(lab.tmp.path() / "repo2", {{"marked.txt", content}});
  auto key = repo.key_of("marked.txt");
  auto& h2 = lab.home_node(2, {"--nat", "auto", "--repo", repo.path.string(), "--relay-reservations", "1"});
  auto& h1 = lab.home_node(1, {"--nat", "upnp", "--relay", "off"});  // the public host is the only relay
  await_reservations(h2, 1);
  await_announced(h2);
  await_relayed_contact(pub, h2, repo.uuid);
  await_relayed_contact(h1, h2, repo.uuid);
  // The public host fetches it through the relay it runs itself (dialled on loopback)...
  BOOST_TEST(fetch_from_public(lab, pub, h2, key, content) == "127.0.0.1:4224");
  // ...and so does the node behind router 1.
  auto to = lab.tmp.path() / "got-by-h1";
  auto got = get_key(h1, key, to);
  BOOST_REQUIRE_MESSAGE(got.exit_code == 0, got.err + "\n" + h1.log());
  BOOST_TEST(read_text(to) == content);
  BOOST_TEST(json::parse(got.out)["paths"].value(h2.node_id(), "") == "11.0.0.10:4224");
  auto relay = pub.status()["relay"];
  BOOST_TEST(relay.value("circuits_opened", 0) >= 2);
  // The relay copied every byte of both transfers and never saw the plaintext.
  auto relayed = read_text(capture);
  BOOST_TEST(relayed.size() > 2 * content.size());
  BOOST_TEST(relayed.find(kMarker) == std::string::npos);
  BOOST_TEST(relayed.find(kMarker.substr(0, 16)) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_relay_in_use_killed_mid_transfer_the_transfer_finishes_through_the_other) {
  Lab lab;
  lab.start_router(1);
  auto& pub = lab.node("pub", "pub", {"--bootstrap", "none", "--nat", "none", "--relay", "on"});
  auto& h1 = lab.home_node(1, {"--nat", "upnp", "--relay", "on"});  // a second relay, behind a mapped port
  await_confirmed(h1, "mapped", "11.0.0.1");
  auto content = big_content('r') + big_content('s');  // 6 MiB
  auto repo = make_annex_repo(lab.tmp.path() / "repo2", {{"big.bin", content}});
  auto key = repo.key_of("big.bin");
  auto& h2 = lab.home_node(2, {"--nat", "none", "--repo", repo.path.string()});
  auto& h3 = lab.home_node(3, {"--nat", "none", "--download-rate", "1M"});  // the downloader, slowed down
  await_reservations(h2, 2);
  await_announced(h2);
  await_relayed_contact(h3, h2, repo.uuid, 2);
  auto to = lab.tmp.path() / "got-by-h3";
  pid_t get = spawn_process({ANNEX_SWARM_BIN, "get", key, "--to", to.string(), "--json", "--state-dir",
                             h3.state_dir().string()},
                            (lab.tmp.path() / "get.log").string());
  BOOST_REQUIRE(get > 0);
  // Whichever relay carries the circuit is killed once the transfer is under way.
  DaemonProcess* in_use = nullptr;
  BOOST_REQUIRE_MESSAGE(wait_until([&] {
                          for (auto* relay : {&pub, &h1})
                            if (relay->status()["relay"].value("bytes_relayed", 0) > 1024 * 1024) in_use = relay;
                          return in_use != nullptr;
                        }, std::chrono::seconds(60)),
                        "no relay carried the transfer");
  in_use->kill_hard();
  auto* other = in_use == &pub ? &h1 : &pub;
  int status = 0;
  BOOST_REQUIRE(::waitpid(get, &status, 0) == get);
  auto log = read_text(lab.tmp.path() / "get.log");
  BOOST_TEST_INFO("get:\n" << log << "\nh3 log:\n" << h3.log());
  BOOST_REQUIRE(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0);
  BOOST_TEST(read_text(to) == content);
  BOOST_TEST(other->status()["relay"].value("circuits_opened", 0) >= 1);
}

BOOST_AUTO_TEST_CASE(a_circuit_over_its_byte_cap_is_cut_and_the_download_resumes_through_the_other_relay) {
  Lab lab;
  lab.start_router(1);
  // Both relays cut a circuit after 1.5 MB: each circuit carries one 1 MiB chunk, not two.
  auto& pub = lab.node("pub", "pub",
                       {"--bootstrap", "none", "--nat", "none", "--relay", "on", "--relay-circuit-bytes", "1500000"});
  auto& h1 = lab.home_node(1, {"--nat", "upnp", "--relay", "on", "--relay-circuit-bytes", "1500000"});
  await_confirmed(h1, "mapped", "11.0.0.1");
  auto content = big_content('c').substr(0, 3 * 1024 * 1024 - 100);  // three chunks
  auto repo = make_annex_repo(lab.tmp.path() / "repo2", {{"three.bin", content}});
  auto key = repo.key_of("three.bin");
  auto& h2 = lab.home_node(2, {"--nat", "none", "--repo", repo.path.string()});
  auto& h3 = lab.home_node(3, {"--nat", "none"});
  await_reservations(h2, 2);
  await_announced(h2);
  await_relayed_contact(h3, h2, repo.uuid, 2);
  auto to = lab.tmp.path() / "got-by-h3";
  auto got = get_key(h3, key, to);
  BOOST_TEST_INFO("get: " << got.out << got.err << "\nh3 log:\n" << h3.log());
  BOOST_REQUIRE(got.exit_code == 0);
  BOOST_TEST(read_text(to) == content);
  auto reply = json::parse(got.out);
  BOOST_TEST(reply["redialled"].contains(h2.node_id()));
  auto at_pub = pub.status()["relay"], at_h1 = h1.status()["relay"];
  BOOST_TEST(at_pub.value("circuits_cut", 0) + at_h1.value("circuits_cut", 0) >= 2);
  // The broken path goes last, so the next circuit went through the other relay.
  BOOST_TEST(at_pub.value("circuits_opened", 0) >= 1);
  BOOST_TEST(at_h1.value("circuits_opened", 0) >= 1);
}

BOOST_AUTO_TEST_CASE(one_download_takes_from_a_direct_source_and_a_relayed_one_at_once) {
  Lab lab;
  lab.start_router(1);
  auto& pub = lab.node("pub", "pub", {"--bootstrap", "none", "--nat", "none", "--relay", "on"});
  in_ns("h1", {"ip", "-6", "addr", "flush", "dev", "eth0", "scope", "global"});
  auto content = big_content('m') + big_content('n') + big_content('o');  // 9 MiB
  auto repo1 = make_annex_repo(lab.tmp.path() / "repo1", {{"same.bin", content}});
  auto repo2 = make_annex_repo(lab.tmp.path() / "repo2", {{"same.bin", content}});
  auto key = repo1.key_of("same.bin");
  // Both capped, so that neither can finish before the other has served its share.
  auto& h1 = lab.home_node(1, {"--nat", "upnp", "--relay", "off", "--repo", repo1.path.string(), "--upload-rate", "2M"});
  auto& h2 = lab.home_node(2, {"--nat", "none", "--repo", repo2.path.string(), "--upload-rate", "2M"});
  await_confirmed(h1, "mapped", "11.0.0.1");
  await_reservations(h2, 1);
  await_announced(h1);
  await_announced(h2);
  await_relayed_contact(pub, h2, repo2.uuid);
  auto to = lab.tmp.path() / "got-by-pub";
  auto got = get_key(pub, key, to);
  BOOST_REQUIRE_MESSAGE(got.exit_code == 0, got.err + "\n" + pub.log());
  BOOST_TEST(read_text(to) == content);
  auto reply = json::parse(got.out);
  BOOST_TEST_CONTEXT("get: " << got.out << got.err << "\npub log:\n" << pub.log()) {
  BOOST_TEST(reply["paths"].value(h1.node_id(), "") == "11.0.0.1:4224");   // direct, through the mapped port
  BOOST_TEST(reply["paths"].value(h2.node_id(), "") == "127.0.0.1:4224");  // through the relay on this host
  BOOST_TEST(reply["bytes_from"].value(h1.node_id(), 0) > 0);
  BOOST_TEST(reply["bytes_from"].value(h2.node_id(), 0) > 0);
  }
}

// Issue 18 across real NAT: the home server (h2, behind plain NAT: no port forward) exposes
// its sshd; the laptop (h3, behind another plain NAT) clones its git-annex repository over
// ssh:// with ProxyCommand `annex-swarm connect`, through a relay (the public host or h1).
// The relay carrying the clone is killed midway: the clone fails cleanly (no hang) and a
// retry goes through the other relay. Then a file and a commit go each way with
// `git annex sync --content`, and fsck passes on both sides. A service not exposed is
// refused; a node of another swarm cannot reach it.
BOOST_AUTO_TEST_CASE(git_annex_clones_and_syncs_over_ssh_between_two_plain_nats_through_a_relay) {
  if (!Sshd::available()) {
    BOOST_TEST_MESSAGE("skipped: needs Debian's openssh-server (scripts/setup test installs it)");
    return;
  }
  Lab lab;
  lab.start_router(1);
  auto& pub = lab.node("pub", "pub", {"--bootstrap", "none", "--nat", "none", "--relay", "on"});
  auto& h1 = lab.home_node(1, {"--nat", "upnp", "--relay", "on"});  // the second relay
  await_confirmed(h1, "mapped", "11.0.0.1");
  Sshd sshd(lab.tmp.path() / "sshd", {"ip", "netns", "exec", std::string(kPrefix) + "-h2"}, 2222);
  auto photo = big_content('p');
  auto home_repo = make_annex_repo(lab.tmp.path() / "home-repo", {{"photo.bin", photo}});
  // History large enough that the clone is still running when its relay dies.
  std::ofstream(home_repo.path / "history.bin") << random_content(12u << 20, 7);
  auto commit = run_process({"sh", "-c", "cd '" + home_repo.path.string() +
                                             "' && git -c annex.largefiles=nothing add history.bin && git commit -qm history"});
  BOOST_REQUIRE_MESSAGE(commit.exit_code == 0, commit.out + commit.err);
  auto& h2 = lab.home_node(2, {"--nat", "none", "--repo", home_repo.path.string(), "--expose.ssh", "127.0.0.1:2222"});
  auto& h3 = lab.home_node(3, {"--nat", "none", "--alias.home", h2.node_id()});
  await_reservations(h2, 2);
  await_relayed_contact(h3, h2, home_repo.uuid, 2);
  auto bin = lab.tmp.path() / "bin";
  sshd.write_client_config(bin, "home.swarm", "home", h3.state_dir());
  auto in = [&](const fs::path& where, const std::string& command) {
    return run_process({"sh", "-c", "cd '" + where.string() + "' && PATH='" + bin.string() + "':\"$PATH\" timeout 120 " +
                                        command + " 2>&1"});
  };
  const std::string clone_command = "git clone -q ssh://root@home.swarm" + home_repo.path.string() + " laptop-repo";
  auto laptop = lab.tmp.path() / "laptop-repo";

  // The clone, slowed to ~2 MB/s on the laptop's line, loses its relay midway.
  BOOST_REQUIRE(in_ns("r3", {"tc", "qdisc", "add", "dev", "lan", "root", "tbf", "rate", "16mbit", "burst", "64kb",
                             "latency", "1s"}).exit_code == 0);
  auto relayed = [](DaemonProcess& relay) { return relay.status()["relay"].value("bytes_relayed", std::uint64_t{0}); };
  std::map<DaemonProcess*, std::uint64_t> before{{&pub, relayed(pub)}, {&h1, relayed(h1)}};
  pid_t clone = spawn_process({"sh", "-c", "cd '" + lab.tmp.path().string() + "' && PATH='" + bin.string() +
                                               "':\"$PATH\" exec timeout 120 " + clone_command},
                              (lab.tmp.path() / "clone.log").string());
  BOOST_REQUIRE(clone > 0);
  DaemonProcess* in_use = nullptr;
  BOOST_REQUIRE_MESSAGE(wait_until([&] {
                          for (auto* relay : {&pub, &h1})
                            if (relayed(*relay) > before[relay] + 2 * 1024 * 1024) in_use = relay;
                          return in_use != nullptr;
                        }, std::chrono::seconds(60)),
                        "no relay carried the clone:\n" << read_text(lab.tmp.path() / "clone.log") << h3.log());
  in_use->kill_hard();
  int status = 0;
  BOOST_REQUIRE(::waitpid(clone, &status, 0) == clone);
  auto said = read_text(lab.tmp.path() / "clone.log");
  BOOST_REQUIRE(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) != 0, "the clone went on without its relay: " << said);
  BOOST_TEST(WEXITSTATUS(status) != 124, "the clone hung until its timeout: " << said);
  BOOST_TEST(said.find("the tunnel broke") != std::string::npos, said);
  BOOST_REQUIRE(in_ns("r3", {"tc", "qdisc", "del", "dev", "lan", "root"}).exit_code == 0);
  // A retry goes through the relay that is left.
  auto* other = in_use == &pub ? &h1 : &pub;
  auto opened_before = other->status()["relay"].value("circuits_opened", 0);
  fs::remove_all(laptop);
  auto retry = in(lab.tmp.path(), clone_command);
  BOOST_REQUIRE_MESSAGE(retry.exit_code == 0, retry.out << "\nh3 log:\n" << h3.log());
  BOOST_TEST(other->status()["relay"].value("circuits_opened", 0) > opened_before);
  BOOST_TEST(read_text(laptop / "history.bin").size() == 12u << 20);

  auto init = in(laptop, "git annex init laptop");
  BOOST_REQUIRE_MESSAGE(init.exit_code == 0, init.out);
  BOOST_REQUIRE_MESSAGE(init.out.find("annex-ignore") == std::string::npos, init.out);
  auto get = in(laptop, "git annex get photo.bin");
  BOOST_REQUIRE_MESSAGE(get.exit_code == 0, get.out);
  BOOST_TEST((read_text(laptop / "photo.bin") == photo));
  // A commit and a file from the laptop, and one from home.
  std::ofstream(laptop / "notes.bin") << random_content(300000, 42);
  BOOST_REQUIRE(in(laptop, "git annex add -q notes.bin && git commit -qm notes").exit_code == 0);
  std::ofstream(home_repo.path / "scan.bin") << random_content(200000, 43);
  BOOST_REQUIRE(in(home_repo.path, "git annex add -q scan.bin && git commit -qm scan").exit_code == 0);
  auto sync = in(laptop, "git annex sync -q --content");
  BOOST_REQUIRE_MESSAGE(sync.exit_code == 0, sync.out);
  BOOST_TEST((read_text(laptop / "scan.bin") == random_content(200000, 43)));
  BOOST_REQUIRE(in(home_repo.path, "git merge -q --ff-only synced/master || git merge -q --ff-only synced/main").exit_code == 0);
  BOOST_TEST(in(home_repo.path, "git annex fsck -q").exit_code == 0);
  BOOST_TEST(in(laptop, "git annex fsck -q").exit_code == 0);
  BOOST_TEST((read_text(home_repo.path / "notes.bin") == random_content(300000, 42)));

  // What is not exposed is refused, and the home node says whom it refused.
  auto refused = annex_swarm({"connect", "home", "web", "--state-dir", h3.state_dir().string()});
  BOOST_TEST(refused.exit_code == 1);
  BOOST_TEST(refused.err.find("nothing named 'web' is exposed") != std::string::npos, refused.err);
  BOOST_TEST(h2.log().find(h3.node_id()) != std::string::npos);
  // A node of another swarm, on the laptop's network, finds no way in.
  auto outsider = std::make_unique<DaemonProcess>(
      lab.tmp.path() / "state-outsider",
      std::vector<std::string>{"--bootstrap", "11.0.0.10:4224", "--nat", "none", "--port", "4225", "--swarm",
                               trim(annex_swarm({"swarm", "new"}).out), "--lookup-timeout", "5s"},
      std::vector<std::string>{"ip", "netns", "exec", std::string(kPrefix) + "-h3"});
  BOOST_REQUIRE(outsider->wait_ready());
  auto stranger = annex_swarm({"connect", h2.node_id(), "ssh", "--state-dir", outsider->state_dir().string()});
  BOOST_TEST(stranger.exit_code == 1);
  BOOST_TEST(!stranger.err.empty());
  BOOST_TEST(h2.status()["peers_served"].value("tunnels_open", 0) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
