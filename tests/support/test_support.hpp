#pragma once
// Helpers for tests that drive real processes: temporary directories, git-annex
// repositories made with Debian's git-annex, and annex-swarm daemons.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "node/subprocess.hpp"
#include "transfer/tls_stream.hpp"
#include "protocol/result.hpp"

namespace annexswarm {
// Lets BOOST_TEST print a Result (found by ADL).
template <class T>
std::ostream& boost_test_print_type(std::ostream& os, const Result<T>& r) {
  return os << (r ? std::string("ok") : "error: " + r.error());
}
}  // namespace annexswarm

namespace annexswarm::test {

// A node identity for in-process TLS tests (RSA-2048, like the daemon's).
struct TestIdentity {
  TestIdentity();
  dht::crypto::Identity identity;
  std::shared_ptr<TlsCredentials> credentials;
  NodeId id;
};

class TempDir {
public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

private:
  std::filesystem::path path_;
};

// Polls `condition` until it holds or the deadline passes; never a fixed sleep.
bool wait_until(const std::function<bool()>& condition,
                std::chrono::milliseconds deadline = std::chrono::seconds(60));

// Runs an in-process io_context until `condition` holds; fails the test after `deadline`.
void run_io_until(asio::io_context& io, const std::function<bool()>& condition,
                  std::chrono::seconds deadline = std::chrono::seconds(60));

// Runs a shell command line in `dir`; fails the test when it exits non-zero.
std::string sh(const std::filesystem::path& dir, const std::string& command);

// A git-annex repository with some annexed files (name, bytes), committed.
struct AnnexRepo {
  std::filesystem::path path;
  std::string uuid;
  std::string key_of(const std::string& file) const;
};
AnnexRepo make_annex_repo(const std::filesystem::path& path,
                          const std::vector<std::pair<std::string, std::string>>& files);

ProcessOutput annex_swarm(const std::vector<std::string>& args);

// For suites that run git-annex: it finds git-annex-remote-swarm on PATH (the build's app
// directory goes first), and commits need an identity. Use as BOOST_TEST_GLOBAL_FIXTURE.
struct AnnexEnvironment {
  AnnexEnvironment();
};
// `size` bytes from a seeded generator: the same for the same seed.
std::string random_content(std::size_t size, unsigned seed);

// How many chunks a download in progress to `to` has finished (its .part.chunks list).
std::size_t chunks_listed(const std::filesystem::path& to);

// An annex-swarm daemon process, stopped with SIGTERM when destroyed; the test fails
// when it then exits with an error or its log holds a sanitizer report.
class DaemonProcess {
public:
  // `launcher` goes before the binary, e.g. {"ip", "netns", "exec", "lab-h1"}.
  DaemonProcess(std::filesystem::path state_dir, std::vector<std::string> args,
                std::vector<std::string> launcher = {});
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Waits until the control socket answers; returns false if the process died.
  bool wait_ready();
  nlohmann::json status() const;
  std::uint16_t port() const;
  std::string node_id() const;
  void stop();
  void kill_hard();  // SIGKILL: a crash, nothing saved on the way out
  int wait_exit();   // exit status once stopped or dead
  // How a daemon that did not start ended: "exit status N" or "killed by signal N".
  std::string ended_how() const;
  std::string log() const;
  const std::filesystem::path& state_dir() const { return state_dir_; }
  pid_t pid() const { return pid_; }

private:
  std::filesystem::path state_dir_;
  std::filesystem::path log_path_;
  pid_t pid_ = -1;
  int exit_status_ = -1;
  bool killed_ = false;
};

// A daemon on 127.0.0.1 with a free port and a 1 s repository poll, in `dir`/state-NAME;
// the test fails when it does not come up.
std::unique_ptr<DaemonProcess> start_loopback_daemon(const std::filesystem::path& dir, const std::string& name,
                                                     std::vector<std::string> args);

}  // namespace annexswarm::test
