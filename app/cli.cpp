// annex-swarm's command line: reads argv, the environment and the config file, and hands
// typed values to the libraries. main.cpp calls it; so does the test build of the node
// (tests/support/test_node_main.cpp), which alone can pass test hooks.
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "app/cli.hpp"
#include "app/client_commands.hpp"

#include "discovery/commands.hpp"
#include "discovery/special_remote.hpp"
#include "node/config.hpp"
#include "node/daemon.hpp"
#include "node/first_run.hpp"
#include "node/state_files.hpp"
#include "protocol/swarm_token.hpp"

namespace fs = std::filesystem;
using namespace annexswarm;
using namespace annexswarm::app;

namespace {

constexpr int kUsageError = 2;

std::optional<fs::path> default_config_file() {
  fs::path candidate;
  if (::geteuid() == 0) {
    candidate = "/etc/annex-swarm/annex-swarm.conf";
  } else if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg) {
    candidate = fs::path(xdg) / "annex-swarm" / "annex-swarm.conf";
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    candidate = fs::path(home) / ".config" / "annex-swarm" / "annex-swarm.conf";
  }
  std::error_code ec;
  if (!candidate.empty() && fs::exists(candidate, ec)) return candidate;
  return std::nullopt;
}

void print_usage(std::ostream& out) {
  out << "annex-swarm " ANNEX_SWARM_VERSION " - git-annex remotes as a swarm\n\n"
         "usage:\n"
         "  annex-swarm init [--repo PATH|--no-repo] [--swarm-file FILE] [--bootstrap HOST:PORT] [--config FILE] [--force]\n"
         "                                                  first run: write a config serving this repository\n"
         "  annex-swarm daemon [--config FILE] [settings]   run a node (SIGHUP reloads the config file)\n"
         "  annex-swarm swarm new                           print a new private swarm token\n"
         "  annex-swarm swarm public                        print the public swarm's token\n"
         "  annex-swarm whereis KEY [--json]                nodes and repositories announcing KEY\n"
         "  annex-swarm discover UUID [--json] [--format F] nodes serving annex repository UUID\n"
         "  annex-swarm status [--json]                     this node's state\n"
         "  annex-swarm peers [--json]                      swarm members this node can see\n"
         "  annex-swarm get KEY --to PATH [--unverified]    download KEY from every peer that has it\n"
         "  annex-swarm trash [--json]                      what this node's swarm stores removed (kept trash-grace)\n"
         "  annex-swarm restore KEY --store UUID            take a removed key back into its swarm store\n"
         "  annex-swarm repair KEY|--all --store UUID       rebuild lost shares of a key (or of every key) of an erasure-coded store\n"
         "  git-annex-remote-swarm                          git-annex's special remote (annex-swarm-node under that name)\n\n"
         "Every command takes --state-dir DIR to pick the node (default: " << default_state_dir().string()
      << ").\n"
         "whereis/discover/peers/get exit 0 when found, 1 when not found, 2 on error.\n\n"
         "daemon settings (also 'name = value' lines in the config file):\n";
  for (const auto& s : daemon_settings())
    out << "  --" << s.name << " " << s.value_hint << (s.repeatable ? " (repeatable)" : "") << "\n      "
        << s.help << "; default: " << s.default_text << "\n";
}

int run_daemon(int argc, char** argv, const TestHooks& hooks) {
  auto args = parse_args(argc, argv, 2, {"help"});
  DaemonConfig config;
  std::vector<std::string> errors = args.errors;
  // A config file is read when named (--config), or the default one when the command
  // line gives no setting at all: settings given there are the whole configuration.
  std::optional<fs::path> config_file;
  bool settings_given = false;
  for (const auto& [name, value] : args.options) {
    if (name == "help") {
      print_usage(std::cout);
      return 0;
    }
    if (name == "config") config_file = fs::path(value);
    else settings_given = true;
  }
  if (!config_file && !settings_given) config_file = default_config_file();
  for (const auto& p : args.positional) errors.push_back("unexpected argument '" + p + "'");
  if (config_file) {
    auto text = read_file(*config_file);
    if (!text) errors.push_back(text.error());
    else apply_config_text(config, *text, config_file->string(), errors);
  }
  for (const auto& [name, value] : args.options)
    if (name != "config") config.cli_settings.emplace_back(name, value);  // kept over the file on SIGHUP
  apply_cli_settings(config, config.cli_settings, errors);
  config.config_file = config_file;
  if (config.state_dir.empty()) config.state_dir = default_state_dir();
  config.state_dir = fs::absolute(config.state_dir);
  if (!errors.empty()) {
    for (const auto& e : errors) std::cerr << "annex-swarm: " << e << "\n";
    std::cerr << "annex-swarm: see 'annex-swarm daemon --help'\n";
    return kUsageError;
  }
  log::set_level(config.log_level);
  Daemon daemon(std::move(config), hooks);
  return daemon.run();
}

fs::path config_path_for_init() {
  if (::geteuid() == 0) return "/etc/annex-swarm/annex-swarm.conf";
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg) return fs::path(xdg) / "annex-swarm" / "annex-swarm.conf";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".config" / "annex-swarm" / "annex-swarm.conf";
  return "annex-swarm.conf";
}

int run_init(int argc, char** argv) {
  auto args = parse_args(argc, argv, 2, {"force", "no-repo", "no-nat", "help"});
  InitOptions options;
  options.config_file = config_path_for_init();
  options.state_dir = default_state_dir();
  options.repo = fs::current_path();
  std::vector<std::string> errors = args.errors;
  for (const auto& [name, value] : args.options) {
    if (name == "help") {
      print_usage(std::cout);
      return 0;
    } else if (name == "config") options.config_file = value;
    else if (name == "state-dir") options.state_dir = value;
    else if (name == "repo") options.repo = fs::path(value);
    else if (name == "no-repo") options.repo.reset();
    else if (name == "bootstrap") options.bootstrap.push_back(value);
    else if (name == "force") options.force = true;
    else if (name == "no-nat") options.probe_nat = false;
    else if (name == "swarm") {
      auto token = SwarmToken::parse(value);
      if (!token) errors.push_back("--swarm: " + token.error());
      else options.swarm = *token;
    } else if (name == "swarm-file") {
      // The token from a file (the first one in it), so it never shows in ps.
      DaemonConfig scratch;
      std::vector<std::string> problems;
      apply_setting(scratch, "swarm-file", value, problems, "--swarm-file");
      errors.insert(errors.end(), problems.begin(), problems.end());
      if (problems.empty()) options.swarm = scratch.swarms.front();
    } else {
      errors.push_back("unknown option --" + name + " for init");
    }
  }
  for (const auto& p : args.positional) errors.push_back("unexpected argument '" + p + "'");
  if (!errors.empty()) {
    for (const auto& e : errors) std::cerr << "annex-swarm: " << e << "\n";
    return kUsageError;
  }
  auto done = first_run(options);
  if (!done) {
    std::cerr << "annex-swarm: " << done.error() << "\n";
    return kUsageError;
  }
  std::cout << "wrote     " << fs::absolute(options.config_file).string() << "\n"
            << "node id   " << done->node_id << "\n"
            << "state dir " << fs::absolute(options.state_dir).string() << "\n"
            << "serving   " << (options.repo ? fs::absolute(*options.repo).string() + " (annex uuid " + done->repo_uuid + ")" : "nothing yet (add repo = PATH)") << "\n"
            << "swarm     " << (done->new_swarm ? "a new private swarm" : "the swarm given") << "; its token, to give to your other nodes only:\n"
            << "          " << done->swarm.str() << "\n"
            << "router    " << done->nat << "\n\n"
            << "next:\n"
            << "  start the node:        annex-swarm daemon" << (options.config_file == config_path_for_init() ? "" : " --config " + options.config_file.string())
            << "   (or: systemctl enable --now annex-swarm)\n"
            << "  on your other nodes:   put the token in a file only you can read, then\n"
            << "                         annex-swarm init --swarm-file FILE --bootstrap THIS_HOST:4224\n"
            << "  in a git-annex clone:  git annex initremote swarm type=external externaltype=swarm encryption=none\n"
            << "                         (see README, 'Using it from git-annex')\n";
  return 0;
}

int run_swarm(int argc, char** argv) {
  std::string sub = argc > 2 ? argv[2] : "";
  if (sub == "new") {
    std::cout << SwarmToken::generate().str() << "\n";
    return 0;
  }
  if (sub == "public") {
    std::cout << SwarmToken::public_swarm().str() << "\n";
    return 0;
  }
  std::cerr << "annex-swarm: usage: annex-swarm swarm new|public\n";
  return kUsageError;
}

}  // namespace

int annexswarm::app::run(int argc, char** argv, const TestHooks& hooks) {
  // A peer or client that hangs up must cost an error on that connection, not the node.
  std::signal(SIGPIPE, SIG_IGN);
  // Installed (or linked) as git-annex-remote-swarm, this binary is git-annex's special remote.
  if (fs::path(argv[0]).filename() == "git-annex-remote-swarm") {
    std::ios::sync_with_stdio(false);
    return remote::run(std::cin, std::cout, default_state_dir());
  }
  std::string command = argc > 1 ? argv[1] : "help";
  try {
    if (command == "daemon") return run_daemon(argc, argv, hooks);
    if (command == "init") return run_init(argc, argv);
    if (command == "swarm") return run_swarm(argc, argv);
    if (is_client_command(command)) return run_lookup(command, argc, argv);
    if (command == "help" || command == "--help" || command == "-h") {
      print_usage(std::cout);
      return 0;
    }
    if (command == "version" || command == "--version") {
      std::cout << "annex-swarm " ANNEX_SWARM_VERSION "\n";
      return 0;
    }
    std::cerr << "annex-swarm: unknown command '" << command << "' (see 'annex-swarm help')\n";
    return kUsageError;
  } catch (const std::exception& e) {
    std::cerr << "annex-swarm: " << e.what() << "\n";
    return kUsageError;
  }
}
