// The commands that ask a running node (whereis, discover, status, peers, get): shared by
// annex-swarm, which starts fast because it loads no DHT or TLS library, and by
// annex-swarm-node, which runs the node itself.
#include "app/client_commands.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "discovery/commands.hpp"
#include "node/config.hpp"

namespace annexswarm::app {
namespace fs = std::filesystem;

namespace {
constexpr int kUsageError = 2;
}  // namespace

fs::path default_state_dir() {
  // Set where one node serves a whole machine or container (the image sets /state), so
  // every client there finds it without --state-dir.
  if (const char* set = std::getenv("ANNEX_SWARM_STATE_DIR"); set && *set) return fs::path(set);
  if (::geteuid() == 0) return "/var/lib/annex-swarm";
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg && *xdg) return fs::path(xdg) / "annex-swarm";
  if (const char* home = std::getenv("HOME"); home && *home)
    return fs::path(home) / ".local" / "state" / "annex-swarm";
  return fs::path("annex-swarm-state");
}

ParsedArgs parse_args(int argc, char** argv, int first, const std::vector<std::string>& flags) {
  ParsedArgs out;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      out.positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    auto eq = name.find('=');
    bool is_flag = std::find(flags.begin(), flags.end(), name) != flags.end();
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (!is_flag) {
      if (i + 1 >= argc) {
        out.errors.push_back("--" + name + " needs a value");
        continue;
      }
      value = argv[++i];
    }
    out.options.emplace_back(name, value);
  }
  return out;
}

bool is_client_command(const std::string& command) {
  return command == "whereis" || command == "discover" || command == "status" || command == "health" || command == "peers" ||
         command == "get" || command == "trash" || command == "restore" || command == "repair" || command == "connect";
}

int run_lookup(const std::string& command, int argc, char** argv) {
  auto args = parse_args(argc, argv, 2, {"json", "help", "unverified", "all"});
  cli::LookupOptions options;
  std::string to, store;
  bool unverified = false, all = false;
  std::chrono::seconds window{300};
  options.state_dir = default_state_dir();
  for (const auto& [name, value] : args.options) {
    if (name == "state-dir") options.state_dir = value;
    else if (name == "json") options.json = true;
    else if (name == "format" && command == "discover") options.format = value;
    else if (name == "to" && command == "get") to = value;
    else if (name == "unverified" && command == "get") unverified = true;
    else if (name == "store" && (command == "restore" || command == "repair")) store = value;
    else if (name == "all" && command == "repair") all = true;
    else if (name == "window" && command == "health") {
      auto d = parse_duration(value);
      if (!d) {
        std::cerr << "annex-swarm: --window " << value << ": " << d.error() << "\n";
        return kUsageError;
      }
      window = *d;
    }
    else if (name == "help") {
      std::cout << "see 'annex-swarm help'\n";
      return 0;
    } else {
      std::cerr << "annex-swarm: unknown option --" << name << " for " << command << "\n";
      return kUsageError;
    }
  }
  for (const auto& e : args.errors) {
    std::cerr << "annex-swarm: " << e << "\n";
    return kUsageError;
  }
  if (command == "connect") {
    if (args.positional.empty() || args.positional.size() > 2) {
      std::cerr << "annex-swarm: connect takes TARGET [SERVICE] (see 'annex-swarm help')\n";
      return kUsageError;
    }
    return cli::connect(options, args.positional[0], args.positional.size() > 1 ? args.positional[1] : "ssh");
  }
  std::size_t want =
      (command == "whereis" || command == "discover" || command == "get" || command == "restore" || command == "repair") ? 1 : 0;
  if (all) want = 0;  // repair --all
  if (args.positional.size() != want) {
    std::cerr << "annex-swarm: " << command << " takes " << (want ? "one argument" : "no arguments")
              << " (see 'annex-swarm help')\n";
    return kUsageError;
  }
  if (command == "get") {
    if (to.empty()) {
      std::cerr << "annex-swarm: get needs --to PATH\n";
      return kUsageError;
    }
    return cli::get(options, args.positional[0], to, unverified);
  }
  if (command == "whereis") return cli::whereis(options, args.positional[0]);
  if (command == "discover") return cli::discover(options, args.positional[0]);
  if (command == "status") return cli::status(options);
  if (command == "health") return cli::health(options, window);
  if (command == "trash") return cli::trash(options);
  if (command == "restore") {
    if (store.empty()) {
      std::cerr << "annex-swarm: restore needs --store UUID (annex-swarm trash lists them)\n";
      return kUsageError;
    }
    return cli::restore(options, args.positional[0], store);
  }
  if (command == "repair") {
    if (store.empty()) {
      std::cerr << "annex-swarm: repair needs --store UUID (the erasure-coded remote's uuid: git config remote.NAME.annex-uuid)\n";
      return kUsageError;
    }
    if (all) return cli::repair_all(options, store);
    return cli::repair(options, args.positional[0], store);
  }
  return cli::peers(options);
}

}  // namespace annexswarm::app
