#pragma once
// The command line's shared parts: argument splitting, the default state dir, and the
// commands that ask a running node (whereis, discover, status, peers, get).
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace annexswarm::app {

std::filesystem::path default_state_dir();

// Splits "--name=value" / "--name value"; `flags` lists options that take no value.
struct ParsedArgs {
  std::vector<std::pair<std::string, std::string>> options;
  std::vector<std::string> positional;
  std::vector<std::string> errors;
};
ParsedArgs parse_args(int argc, char** argv, int first, const std::vector<std::string>& flags);

bool is_client_command(const std::string& command);
// `annex-swarm COMMAND ...` for a client command; the process exit status.
int run_lookup(const std::string& command, int argc, char** argv);

}  // namespace annexswarm::app
