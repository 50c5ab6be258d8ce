#pragma once
// Debian's sshd as a home server's, for the tests of git over the swarm (issue 18): a
// throwaway host key and one user key, password logins off, on 127.0.0.1 of the host or of
// a network namespace (then run through `ip netns exec NS`, on a port given).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "node/subprocess.hpp"
#include "tests/support/test_support.hpp"

namespace annexswarm::test {

class Sshd {
public:
  static constexpr const char* kBinary = "/usr/sbin/sshd";
  static bool available() { return std::filesystem::exists(kBinary) && ::geteuid() == 0; }

  // `prefix` runs it elsewhere (["ip", "netns", "exec", NS]); port 0: a free one of the host.
  Sshd(const std::filesystem::path& dir, std::vector<std::string> prefix = {}, std::uint16_t port = 0)
      : dir_(dir), port_(port ? port : free_port()) {
    namespace fs = std::filesystem;
    fs::create_directories(dir_);
    fs::create_directories("/run/sshd");  // its privilege separation directory
    for (const auto& key : {"host_key", "user_key"})
      BOOST_REQUIRE(run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", (dir_ / key).string()}).exit_code == 0);
    fs::copy_file(dir_ / "user_key.pub", dir_ / "authorized_keys");
    std::ofstream(dir_ / "sshd_config") << "Port " << port_ << "\nListenAddress 127.0.0.1\nHostKey " << (dir_ / "host_key").string()
                                         << "\nPidFile " << (dir_ / "sshd.pid").string() << "\nAuthorizedKeysFile "
                                         << (dir_ / "authorized_keys").string()
                                         << "\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                                            "StrictModes no\nPermitRootLogin prohibit-password\n";
    prefix.insert(prefix.end(), {kBinary, "-D", "-e", "-f", (dir_ / "sshd_config").string()});
    pid_ = spawn_process(prefix, (dir_ / "sshd.log").string());
    BOOST_REQUIRE(pid_ > 0);
    BOOST_REQUIRE_MESSAGE(wait_until([&] { return log().find("Server listening on") != std::string::npos; },
                                     std::chrono::seconds(20)),
                          "sshd did not start:\n" << log());
  }
  ~Sshd() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  Sshd(const Sshd&) = delete;
  Sshd& operator=(const Sshd&) = delete;

  std::uint16_t port() const { return port_; }
  std::filesystem::path user_key() const { return dir_ / "user_key"; }
  std::string log() const {
    std::ifstream in(dir_ / "sshd.log");
    return {std::istreambuf_iterator<char>(in), {}};
  }

  // An ssh config naming HOST reached through `annex-swarm connect TARGET` of the node with
  // that state dir, and an `ssh` in BIN that reads it: git and git-annex run `ssh` from PATH
  // (git-annex 10.20230126 ignores GIT_SSH_COMMAND), which reads the user's ~/.ssh/config as
  // the README's stanza would be; with BIN ahead on PATH, it reads this one instead.
  void write_client_config(const std::filesystem::path& bin, const std::string& host, const std::string& target,
                           const std::filesystem::path& state_dir) const {
    namespace fs = std::filesystem;
    fs::create_directories(bin);
    auto config = bin / "ssh_config";
    std::ofstream(config) << "Host " << host << "\n  ProxyCommand timeout 120 " << ANNEX_SWARM_BIN << " connect "
                          << target << " --state-dir " << state_dir.string() << "\n  IdentityFile "
                          << user_key().string()
                          << "\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n";
    std::ofstream(bin / "ssh") << "#!/bin/sh\nexec /usr/bin/ssh -F '" << config.string() << "' \"$@\"\n";
    fs::permissions(bin / "ssh", fs::perms::owner_all);
  }

private:
  static std::uint16_t free_port() {  // bind one, let it go, hand it to sshd
    int probe = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(probe, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(probe);
    return ntohs(addr.sin_port);
  }

  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  int pid_ = -1;
};

}  // namespace annexswarm::test
