// annex-swarm's command line: reads argv, the environment and the config file, and hands
// typed values to the libraries. main.cpp calls it; so does the test build of the node
// (tests/support/test_node_main.cpp), which alone can pass test hooks.
#include <spawn.h>
#include <sys/wait.h>
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
#include "node/annex_repo.hpp"
#include "node/config.hpp"
#include "node/daemon.hpp"
#include "node/first_run.hpp"
#include "node/state_files.hpp"
#include "node/subprocess.hpp"
#include "node/swarm_rules.hpp"
#include "protocol/records.hpp"
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
         "  annex-swarm daemon [--config FILE] [settings]   run a node (SIGHUP reloads the config file);\n"
         "                                                  --check only checks the settings, state dir and repositories\n"
         "  annex-swarm swarm new                           print a new private swarm token\n"
         "  annex-swarm swarm public                        print the public swarm's token\n"
         "  annex-swarm whereis KEY [--json]                nodes and repositories announcing KEY\n"
         "  annex-swarm discover UUID [--json] [--format F] nodes serving annex repository UUID\n"
         "  annex-swarm status [--json]                     this node's state\n"
         "  annex-swarm health [--window 5m]                exit 0 if the node answers and had a DHT peer within the window\n"
         "  annex-swarm peers [--json]                      swarm members this node can see\n"
         "  annex-swarm get KEY --to PATH [--unverified]    download KEY from every peer that has it\n"
         "  annex-swarm trash [--json]                      what this node's swarm stores removed (kept trash-grace)\n"
         "  annex-swarm restore KEY --store UUID            take a removed key back into its swarm store\n"
         "  annex-swarm repair KEY|--all --store UUID       rebuild lost shares of a key (or of every key) of an erasure-coded store\n"
         "  annex-swarm connect TARGET [SERVICE]            stdin/stdout to SERVICE (default ssh) a node exposes;\n"
         "                                                  TARGET: repository UUID, node id or alias (ssh ProxyCommand)\n"
         "  annex-swarm rules sign FILE [--key FPR] [--output FILE.asc]\n"
         "                                                  check the swarm rules in FILE, then clear-sign them with gpg\n"
         "  annex-swarm rules push FILE.asc [--keys KEYS.asc] hand signed rules to this node, which adopts and spreads them\n"
         "  annex-swarm rules show [--json]                 the swarm rules in force and what they ask of this node\n"
         "  git-annex-remote-swarm                          git-annex's special remote (annex-swarm-node under that name)\n\n"
         "Every command takes --state-dir DIR to pick the node (default: " << default_state_dir().string()
      << "; ANNEX_SWARM_STATE_DIR sets it for every command).\n"
         "whereis/discover/peers/get exit 0 when found, 1 when not found, 2 on error.\n\n"
         "daemon settings (also 'name = value' lines in the config file):\n";
  for (const auto& s : daemon_settings())
    out << "  --" << s.name << " " << s.value_hint << (s.repeatable ? " (repeatable)" : "") << "\n      "
        << s.help << "; default: " << s.default_text << "\n";
}

int run_daemon(int argc, char** argv, const TestHooks& hooks) {
  auto args = parse_args(argc, argv, 2, {"help", "check"});
  DaemonConfig config;
  bool check_only = false;
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
    if (name == "check") check_only = true;
    else if (name == "config") config_file = fs::path(value);
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
    if (name != "config" && name != "check") config.cli_settings.emplace_back(name, value);  // kept over the file on SIGHUP
  apply_cli_settings(config, config.cli_settings, errors);
  config.config_file = config_file;
  if (config.state_dir.empty()) config.state_dir = default_state_dir();
  config.state_dir = fs::absolute(config.state_dir);
  if (!config.store_dir.empty()) config.store_dir = fs::absolute(config.store_dir);
  if (!errors.empty()) {
    for (const auto& e : errors) std::cerr << "annex-swarm: " << e << "\n";
    std::cerr << "annex-swarm: see 'annex-swarm daemon --help'\n";
    return kUsageError;
  }
  if (check_only) {
    // What would stop the node at start and not go away by itself: the settings, the
    // state dir, the repositories. Nothing is started; the container's entrypoint asks
    // this first, so such a mistake does not become a restart loop.
    std::vector<std::string> problems;
    if (auto r = prepare_state_dir(config.state_dir); !r) problems.push_back(r.error());
    for (std::size_t i = 0; i < config.repos.size(); ++i)
      if (auto repo = open_annex_repo(fs::absolute(config.repos[i])); !repo)
        problems.push_back(repo.error() + (i < config.repo_origins.size() && !config.repo_origins[i].empty()
                                               ? " (set at " + config.repo_origins[i] + ")"
                                               : ""));
    for (const auto& p : problems) std::cerr << "annex-swarm: " << p << "\n";
    if (!problems.empty()) return kUsageError;
    std::cout << "configuration ok: state dir " << config.state_dir.string() << ", " << config.repos.size()
              << " repositor" << (config.repos.size() == 1 ? "y" : "ies") << ", " << config.swarms.size() << " swarm(s)\n";
    return 0;
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

// Runs argv with this process's terminal (gpg may ask for a passphrase); its exit code.
int run_attached(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int run_rules(int argc, char** argv) {
  std::string sub = argc > 2 ? argv[2] : "";
  auto args = parse_args(argc, argv, 3, {"json", "help"});
  cli::LookupOptions options;
  options.state_dir = default_state_dir();
  std::string key, output, keys_file;
  for (const auto& [name, value] : args.options) {
    if (name == "state-dir") options.state_dir = value;
    else if (name == "json" && sub == "show") options.json = true;
    else if (name == "json" && sub == "push") options.json = true;
    else if (name == "key" && sub == "sign") key = value;
    else if (name == "output" && sub == "sign") output = value;
    else if (name == "keys" && sub == "push") keys_file = value;
    else {
      std::cerr << "annex-swarm: unknown option --" << name << " for rules " << sub << "\n";
      return kUsageError;
    }
  }
  for (const auto& e : args.errors) {
    std::cerr << "annex-swarm: " << e << "\n";
    return kUsageError;
  }
  if (sub == "show" && args.positional.empty()) return cli::rules_show(options);
  if ((sub == "sign" || sub == "push") && args.positional.size() == 1) {
    const auto file = args.positional[0];
    auto text = read_file(file);
    if (!text) {
      std::cerr << "annex-swarm: " << text.error() << "\n";
      return kUsageError;
    }
    if (sub == "sign") {
      // Mistakes are cheaper to find before the document is signed and spread.
      if (auto rules = parse_rules(*text); !rules) {
        std::cerr << "annex-swarm: " << file << " is not valid swarm rules:\n" << rules.error() << "\n";
        return 1;
      }
      if (output.empty()) output = file + ".asc";
      std::vector<std::string> gpg{"gpg", "--clearsign", "--output", output};
      if (!key.empty()) gpg.insert(gpg.end(), {"--local-user", key});
      gpg.push_back(file);
      auto rc = run_attached(gpg);
      if (rc != 0) {
        std::cerr << "annex-swarm: gpg could not sign " << file << (rc < 0 ? " (is gpg installed?)" : "") << "\n";
        return 1;
      }
      std::cout << "annex-swarm: signed " << output << "; 'annex-swarm rules push " << output
                << "' hands it to this node\n";
      return 0;
    }
    std::string keys;
    if (!keys_file.empty()) {
      auto k = read_file(keys_file);
      if (!k) {
        std::cerr << "annex-swarm: " << k.error() << "\n";
        return kUsageError;
      }
      keys = *k;
    } else {
      // The signer's public key, from the user's keyring: members check the signature with it.
      auto verified = run_process({"gpg", "--batch", "--status-fd", "1", "--verify", file});
      std::string fingerprint;
      if (auto at = verified.out.find("[GNUPG:] VALIDSIG "); at != std::string::npos) {
        auto line = verified.out.substr(at, verified.out.find('\n', at) - at);
        fingerprint = line.substr(line.rfind(' ') + 1);  // the primary key's, last
      }
      if (fingerprint.empty()) {
        std::cerr << "annex-swarm: gpg cannot verify " << file
                  << " with your keyring (is it signed? is the signer's key there?); or give --keys KEYS.asc\n";
        return 1;
      }
      // Minimal: no third-party signatures, so the key fits in the record.
      keys = run_process({"gpg", "--batch", "--armor", "--export-options", "export-minimal", "--export", fingerprint}).out;
    }
    if (text->size() > kMaxRulesDocument || keys.size() > kMaxRulesKeys) {
      std::cerr << "annex-swarm: too large to spread: the document may have " << kMaxRulesDocument
                << " bytes (it has " << text->size() << ") and the public keys " << kMaxRulesKeys << " (they have "
                << keys.size() << ")\n";
      return 1;
    }
    return cli::rules_push(options, *text, keys);
  }
  std::cerr << "annex-swarm: usage: annex-swarm rules sign FILE [--key FPR] | push FILE.asc [--keys KEYS.asc] | show [--json]\n";
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
    if (command == "rules") return run_rules(argc, argv);
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
