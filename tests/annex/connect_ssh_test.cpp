// git over the swarm (issue 18) under Debian's real git-annex and openssh-server: a home
// node exposes its sshd; a laptop clones the repository over ssh:// with ProxyCommand
// `annex-swarm connect`, gets a file, and syncs a commit and a file back; fsck passes on
// both sides.
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "node/subprocess.hpp"
#include "protocol/swarm_token.hpp"
#include "tests/support/test_support.hpp"

using namespace annexswarm;
using namespace annexswarm::test;
namespace fs = std::filesystem;

namespace {

BOOST_TEST_GLOBAL_FIXTURE(AnnexEnvironment);

// Debian's sshd on 127.0.0.1, as the home server's: a throwaway host key, one user key.
class Sshd {
public:
  explicit Sshd(const fs::path& dir) : dir_(dir) {
    fs::create_directories(dir_);
    fs::create_directories("/run/sshd");  // its privilege separation directory
    for (const auto& key : {"host_key", "user_key"})
      BOOST_REQUIRE(run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", (dir_ / key).string()}).exit_code == 0);
    fs::copy_file(dir_ / "user_key.pub", dir_ / "authorized_keys");
    // A free port: bind one, let it go, hand it to sshd.
    int probe = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(probe, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::close(probe);
    std::ofstream(dir_ / "sshd_config") << "Port " << port_ << "\nListenAddress 127.0.0.1\nHostKey " << (dir_ / "host_key").string()
                                         << "\nPidFile " << (dir_ / "sshd.pid").string() << "\nAuthorizedKeysFile "
                                         << (dir_ / "authorized_keys").string()
                                         << "\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                                            "StrictModes no\nPermitRootLogin prohibit-password\n";
    pid_ = spawn_process({sshd_binary(), "-D", "-e", "-f", (dir_ / "sshd_config").string()}, (dir_ / "sshd.log").string());
    BOOST_REQUIRE(pid_ > 0);
    BOOST_REQUIRE_MESSAGE(wait_until([&] {
                            int s = ::socket(AF_INET, SOCK_STREAM, 0);
                            bool up = ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
                            ::close(s);
                            return up;
                          }, std::chrono::seconds(20)),
                          "sshd did not start");
  }
  ~Sshd() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  static std::string sshd_binary() { return "/usr/sbin/sshd"; }
  std::uint16_t port() const { return port_; }
  fs::path user_key() const { return dir_ / "user_key"; }

private:
  fs::path dir_;
  std::uint16_t port_ = 0;
  int pid_ = -1;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(git_over_the_swarm)

BOOST_AUTO_TEST_CASE(git_annex_clones_and_syncs_over_ssh_through_the_tunnel) {
  if (!fs::exists(Sshd::sshd_binary()) || ::geteuid() != 0) {
    BOOST_TEST_MESSAGE("skipped: needs root and Debian's openssh-server (scripts/setup test installs it)");
    return;
  }
  TempDir dir;
  Sshd sshd(dir.path() / "sshd");
  auto content = random_content(2u << 20, 41);
  auto home_repo = make_annex_repo(dir.path() / "home-repo", {{"photo.bin", content}});
  auto token = SwarmToken::generate().str();
  auto home = start_loopback_daemon(dir.path(), "home", {"--bootstrap", "none", "--swarm", token, "--expose.ssh",
                                                         "127.0.0.1:" + std::to_string(sshd.port())});
  auto laptop = start_loopback_daemon(dir.path(), "laptop", {"--bootstrap", "127.0.0.1:" + std::to_string(home->port()),
                                                             "--swarm", token, "--alias.home", home->node_id()});
  std::ofstream(dir.path() / "ssh_config") << "Host home.swarm\n  ProxyCommand timeout 120 " << ANNEX_SWARM_BIN
                                           << " connect home --state-dir " << laptop->state_dir().string()
                                           << "\n  IdentityFile " << sshd.user_key().string()
                                           << "\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n";
  // git and git-annex both run `ssh` from PATH, which reads the user's ~/.ssh/config (as the
  // README's stanza would be): here an ssh ahead on PATH reads the test's config instead.
  fs::create_directories(dir.path() / "bin");
  std::ofstream(dir.path() / "bin" / "ssh") << "#!/bin/sh\nexec /usr/bin/ssh -F '" << (dir.path() / "ssh_config").string()
                                            << "' \"$@\"\n";
  fs::permissions(dir.path() / "bin" / "ssh", fs::perms::owner_all);
  auto in = [&](const fs::path& where, const std::string& command) {
    return run_process({"sh", "-c", "cd '" + where.string() + "' && PATH='" + (dir.path() / "bin").string() +
                                        "':\"$PATH\" timeout 120 " + command + " 2>&1"});
  };
  // The laptop's node may not know home's contact record yet: the first clone is retried.
  ProcessOutput clone;
  BOOST_REQUIRE_MESSAGE(wait_until([&] {
                          fs::remove_all(dir.path() / "laptop-repo");
                          clone = in(dir.path(), "git clone -q ssh://root@home.swarm" + home_repo.path.string() + " laptop-repo");
                          return clone.exit_code == 0;
                        }, std::chrono::seconds(60)),
                        clone.out + sshd.user_key().string());
  auto laptop_repo = dir.path() / "laptop-repo";
  auto init = in(laptop_repo, "git annex init laptop");
  BOOST_REQUIRE_MESSAGE(init.exit_code == 0, init.out);
  BOOST_REQUIRE_MESSAGE(init.out.find("annex-ignore") == std::string::npos, init.out);
  auto get = in(laptop_repo, "git annex get photo.bin");
  BOOST_REQUIRE_MESSAGE(get.exit_code == 0, get.out);
  std::ifstream got(laptop_repo / "photo.bin", std::ios::binary);
  BOOST_TEST((std::string((std::istreambuf_iterator<char>(got)), {}) == content));
  // A commit and a file the other way.
  std::ofstream(laptop_repo / "notes.bin") << random_content(300000, 42);
  BOOST_REQUIRE(in(laptop_repo, "git annex add -q notes.bin && git commit -qm notes").exit_code == 0);
  auto sync = in(laptop_repo, "git annex sync -q --content");
  BOOST_REQUIRE_MESSAGE(sync.exit_code == 0, sync.out);
  BOOST_REQUIRE(in(home_repo.path, "git merge -q --ff-only synced/master || git merge -q --ff-only synced/main").exit_code == 0);
  BOOST_TEST(in(home_repo.path, "git annex fsck -q notes.bin").exit_code == 0);
  BOOST_TEST(in(laptop_repo, "git annex fsck -q").exit_code == 0);
}

BOOST_AUTO_TEST_SUITE_END()
