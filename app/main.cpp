// annex-swarm: the commands that ask a running node (whereis, discover, status, peers,
// get) run here, in a binary that loads no DHT or TLS library, so each starts in a
// couple of milliseconds. Every other command (daemon, init, swarm, help) is the node
// binary's, annex-swarm-node beside this one, which takes over this process.
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "app/client_commands.hpp"

namespace fs = std::filesystem;

namespace {
fs::path node_binary() {
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  return (ec ? fs::path(".") : self.parent_path()) / "annex-swarm-node";
}
}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::string command = argc > 1 ? argv[1] : "help";
  if (annexswarm::app::is_client_command(command)) {
    try {
      return annexswarm::app::run_lookup(command, argc, argv);
    } catch (const std::exception& e) {
      std::cerr << "annex-swarm: " << e.what() << "\n";
      return 2;
    }
  }
  auto node = node_binary();
  std::vector<char*> args(argv, argv + argc);
  args.push_back(nullptr);
  ::execv(node.c_str(), args.data());
  std::cerr << "annex-swarm: cannot run " << node.string() << ": " << std::strerror(errno)
            << " (it is installed beside annex-swarm)\n";
  return 2;
}
