// `annex-swarm connect` between real daemons on 127.0.0.1: a node exposes a service (here a
// TCP server that answers what it was sent once the sender closed its half, as a git or
// ssh server would need half-close to work), a member reaches it by node id or by alias
// through its own node, byte for byte; a service that is not exposed is refused with why.
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "protocol/swarm_token.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;
namespace fs = std::filesystem;

namespace {

// A TCP socket listening on 127.0.0.1 at a free port; returns it, and the port in `port`.
int listen_on_loopback(std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  BOOST_REQUIRE(::listen(fd, 8) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

// Reads each connection to its end, then sends it all back reversed and closes.
class ReverseServer {
public:
  ReverseServer() {
    fd_ = listen_on_loopback(port_);
    thread_ = std::thread([this] {
      while (true) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;  // shut down
        ++served_;
        std::string got;
        char buf[65536];
        for (ssize_t n; (n = ::read(c, buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
        std::string back(got.rbegin(), got.rend());
        for (std::size_t at = 0; at < back.size();) {
          auto n = ::send(c, back.data() + at, back.size() - at, MSG_NOSIGNAL);
          if (n <= 0) break;
          at += static_cast<std::size_t>(n);
        }
        ::close(c);
      }
    });
  }
  ~ReverseServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::uint16_t port() const { return port_; }
  int served() const { return served_; }

private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<int> served_{0};
  std::thread thread_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(connect_command)

BOOST_AUTO_TEST_CASE(a_member_reaches_an_exposed_service_byte_for_byte_and_nothing_else) {
  ReverseServer service;
  TempDir dir;
  auto token = SwarmToken::generate().str();
  auto home = start_loopback_daemon(dir.path(), "home", {"--bootstrap", "none", "--swarm", token, "--expose.rev",
                                                         "127.0.0.1:" + std::to_string(service.port())});
  auto laptop = start_loopback_daemon(dir.path(), "laptop", {"--bootstrap", "127.0.0.1:" + std::to_string(home->port()),
                                                             "--swarm", token, "--alias.home", home->node_id()});
  auto request = random_content(3u << 20, 31);
  std::ofstream(dir.path() / "in") << request;
  // Fed through a pipe, as ssh does (a pipe's writer hanging up is not a file's end);
  // bounded, so a hang fails the test instead of stopping the suite.
  auto connect = [&](const std::string& target, const std::string& what) {
    return run_process({"sh", "-c", "cat '" + (dir.path() / "in").string() + "' | timeout 60 " +
                                        std::string(ANNEX_SWARM_BIN) + " connect " + target + " " + what +
                                        " --state-dir '" + laptop->state_dir().string() + "' > '" +
                                        (dir.path() / "out").string() + "'"});
  };
  auto read_out = [&] {
    std::ifstream in(dir.path() / "out", std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  // The laptop's node finds home's contact record once it is out: a first try may be early.
  ProcessOutput first;
  BOOST_REQUIRE_MESSAGE(wait_until([&] { return (first = connect(home->node_id(), "rev")).exit_code == 0; }),
                        first.err + laptop->log());
  std::string expected(request.rbegin(), request.rend());
  BOOST_TEST((read_out() == expected), "got " << read_out().size() << " bytes");
  // By alias, the same.
  auto by_alias = connect("home", "rev");
  BOOST_TEST(by_alias.exit_code == 0, by_alias.err);
  BOOST_TEST((read_out() == expected));
  BOOST_TEST(service.served() >= 2);
  // Not exposed: refused, and why.
  auto refused = connect("home", "web");
  BOOST_TEST(refused.exit_code == 1);
  BOOST_TEST(refused.err.find("nothing named 'web' is exposed") != std::string::npos, refused.err);
  // Nobody by that name.
  auto unknown = connect("nowhere", "rev");
  BOOST_TEST(unknown.exit_code == 1);
  BOOST_TEST(unknown.err.find("alias") != std::string::npos, unknown.err);
  BOOST_TEST(home->status()["peers_served"].value("tunnels_refused", 0) >= 1);
}

// A far node that goes away mid-tunnel is not a clean end: connect says why and exits 1, so
// a script (or ssh's user) can tell it from a finished session.
BOOST_AUTO_TEST_CASE(a_tunnel_broken_midway_ends_connect_with_an_error_not_a_clean_exit) {
  // A service that takes the connection and then neither reads, writes nor closes it.
  std::uint16_t held_port = 0;
  int held = listen_on_loopback(held_port);
  TempDir dir;
  auto token = SwarmToken::generate().str();
  auto home = start_loopback_daemon(dir.path(), "home", {"--bootstrap", "none", "--swarm", token, "--expose.hold",
                                                         "127.0.0.1:" + std::to_string(held_port)});
  auto laptop = start_loopback_daemon(dir.path(), "laptop", {"--bootstrap", "127.0.0.1:" + std::to_string(home->port()),
                                                             "--swarm", token});
  auto log = dir.path() / "connect.log";
  pid_t connect = -1;
  BOOST_REQUIRE_MESSAGE(wait_until([&] {
                          if (connect > 0) ::waitpid(connect, nullptr, 0);  // an early try that found no one
                          connect = spawn_process({ANNEX_SWARM_BIN, "connect", home->node_id(), "hold", "--state-dir",
                                                   laptop->state_dir().string()},
                                                  log.string());
                          bool gone = false;  // an early try gives up at once: try again
                          return wait_until([&] {
                                   gone = gone || ::waitpid(connect, nullptr, WNOHANG) == connect;
                                   return gone || home->status()["peers_served"].value("tunnels_open", 0) == 1;
                                 }, std::chrono::seconds(10)) && !gone;
                        }),
                        "no tunnel opened:\n" << laptop->log());
  home->kill_hard();
  int status = 0;
  BOOST_REQUIRE(::waitpid(connect, &status, 0) == connect);
  std::ifstream in(log);
  std::string said((std::istreambuf_iterator<char>(in)), {});
  BOOST_REQUIRE(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 1, said);
  BOOST_TEST(said.find("the tunnel broke") != std::string::npos, said);
  ::close(held);
}

BOOST_AUTO_TEST_SUITE_END()
