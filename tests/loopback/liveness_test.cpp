// Nothing hangs: real daemons on 127.0.0.1 facing silent sockets, frozen seeders (SIGSTOP),
// a low file-descriptor limit, callers that go away, and a daemon that stops answering.
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "protocol/swarm_token.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// A TCP connection to 127.0.0.1:port from `source` (another loopback address, so what it
// does counts against that address, not the members'), or -1.
int connect_from(const char* source, std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &from.sin_addr);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

double cpu_seconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  auto fields = text.substr(text.rfind(')') + 2);
  std::istringstream in(fields);
  std::string skip;
  for (int i = 0; i < 11; ++i) in >> skip;  // fields 3..13
  double user = 0, system = 0;
  in >> user >> system;
  return (user + system) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct Swarm {
  TempDir dir;
  std::string swarm = SwarmToken::generate().str();
  std::unique_ptr<DaemonProcess> first;
  std::string bootstrap;
  std::string content;
  std::string key;

  explicit Swarm(std::size_t size = 24u << 20) {
    std::mt19937_64 rng(11);
    content.resize(size);
    for (std::size_t i = 0; i + 8 <= content.size(); i += 8) {
      auto v = rng();
      std::memcpy(&content[i], &v, 8);
    }
    first = start("first", {"--bootstrap", "none"});
    bootstrap = "127.0.0.1:" + std::to_string(first->port());
  }
  std::unique_ptr<DaemonProcess> start(const std::string& name, std::vector<std::string> args,
                                       std::vector<std::string> launcher = {}) {
    args.insert(args.end(), {"--swarm", swarm, "--stall-timeout", "5s"});
    if (bootstrap.size()) args.insert(args.end(), {"--bootstrap", bootstrap});
    if (launcher.empty()) return start_loopback_daemon(dir.path(), name, std::move(args));
    args.insert(args.end(), {"--port", "0", "--listen", "127.0.0.1", "--poll-interval", "1s"});
    auto d = std::make_unique<DaemonProcess>(dir.path() / ("state-" + name), args, launcher);
    BOOST_REQUIRE_MESSAGE(d->wait_ready(), "daemon " + name + " did not start:\n" + d->log());
    return d;
  }
  std::unique_ptr<DaemonProcess> seeder(const std::string& name, std::vector<std::string> extra = {},
                                        std::vector<std::string> launcher = {}) {
    auto repo_path = dir.path() / ("repo-" + name);
    auto repo = make_annex_repo(repo_path, {{"big.bin", content}});
    key = repo.key_of("big.bin");
    extra.insert(extra.end(), {"--repo", repo_path.string()});
    return start(name, extra, launcher);
  }
  bool announced_by(DaemonProcess& at, std::size_t providers) {
    auto out = annex_swarm({"whereis", key, "--json", "--state-dir", at.state_dir().string()});
    return out.exit_code == 0 && json::parse(out.out)["providers"].size() >= providers;
  }
  std::string read(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // `annex-swarm get` in the background; its output goes to a log file.
  pid_t spawn_get(DaemonProcess& at, const std::filesystem::path& to, const std::string& log) {
    return spawn_process({ANNEX_SWARM_BIN, "get", key, "--to", to.string(), "--json", "--state-dir",
                          at.state_dir().string()},
                         (dir.path() / log).string());
  }
};

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(liveness)

BOOST_AUTO_TEST_CASE(silent_and_half_handshake_connections_do_not_lock_members_out) {
  Swarm s(4u << 20);
  auto seeder = s.seeder("seeder", {"--max-peers", "4"});
  auto peer_port = seeder->status()["endpoints"][0]["port"].get<std::uint16_t>();
  // Four connections that say nothing, four that start a TLS handshake and stop: all
  // from another address than the member's.
  std::vector<int> hostile;
  const unsigned char half_hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
  for (int i = 0; i < 8; ++i) {
    int fd = connect_from("127.0.0.2", peer_port);
    BOOST_REQUIRE(fd >= 0);
    if (i >= 4) BOOST_REQUIRE(::send(fd, half_hello, sizeof half_hello, MSG_NOSIGNAL) > 0);
    hostile.push_back(fd);
  }
  BOOST_REQUIRE(wait_until([&] { return seeder->status()["peers_served"]["unauthenticated"].get<int>() == 8; }, 10s));
  // A member still gets in, and gets the object, within 15 s.
  auto member = s.start("member", {});
  BOOST_REQUIRE(wait_until([&] { return s.announced_by(*member, 1); }, 60s));
  auto to = s.dir.path() / "got";
  auto cli = s.spawn_get(*member, to, "get.log");
  int rc = -1;
  BOOST_REQUIRE_MESSAGE(wait_until([&] {
                          int status = 0;
                          if (::waitpid(cli, &status, WNOHANG) != cli) return false;
                          rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                          return true;
                        }, 15s),
                        "the member's get did not end within 15 s");
  BOOST_TEST(rc == 0, s.read(s.dir.path() / "get.log"));
  BOOST_TEST((s.read(to) == s.content));
  // The silent ones are cut at the handshake deadline.
  BOOST_TEST(wait_until([&] { return seeder->status()["peers_served"]["handshake_timeouts"].get<int>() >= 8; }, 20s));
  for (int fd : hostile) ::close(fd);
}

BOOST_AUTO_TEST_CASE(a_seeder_frozen_before_its_manifest_and_one_frozen_mid_transfer_cost_only_time) {
  Swarm s;
  auto frozen_early = s.seeder("early");
  auto frozen_late = s.seeder("late");
  auto healthy = s.seeder("healthy");
  auto downloader = s.start("downloader", {"--download-rate", "8M"});
  BOOST_REQUIRE(wait_until([&] { return s.announced_by(*downloader, 3); }, 60s));
  ::kill(frozen_early->pid(), SIGSTOP);  // accepts TCP (the kernel does), then says nothing
  auto to = s.dir.path() / "got";
  auto cli = s.spawn_get(*downloader, to, "get.log");
  BOOST_REQUIRE(wait_until([&] { return chunks_listed(to) >= 4; }, 60s));
  ::kill(frozen_late->pid(), SIGSTOP);
  int rc = wait_exit(cli);
  ::kill(frozen_early->pid(), SIGCONT);
  ::kill(frozen_late->pid(), SIGCONT);
  auto log = s.read(s.dir.path() / "get.log");
  BOOST_REQUIRE_MESSAGE(rc == 0, log);
  BOOST_TEST((s.read(to) == s.content));
  auto reply = json::parse(log.substr(log.find('{'), log.rfind('}') - log.find('{') + 1));
  BOOST_TEST(reply["bytes_from"][healthy->node_id()].get<std::uint64_t>() > 0u);
  // Nobody waited for the seeder frozen before its handshake: it served nothing, and the
  // download did not wait out its handshake deadline to choose a manifest.
  BOOST_TEST(!reply["bytes_from"].contains(frozen_early->node_id()), reply.dump());
}

BOOST_AUTO_TEST_CASE(the_only_seeder_frozen_mid_transfer_fails_clearly_and_keeps_the_partial_file) {
  Swarm s;
  auto seeder = s.seeder("seeder");
  auto downloader = s.start("downloader", {"--download-rate", "4M"});
  BOOST_REQUIRE(wait_until([&] { return s.announced_by(*downloader, 1); }, 60s));
  auto to = s.dir.path() / "got";
  auto cli = s.spawn_get(*downloader, to, "get.log");
  BOOST_REQUIRE(wait_until([&] { return chunks_listed(to) >= 4; }, 60s));
  ::kill(seeder->pid(), SIGSTOP);
  auto started = std::chrono::steady_clock::now();
  int rc = wait_exit(cli);
  auto took = std::chrono::steady_clock::now() - started;
  ::kill(seeder->pid(), SIGCONT);
  auto log = s.read(s.dir.path() / "get.log");
  BOOST_TEST(rc == 2, log);
  BOOST_TEST(log.find("stalled: no data for 5 s") != std::string::npos, log);
  // Bounded: the stall period, a redial and its handshake deadline, not forever.
  BOOST_TEST((took < 60s));
  BOOST_TEST(std::filesystem::exists(to.string() + ".part"));
  BOOST_TEST(chunks_listed(to) >= 4u);
  BOOST_TEST(downloader->status()["downloads"].get<int>() == 0);
}

BOOST_AUTO_TEST_CASE(many_idle_sockets_under_a_low_file_limit_neither_spin_the_daemon_nor_stop_it) {
  Swarm s(2u << 20);
  auto seeder = s.seeder("seeder", {}, {"prlimit", "--nofile=256:256", "--"});
  auto peer_port = seeder->status()["endpoints"][0]["port"].get<std::uint16_t>();
  rlimit mine{};
  ::getrlimit(RLIMIT_NOFILE, &mine);
  rlimit wanted{std::min<rlim_t>(mine.rlim_max, 4096), mine.rlim_max};
  ::setrlimit(RLIMIT_NOFILE, &wanted);
  std::vector<int> idle;
  for (int i = 0; i < 1000; ++i) {
    int fd = connect_from("127.0.0.3", peer_port);
    if (fd >= 0) idle.push_back(fd);
  }
  BOOST_TEST(idle.size() >= 900u);
  // Three seconds with 1,000 sockets at it: an accept loop that spins burns the core.
  auto before = cpu_seconds(seeder->pid());
  auto at = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(3s);  // measuring over a span of time is the point here
  double used = cpu_seconds(seeder->pid()) - before;
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - at).count();
  BOOST_TEST(used < 0.5 * wall, "the daemon used " << used << " s of CPU in " << wall << " s");
  auto status = seeder->status();  // it still answers
  BOOST_TEST(status["peers_served"]["links_refused"].get<int>() > 0);
  for (int fd : idle) ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &mine);
  // And a member's get works afterwards.
  auto member = s.start("member", {});
  BOOST_REQUIRE(wait_until([&] { return s.announced_by(*member, 1); }, 60s));
  auto out = annex_swarm({"get", s.key, "--to", (s.dir.path() / "got").string(), "--state-dir",
                          member->state_dir().string()});
  BOOST_TEST(out.exit_code == 0, out.err);
  BOOST_TEST((s.read(s.dir.path() / "got") == s.content));
}

BOOST_AUTO_TEST_CASE(a_download_whose_caller_went_away_stops_and_a_second_caller_joins_the_first) {
  Swarm s;
  auto seeder = s.seeder("seeder", {"--upload-rate", "4M"});
  auto downloader = s.start("downloader", {});
  BOOST_REQUIRE(wait_until([&] { return s.announced_by(*downloader, 1); }, 60s));
  auto to = s.dir.path() / "got";
  // The caller goes away (git-annex killed): the download stops, its partial file stays.
  auto cli = s.spawn_get(*downloader, to, "first.log");
  BOOST_REQUIRE(wait_until([&] { return chunks_listed(to) >= 2; }, 60s));
  ::kill(cli, SIGKILL);
  wait_exit(cli);
  BOOST_TEST(wait_until([&] { return downloader->status()["downloads"].get<int>() == 0; }, 10s));
  BOOST_TEST(std::filesystem::exists(to.string() + ".part"));
  BOOST_TEST(downloader->log().find("every caller has gone") != std::string::npos);
  // Two callers of the same key to the same file share one download, which resumes.
  auto served_before = seeder->status()["peers_served"]["bytes_served"].get<std::uint64_t>();
  auto a = s.spawn_get(*downloader, to, "a.log");
  BOOST_REQUIRE(wait_until([&] { return downloader->status()["downloads"].get<int>() == 1; }, 30s));
  auto b = s.spawn_get(*downloader, to, "b.log");
  BOOST_TEST(wait_exit(a) == 0, s.read(s.dir.path() / "a.log"));
  BOOST_TEST(wait_exit(b) == 0, s.read(s.dir.path() / "b.log"));
  BOOST_TEST((s.read(to) == s.content));
  auto served = seeder->status()["peers_served"]["bytes_served"].get<std::uint64_t>() - served_before;
  BOOST_TEST(served <= s.content.size(), "served " << served);  // once, and not what was resumed
}

BOOST_AUTO_TEST_CASE(a_daemon_that_stops_answering_makes_the_cli_fail_with_a_clear_error) {
  TempDir dir;
  // A control socket that accepts and then says nothing: a daemon stuck.
  int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  auto path = (dir.path() / "control.sock").string();
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  BOOST_REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  BOOST_REQUIRE(::listen(listener, 4) == 0);
  auto out = run_process({"env", "ANNEX_SWARM_CONTROL_TIMEOUT=2", ANNEX_SWARM_BIN, "status", "--state-dir",
                          dir.path().string()});
  BOOST_TEST(out.exit_code == 2);
  BOOST_TEST(out.err.find("did not answer for 2 s") != std::string::npos, out.err);
  ::close(listener);
}

BOOST_AUTO_TEST_CASE(daemons_stopped_with_member_links_open_and_relay_reservations_held_exit_cleanly) {
  // Under the sanitizer builds this is where use-after-free and leaks on shutdown show:
  // every daemon here is SIGTERMed while its pooled member links are open, one holding a
  // reservation on the relay, the relay serving it with a circuit used a moment ago.
  TempDir dir;
  auto swarm = SwarmToken::generate().str();
  auto relay = start_loopback_daemon(dir.path(), "relay", {"--bootstrap", "none", "--swarm", swarm, "--relay", "on"});
  auto bootstrap = "127.0.0.1:" + std::to_string(relay->port());
  std::string content(3 << 20, 'r');
  auto repo = make_annex_repo(dir.path() / "repo", {{"f.bin", content}});
  auto key = repo.key_of("f.bin");
  auto relayed = start_loopback_daemon(dir.path(), "relayed", {"--bootstrap", bootstrap, "--swarm", swarm, "--repo",
                                                               repo.path.string(), "--test-relay-only", "on"});
  auto down = start_loopback_daemon(dir.path(), "down", {"--bootstrap", bootstrap, "--swarm", swarm});
  BOOST_REQUIRE(wait_until([&] {
    return relayed->status()["relay"]["reservations_held"].size() == 1 &&
           annex_swarm({"whereis", key, "--state-dir", down->state_dir().string()}).exit_code == 0;
  }, 120s));
  auto to = dir.path() / "f.bin";
  auto out = annex_swarm({"get", key, "--to", to.string(), "--json", "--state-dir", down->state_dir().string()});
  BOOST_REQUIRE_MESSAGE(out.exit_code == 0, out.err);
  BOOST_TEST(json::parse(out.out)["bytes_from"][relayed->node_id()].get<std::uint64_t>() == content.size());
  BOOST_TEST(relay->status()["relay"]["bytes_relayed"].get<std::uint64_t>() >= content.size());
  // Links and the reservation are still up; each daemon's destructor SIGTERMs it and fails
  // the test unless it exits 0 with no sanitizer report. The relay goes first, under the
  // others' feet, then the node that held a reservation on it, then the downloader.
  relay.reset();
  relayed.reset();
  down.reset();
}

BOOST_AUTO_TEST_SUITE_END()
