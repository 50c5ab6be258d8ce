#include "tests/support/test_support.hpp"

#include "node/identity.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

namespace annexswarm::test {
namespace fs = std::filesystem;

TestIdentity::TestIdentity()
    : identity(dht::crypto::generateIdentity("test", {}, kIdentityKeyBits)),
      credentials(TlsCredentials::from_identity(identity).value()),
      id(node_id_of(identity)) {}

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "annex-swarm-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  // git-annex makes object files read-only; make them removable first.
  for (auto it = fs::recursive_directory_iterator(path_, ec); it != fs::recursive_directory_iterator(); it.increment(ec))
    fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(path_, ec);
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void run_io_until(asio::io_context& io, const std::function<bool()>& condition, std::chrono::seconds deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (!condition() && std::chrono::steady_clock::now() < end) {
    io.restart();  // run_for stops the context whenever it runs out of work
    io.run_for(std::chrono::milliseconds(20));
  }
  BOOST_REQUIRE_MESSAGE(condition(), "timed out waiting on the io_context");
}

std::string sh(const fs::path& dir, const std::string& command) {
  auto out = run_process({"sh", "-c", "cd '" + dir.string() + "' && " + command});
  BOOST_REQUIRE_MESSAGE(out.exit_code == 0, "command failed: " + command + "\n" + out.out + out.err);
  return out.out;
}

std::size_t chunks_listed(const fs::path& to) {
  std::ifstream list(to.string() + ".part.chunks");
  std::size_t n = 0, index;
  while (list >> index) ++n;
  return n;
}

std::string AnnexRepo::key_of(const std::string& file) const {
  auto out = sh(path, "git annex lookupkey '" + file + "'");
  return out.substr(0, out.find('\n'));
}

AnnexRepo make_annex_repo(const fs::path& path, const std::vector<std::pair<std::string, std::string>>& files) {
  fs::create_directories(path);
  sh(path, "git init -q . && git config user.email test@example.org && git config user.name test && "
           "git annex init -q test");
  for (const auto& [name, content] : files) {
    std::ofstream(path / name, std::ios::binary) << content;
    sh(path, "git annex add -q '" + name + "'");
  }
  sh(path, "git commit -q --allow-empty -m files");
  AnnexRepo repo{path, ""};
  auto uuid = sh(path, "git config annex.uuid");
  repo.uuid = uuid.substr(0, uuid.find('\n'));
  return repo;
}

AnnexEnvironment::AnnexEnvironment() {
  auto bin = fs::path(ANNEX_SWARM_BIN).parent_path().string();
  ::setenv("PATH", (bin + ":" + std::getenv("PATH")).c_str(), 1);
  for (const char* v : {"GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"}) ::setenv(v, "test", 1);
  for (const char* v : {"GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"}) ::setenv(v, "test@example.org", 1);
}

std::string random_content(std::size_t size, unsigned seed) {
  std::string s(size, '\0');
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i + 8 <= size; i += 8) {
    auto v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

ProcessOutput annex_swarm(const std::vector<std::string>& args) {
  std::vector<std::string> argv{ANNEX_SWARM_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv);
}

DaemonProcess::DaemonProcess(fs::path state_dir, std::vector<std::string> args, std::vector<std::string> launcher)
    : state_dir_(std::move(state_dir)) {
  fs::create_directories(state_dir_);
  log_path_ = state_dir_ / "daemon.log";
  std::vector<std::string> argv = std::move(launcher);
  // Test hooks exist only in the test build of the node.
  bool hooked = std::any_of(args.begin(), args.end(), [](const std::string& a) { return a.starts_with("--test-"); });
  argv.insert(argv.end(), {hooked ? ANNEX_SWARM_TEST_NODE_BIN : ANNEX_SWARM_BIN, "daemon", "--state-dir", state_dir_.string(), "--lan-discovery", "off",
                           "--log-level", "debug"});
  argv.insert(argv.end(), args.begin(), args.end());
  pid_t pid = spawn_process(argv, log_path_.string());
  if (pid < 0) throw std::runtime_error("cannot start " + argv[0]);
  pid_ = pid;
}

DaemonProcess::~DaemonProcess() {
  // A daemon still running is stopped as a user would (SIGTERM) and must exit cleanly:
  // status 0, and no sanitizer report in its log (sanitizer builds of the suite).
  bool running = pid_ > 0;
  stop();
  auto status = wait_exit();
  auto text = log();
  bool report = text.find("ERROR: AddressSanitizer") != std::string::npos ||
                text.find("ERROR: LeakSanitizer") != std::string::npos ||
                text.find("WARNING: ThreadSanitizer") != std::string::npos ||
                text.find("runtime error:") != std::string::npos;
  if (report || (running && !killed_ && status != 0)) {
    auto tail = text.size() > 6000 ? text.substr(text.size() - 6000) : text;
    BOOST_ERROR("daemon " << state_dir_.filename().string() << " did not exit cleanly (status " << status
                          << (report ? ", sanitizer report" : "") << "):\n"
                          << tail);
  }
}

std::string DaemonProcess::ended_how() const {
  if (exit_status_ < 0) return "still running";
  return exit_status_ >= 128 ? "killed by signal " + std::to_string(exit_status_ - 128)
                             : "exit status " + std::to_string(exit_status_);
}

bool DaemonProcess::wait_ready() {
  return wait_until([&] {
    if (pid_ < 0) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      pid_ = -1;
      return true;
    }
    return annex_swarm({"status", "--state-dir", state_dir_.string()}).exit_code == 0;
  }) && pid_ > 0;
}

nlohmann::json DaemonProcess::status() const {
  auto out = annex_swarm({"status", "--json", "--state-dir", state_dir_.string()});
  BOOST_REQUIRE_MESSAGE(out.exit_code == 0, "status failed: " + out.err);
  return nlohmann::json::parse(out.out);
}

std::uint16_t DaemonProcess::port() const { return status()["port"].get<std::uint16_t>(); }
std::string DaemonProcess::node_id() const { return status()["node"].get<std::string>(); }

void DaemonProcess::stop() {
  if (pid_ > 0) ::kill(pid_, SIGTERM);
}

void DaemonProcess::kill_hard() {
  killed_ = true;
  if (pid_ > 0) ::kill(pid_, SIGKILL);
  wait_exit();
}

int DaemonProcess::wait_exit() {
  if (pid_ > 0) {
    int status = 0;
    waitpid(pid_, &status, 0);
    exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    pid_ = -1;
  }
  return exit_status_;
}

std::string DaemonProcess::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<DaemonProcess> start_loopback_daemon(const fs::path& dir, const std::string& name,
                                                     std::vector<std::string> args) {
  args.insert(args.end(), {"--port", "0", "--listen", "127.0.0.1", "--poll-interval", "1s"});
  auto d = std::make_unique<DaemonProcess>(dir / ("state-" + name), args);
  // Waited for before the message is made: it says how the daemon ended, and its log.
  bool ready = d->wait_ready();
  BOOST_REQUIRE_MESSAGE(ready, "daemon " + name + " did not start (" + d->ended_how() + "):\n" + d->log());
  return d;
}

}  // namespace annexswarm::test
