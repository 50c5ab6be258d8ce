#include "discovery/special_remote.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <atomic>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "discovery/control_client.hpp"
#include "erasure/codec.hpp"
#include "protocol/annex_key.hpp"
#include "protocol/crypto.hpp"
#include "protocol/possession.hpp"
#include "protocol/records.hpp"
#include "protocol/swarm_token.hpp"

namespace annexswarm::remote {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Runs git with these arguments (no shell); its standard output into `out` when given.
// True when it exited 0.
bool run_git(const std::vector<std::string>& args, std::string* out) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return false;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // Never git-annex's protocol pipe: git gets nothing on stdin.
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> argv{const_cast<char*>("git")};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, "git", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (rc != 0) {
    ::close(pipe_fds[0]);
    return false;
  }
  char buf[4096];
  std::string text;
  while (true) {
    ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (text.size() < (1u << 20)) text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (out) *out = std::move(text);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// The object in the repository git-annex runs us in (the top of its work tree, with
// GIT_DIR set), when that repository has it.
std::optional<fs::path> local_object(const AnnexKey& key) {
  const char* gd = std::getenv("GIT_DIR");
  fs::path git_dir = gd && *gd ? fs::path(gd) : fs::path(".git");
  std::error_code ec;
  for (const auto& dir : {key.hash_dir_mixed(), key.hash_dir_lower()}) {
    auto p = git_dir / "annex" / "objects" / dir / key.str() / key.str();
    if (fs::is_regular_file(p, ec)) return p;
  }
  return std::nullopt;
}

// Proof-of-possession challenges made from our own copy (see protocol/possession.hpp).
json presence_challenges(const AnnexKey& key, const fs::path& object, std::size_t count) {
  json out = json::array();
  auto made = make_challenges(key.str(), object, count);
  if (!made) return out;
  for (const auto& c : *made)
    out.push_back({{"nonce", to_hex(c.nonce)}, {"offsets", c.offsets}, {"lengths", c.lengths}, {"mac", to_hex(c.mac)}});
  return out;
}

// Protocol lines must stay single lines whatever a message contains.
std::string one_line(std::string text) {
  for (auto& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return text;
}

// The first word of a line, and the rest after one space.
std::pair<std::string, std::string> split_word(const std::string& line) {
  auto sp = line.find(' ');
  if (sp == std::string::npos) return {line, ""};
  return {line.substr(0, sp), line.substr(sp + 1)};
}

// Writes whole lines to git-annex; shared by every job.
// With ANNEX_SWARM_REMOTE_TRACE=FILE set, both directions are logged there.
class Output {
public:
  explicit Output(std::ostream& out) : out_(out) {
    if (const char* trace = std::getenv("ANNEX_SWARM_REMOTE_TRACE"); trace && *trace)
      trace_.open(trace, std::ios::app);
  }
  void line(const std::string& text) {
    std::lock_guard lock(mutex_);
    out_ << text << '\n' << std::flush;
    if (trace_) trace_ << stamp() << " > " << text << std::endl;
  }
  void traced_input(const std::string& text) {
    std::lock_guard lock(mutex_);
    if (trace_) trace_ << stamp() << " < " << text << std::endl;
  }

private:
  static long stamp() {
    using namespace std::chrono;
    return static_cast<long>(duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count() % 1000000);
  }
  std::ostream& out_;
  std::mutex mutex_;
  std::ofstream trace_;
};

// One conversation with git-annex: a job with ASYNC, or the whole session without.
class Channel {
public:
  virtual ~Channel() = default;
  virtual void send(const std::string& line) = 0;
  // The next line git-annex sends to this job; nothing at the end of input.
  virtual std::optional<std::string> receive() = 0;
};

class DirectChannel final : public Channel {
public:
  DirectChannel(std::istream& in, Output& out) : in_(in), out_(out) {}
  void send(const std::string& line) override { out_.line(line); }
  std::optional<std::string> receive() override {
    std::string line;
    if (!std::getline(in_, line)) return std::nullopt;
    out_.traced_input(line);
    return line;
  }

private:
  std::istream& in_;
  Output& out_;
};

class JobChannel final : public Channel {
public:
  JobChannel(std::string job, Output& out) : job_(std::move(job)), out_(out) {}
  void send(const std::string& line) override { out_.line("J " + job_ + " " + line); }
  std::optional<std::string> receive() override {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return !lines_.empty() || closed_; });
    if (lines_.empty()) return std::nullopt;
    auto line = std::move(lines_.front());
    lines_.pop_front();
    return line;
  }
  void push(std::string line) {
    std::lock_guard lock(mutex_);
    lines_.push_back(std::move(line));
    ready_.notify_one();
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    ready_.notify_one();
  }

private:
  std::string job_;
  Output& out_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::string> lines_;
  bool closed_ = false;
};

// What every job shares: the remote's settings, learnt once.
struct Settings {
  std::mutex mutex;
  bool known = false;
  std::string swarm_id;              // the swarm's public id; empty: not named yet
  std::optional<SwarmToken> legacy;  // a token still kept in the remote's config (swarm=)
  std::string state_dir_given;       // statedir= still kept in the remote's config
  std::vector<std::string> pinned;   // nodes trusted to hold this remote's repository (pinned=)
  fs::path state_dir;
  std::string uuid;
  bool allow_unverified = false;
  std::string shares;                   // "K+M": an erasure-coded store; empty: whole copies
  std::optional<bool> stands_for_repo;  // learnt from the swarm on first use
};

class Session {
public:
  Session(Channel& channel, Settings& settings, const fs::path& default_state_dir)
      : ch_(channel), settings_(settings), default_state_dir_(default_state_dir) {}

  // Serves one request; false when the session must end.
  bool serve(const std::string& line) {
    auto [command, rest] = split_word(line);
    if (command == "INITREMOTE") return initremote(), true;
    if (command == "LISTCONFIGS") return listconfigs(), true;
    if (command == "PREPARE") return prepare(), true;
    if (command == "TRANSFER") return transfer(rest), true;
    if (command == "CHECKPRESENT") return checkpresent(rest), true;
    if (command == "REMOVE") return remove(rest), true;
    if (command == "WHEREIS") return whereis(rest), true;
    if (command == "GETAVAILABILITY") return ch_.send("AVAILABILITY GLOBAL"), true;
    if (command == "GETINFO") return getinfo(), true;
    if (command == "ERROR") {
      std::cerr << "git-annex-remote-swarm: git-annex reported an error: " << rest << "\n";
      return false;
    }
    ch_.send("UNSUPPORTED-REQUEST");
    return true;
  }

private:
  // Asks git-annex for a value (GETCONFIG, GETUUID...); empty when it sends nothing back.
  std::string ask(const std::string& request) {
    ch_.send(request);
    auto reply = ch_.receive();
    if (!reply) return "";
    auto [word, value] = split_word(*reply);
    return word == "VALUE" ? value : "";
  }

  // Reads the settings from git-annex; an error message when they are unusable. The
  // remote's config (kept in the git-annex branch, in every clone) names the swarm only
  // by its public id; the token stays with the daemons. A remote set up before that may
  // still hold swarm=TOKEN and statedir=DIR: both still work (see initremote).
  std::optional<std::string> load_settings() {
    {
      std::lock_guard lock(settings_.mutex);
      if (settings_.known) return std::nullopt;
    }
    std::optional<SwarmToken> legacy;
    std::string id = ask("GETCONFIG swarmid");
    if (auto token_text = ask("GETCONFIG swarm"); !token_text.empty()) {
      auto token = SwarmToken::parse(token_text);
      if (!token) return "swarm=" + token_text.substr(0, 12) + "...: " + token.error();
      legacy = *token;
      id = token->public_id();
    }
    if (!id.empty() && (id.size() != 32 || id.find_first_not_of("0123456789abcdef") != std::string::npos))
      return "swarmid=" + id + " is not a swarm id (32 hex digits; 'annex-swarm status' shows them)";
    auto state_dir = ask("GETCONFIG statedir");
    // This repository's own choice of daemon: git config swarm.statedir.
    auto local_dir = git_config_get("swarm.statedir");
    auto unverified = ask("GETCONFIG allow-unverified");
    std::vector<std::string> pinned;
    std::istringstream pins(ask("GETCONFIG pinned"));
    for (std::string node; std::getline(pins, node, ',');)
      if (!node.empty()) pinned.push_back(node);
    auto shares = ask("GETCONFIG shares");
    if (!shares.empty())
      if (auto shape = erasure::ShareShape::parse(shares); !shape) return shape.error();
    auto uuid = ask("GETUUID");
    std::lock_guard lock(settings_.mutex);
    settings_.shares = shares;
    settings_.pinned = pinned;
    settings_.swarm_id = id;
    settings_.legacy = legacy;
    settings_.state_dir_given = state_dir;
    settings_.state_dir = !state_dir.empty() ? fs::path(state_dir)
                          : !local_dir.empty() ? fs::path(local_dir) : default_state_dir_;
    settings_.uuid = uuid;
    settings_.allow_unverified = unverified == "yes" || unverified == "true";
    settings_.known = true;
    return std::nullopt;
  }

  std::string swarm_id() {
    std::lock_guard lock(settings_.mutex);
    return settings_.swarm_id;
  }
  std::string shares() {
    std::lock_guard lock(settings_.mutex);
    return settings_.shares;
  }

  // `git config --get NAME` in the repository git-annex runs us in; empty when unset.
  static std::string git_config_get(const std::string& name) {
    std::string out;
    if (!run_git({"config", "--get", name}, &out)) return "";
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
  }

  fs::path state_dir() {
    std::lock_guard lock(settings_.mutex);
    return settings_.state_dir;
  }
  std::string uuid() {
    std::lock_guard lock(settings_.mutex);
    return settings_.uuid;
  }

  // A request to the daemon; progress events go to `on_event`.
  Result<json> daemon(const json& request, const ControlClient::EventFn& on_event = {}) {
    auto client = ControlClient::connect(state_dir());
    if (!client) return Error{client.error()};
    auto reply = client->request(request, on_event);
    if (!reply) return reply;
    // Failures carry "error"; replies that report a partial outcome (remove) carry "ok".
    if (reply->contains("error")) return Error{reply->value("error", std::string("the daemon refused"))};
    return reply;
  }

  // Whether this remote's UUID is a repository some swarm node serves (--sameas).
  Result<bool> stands_for_repo() {
    {
      std::lock_guard lock(settings_.mutex);
      if (settings_.stands_for_repo) return *settings_.stands_for_repo;
    }
    auto reply = daemon({{"op", "discover"}, {"uuid", uuid()}});
    if (!reply) return Error{reply.error()};
    bool repo = !(*reply)["nodes"].empty();
    std::lock_guard lock(settings_.mutex);
    settings_.stands_for_repo = repo;
    return repo;
  }

  // initremote and enableremote. What goes into the git-annex branch is the swarm's public
  // id; a token given as swarm=TOKEN (or kept there by an older version) and a statedir=
  // path are taken out of it: the id is kept instead, the path goes to this repository's
  // git config (swarm.statedir), which never leaves it.
  void initremote() {
    if (auto problem = load_settings()) return ch_.send("INITREMOTE-FAILURE " + one_line(*problem));
    std::string id, state_dir_given;
    bool had_token = false;
    {
      std::lock_guard lock(settings_.mutex);
      id = settings_.swarm_id;
      had_token = settings_.legacy.has_value();
      state_dir_given = settings_.state_dir_given;
    }
    if (id.empty()) {
      // No swarm named: the local daemon's one private swarm.
      auto status = daemon({{"op", "status"}});
      if (!status)
        return ch_.send("INITREMOTE-FAILURE name the swarm with swarmid=ID, or start the annex-swarm daemon that "
                        "is in it (" + one_line(status.error()) + ")");
      std::vector<std::string> ids;
      for (const auto& s : (*status)["swarms"])
        if (!s.value("public", false)) ids.push_back(s.value("swarmid", std::string()));
      if (ids.size() != 1) {
        std::string list;
        for (const auto& i : ids) list += " " + i;
        return ch_.send(ids.empty() ? "INITREMOTE-FAILURE the annex-swarm daemon at " + state_dir().string() +
                                          " is in no private swarm; give it a token first (swarm-file)"
                                    : "INITREMOTE-FAILURE the daemon is in several swarms; name one with swarmid=ID "
                                      "(one of:" + list + ")");
      }
      id = ids[0];
    }
    if (!state_dir_given.empty()) {
      if (!run_git({"config", "swarm.statedir", state_dir_given}, nullptr))
        return ch_.send("INITREMOTE-FAILURE cannot record statedir in this repository's git config (git config "
                        "swarm.statedir)");
      ch_.send("SETCONFIG statedir ");
    }
    if (had_token) ch_.send("SETCONFIG swarm ");
    ch_.send("SETCONFIG swarmid " + id);
    // A remote standing for a repository (--sameas) pins the nodes serving it now: later
    // only they are believed on their word that they hold a key (when there is no local
    // copy to check them against). `git annex enableremote` pins again.
    if (auto nodes = daemon({{"op", "discover"}, {"uuid", uuid()}}); nodes && !(*nodes)["nodes"].empty()) {
      std::vector<std::string> pinned;
      std::string pins;
      for (const auto& n : (*nodes)["nodes"]) {
        pinned.push_back(n.value("node", std::string()));
        pins += (pins.empty() ? "" : ",") + pinned.back();
      }
      ch_.send("SETCONFIG pinned " + pins);
      std::lock_guard lock(settings_.mutex);
      settings_.pinned = std::move(pinned);
    }
    {
      std::lock_guard lock(settings_.mutex);
      settings_.swarm_id = id;
      settings_.legacy.reset();
    }
    ch_.send("INITREMOTE-SUCCESS");
  }

  void listconfigs() {
    ch_.send("CONFIG swarmid the swarm's public id, from 'annex-swarm status' (default: the daemon's one private swarm)");
    ch_.send("CONFIG swarm (older remotes) the swarm token: taken out of the git-annex branch, only its id is kept");
    ch_.send("CONFIG statedir state dir of the annex-swarm daemon to use (default " + default_state_dir_.string() +
             "; kept in git config swarm.statedir, not in the git-annex branch)");
    ch_.send("CONFIG allow-unverified yes to fetch WORM and URL keys, whose content cannot be checked");
    ch_.send("CONFIG shares K+M: keep each object as K data and M parity shares on K+M distinct swarm nodes "
             "(an erasure-coded store: any K rebuild it; for example 4+2 costs 1.5x and survives two lost nodes)");
    ch_.send("CONFIGEND");
  }

  void prepare() {
    if (auto problem = load_settings()) return ch_.send("PREPARE-FAILURE " + one_line(*problem));
    auto status = daemon({{"op", "status"}});
    if (!status)
      return ch_.send("PREPARE-FAILURE no annex-swarm daemon answers (" + one_line(status.error()) +
                      "); start one ('annex-swarm init' once, then 'annex-swarm daemon')");
    auto id = swarm_id();
    if (id.empty())
      return ch_.send("PREPARE-FAILURE the remote names no swarm; git annex enableremote it with swarmid=ID "
                      "('annex-swarm status' shows the ids of the daemon's swarms)");
    for (const auto& s : (*status)["swarms"])
      if (s.value("swarmid", std::string()) == id) return ch_.send("PREPARE-SUCCESS");
    ch_.send("PREPARE-FAILURE the annex-swarm daemon at " + state_dir().string() + " is not in swarm " + id +
             "; give it that swarm's token (a swarm = TOKEN line in its 0600 config, or swarm-file)");
  }

  static fs::path absolute(const std::string& file) {
    std::error_code ec;
    return fs::absolute(file, ec);
  }

  void transfer(const std::string& rest) {
    // TRANSFER STORE|RETRIEVE KEY FILE (the file name may contain spaces)
    auto [direction, after] = split_word(rest);
    auto [key, file] = split_word(after);
    if ((direction != "STORE" && direction != "RETRIEVE") || key.empty() || file.empty())
      return ch_.send("UNSUPPORTED-REQUEST");
    auto failure = [&](const std::string& why) { ch_.send("TRANSFER-FAILURE " + direction + " " + key + " " + one_line(why)); };
    if (auto problem = load_settings()) return failure(*problem);
    auto parsed = AnnexKey::parse(key);
    if (!parsed) return failure("not a valid annex key");
    // PROGRESS counts what git-annex can use: on RETRIEVE, the bytes in order at the start
    // of its file (which it hashes as they come), never going back.
    std::optional<std::uint64_t> told;
    auto progress = [&](const json& event) {
      auto bytes = event.contains("prefix") ? event.value("prefix", std::uint64_t{0}) : event.value("bytes", std::uint64_t{0});
      if (!event.contains("bytes") || (told && bytes <= *told)) return;
      told = bytes;
      ch_.send("PROGRESS " + std::to_string(bytes));
    };
    if (direction == "STORE") {
      auto repo = stands_for_repo();
      if (!repo) return failure(repo.error());
      if (*repo)
        return failure("this remote stands for repository " + uuid() +
                       "; store into it with its own remote (git annex copy --to it)");
      json request = {{"op", "store"}, {"key", key}, {"file", absolute(file).string()}, {"store", uuid()}};
      if (auto s = shares(); !s.empty()) request["shares"] = s;
      auto reply = daemon(request, progress);
      if (!reply) return failure(reply.error());
      return ch_.send("TRANSFER-SUCCESS STORE " + key);
    }
    // Chunks and encrypted keys cannot be checked here; git-annex checks them itself.
    bool unverified = parsed->checked_by_annex();
    {
      std::lock_guard lock(settings_.mutex);
      unverified = unverified || settings_.allow_unverified;
    }
    json get = {{"op", "get"}, {"key", key}, {"to", absolute(file).string()}, {"repo", uuid()}, {"unverified", unverified}};
    // git-annex hashes its file while it grows: the object goes into it in order, so the
    // two costs overlap (an object rebuilt from shares still arrives whole at the end).
    if (auto s = shares(); !s.empty()) get["shares"] = s;
    else get["in_order"] = true;
    auto reply = daemon(get, progress);
    if (!reply) return failure(reply.error());
    ch_.send("TRANSFER-SUCCESS RETRIEVE " + key);
  }

  void checkpresent(const std::string& key) {
    if (auto problem = load_settings()) return ch_.send("CHECKPRESENT-UNKNOWN " + key + " " + one_line(*problem));
    auto parsed = AnnexKey::parse(key);
    if (!parsed) return ch_.send("CHECKPRESENT-UNKNOWN " + key + " not a valid annex key");
    json request = {{"op", "present"}, {"key", key}, {"repo", uuid()}};
    // Before a drop git-annex asks with the object here: holders must prove they have it.
    // (Share holders are checked with the audits kept when the shares were stored.)
    if (auto s = shares(); !s.empty()) request["shares"] = s;
    else if (auto object = local_object(*parsed)) request["challenges"] = presence_challenges(*parsed, *object, 4);
    {
      std::lock_guard lock(settings_.mutex);
      request["pinned"] = settings_.pinned;
    }
    auto reply = daemon(request);
    if (!reply) return ch_.send("CHECKPRESENT-UNKNOWN " + key + " " + one_line(reply.error()));
    if (reply->value("present", false)) return ch_.send("CHECKPRESENT-SUCCESS " + key);
    if (reply->value("unknown", false)) {
      std::string why;
      auto text = [](const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
      const auto unproven = reply->value("unproven", json::object());
      const auto unreachable = reply->value("unreachable", json::object());
      for (const auto& [node, what] : unproven.items())
        why += (why.empty() ? "" : "; ") + node.substr(0, 12) + ": " + text(what);
      for (const auto& [node, what] : unreachable.items())
        why += (why.empty() ? "" : "; ") + node.substr(0, 12) + " did not answer: " + text(what);
      return ch_.send("CHECKPRESENT-UNKNOWN " + key + " not shown by its holders (" + one_line(why) + ")");
    }
    ch_.send("CHECKPRESENT-FAILURE " + key);
  }

  void remove(const std::string& key) {
    auto failure = [&](const std::string& why) { ch_.send("REMOVE-FAILURE " + key + " " + one_line(why)); };
    if (auto problem = load_settings()) return failure(*problem);
    if (!AnnexKey::parse(key)) return failure("not a valid annex key");
    auto repo = stands_for_repo();
    if (!repo) return failure(repo.error());
    if (*repo) return failure("this remote stands for repository " + uuid() + "; drop from that repository itself");
    json request = {{"op", "remove"}, {"key", key}, {"store", uuid()}};
    if (auto s = shares(); !s.empty()) request["shares"] = s;
    auto reply = daemon(request);
    if (!reply) return failure(reply.error());
    if (!reply->value("ok", false))
      return failure("some swarm stores could not remove it: " + reply->value("failed", json::object()).dump());
    ch_.send("REMOVE-SUCCESS " + key);
  }

  // Which swarm nodes hold the key for this remote, and how to reach them.
  void whereis(const std::string& key) {
    if (load_settings() || !AnnexKey::parse(key)) return ch_.send("WHEREIS-FAILURE");
    auto reply = daemon({{"op", "whereis"}, {"key", key}});
    if (!reply) return ch_.send("WHEREIS-FAILURE");
    std::map<std::string, std::string> reach;  // node id -> "host:port ..."
    if (auto peers = daemon({{"op", "peers"}})) {
      for (const auto& p : (*peers)["peers"]) {
        std::string eps;
        for (const auto& e : p.value("endpoints", json::array()))
          eps += (eps.empty() ? "" : " ") + e.value("host", std::string()) + ":" + std::to_string(e.value("port", 0));
        reach[p.value("node", std::string())] = eps;
      }
    }
    std::string nodes;
    for (const auto& p : (*reply)["providers"]) {
      if (p.value("repo", std::string()) != uuid()) continue;
      auto node = p.value("node", std::string());
      nodes += (nodes.empty() ? "" : "; ") + std::string("swarm node ") + node;
      if (!reach[node].empty()) nodes += " at " + reach[node];
    }
    if (nodes.empty()) return ch_.send("WHEREIS-FAILURE");
    ch_.send("WHEREIS-SUCCESS " + one_line(nodes));
  }

  void getinfo() {
    load_settings();
    ch_.send("INFOFIELD swarm");
    ch_.send("INFOVALUE " + swarm_id());
    ch_.send("INFOFIELD daemon state dir");
    ch_.send("INFOVALUE " + state_dir().string());
    if (auto status = daemon({{"op", "status"}})) {
      ch_.send("INFOFIELD node");
      ch_.send("INFOVALUE " + status->value("node", std::string()));
    }
    ch_.send("INFOEND");
  }

  Channel& ch_;
  Settings& settings_;
  fs::path default_state_dir_;
};

}  // namespace

int run(std::istream& in, std::ostream& out, const fs::path& default_state_dir) {
  Output output(out);
  Settings settings;
  output.line("VERSION 1");
  DirectChannel direct(in, output);
  Session plain(direct, settings, default_state_dir);
  // Until EXTENSIONS is answered, and for good when git-annex does not offer ASYNC,
  // requests are served one at a time on this thread.
  bool async = false;
  std::string line;
  while (!async) {
    auto next = direct.receive();
    if (!next) return 0;
    auto [command, rest] = split_word(*next);
    if (command == "EXTENSIONS") {
      // Off unless asked for: with git-annex 10.20230126, ASYNC made `testremote` fail
      // one check in ~600 in two full runs ("command not allowed at this time" for a reply
      // sent in order); one process per job had no such failure.
      const char* opt = std::getenv("ANNEX_SWARM_REMOTE_ASYNC");
      bool wanted = opt && std::string(opt) == "1";
      async = wanted && (" " + rest + " ").find(" ASYNC ") != std::string::npos;
      output.line(async ? "EXTENSIONS INFO ASYNC" : "EXTENSIONS INFO");
      continue;
    }
    if (!plain.serve(*next)) return 1;
  }
  // ASYNC: "J n REQUEST" lines; each job gets a thread that serves its requests in order.
  struct Job {
    std::unique_ptr<JobChannel> channel;
    std::thread thread;
  };
  std::map<std::string, Job> jobs;
  std::atomic<bool> failed = false;
  while (std::getline(in, line)) {
    output.traced_input(line);
    auto [j, after] = split_word(line);
    auto [job, request] = split_word(after);
    if (j != "J" || job.empty()) {
      if (split_word(line).first == "ERROR") break;
      output.line("ERROR expected a job number (J n) after ASYNC");
      continue;
    }
    auto it = jobs.find(job);
    if (it == jobs.end()) {
      auto channel = std::make_unique<JobChannel>(job, output);
      auto* ch = channel.get();
      std::thread thread([ch, &settings, &default_state_dir, &failed] {
        Session session(*ch, settings, default_state_dir);
        while (auto next = ch->receive())
          if (!session.serve(*next)) failed = true;
      });
      it = jobs.emplace(job, Job{std::move(channel), std::move(thread)}).first;
    }
    it->second.channel->push(request);
  }
  for (auto& [id, job] : jobs) job.channel->close();
  for (auto& [id, job] : jobs) job.thread.join();
  return failed ? 1 : 0;
}

}  // namespace annexswarm::remote
