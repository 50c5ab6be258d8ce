#pragma once
// `annex-swarm init`: the first run on a home server. Writes a config that serves the
// annex repository given (or the current directory), makes the node's identity, and
// looks at the home router, so the user learns the node id, the token to share and the
// NAT situation before the daemon ever runs.
#include <filesystem>
#include <optional>
#include <string>

#include "node/config.hpp"

namespace annexswarm {

struct InitOptions {
  std::filesystem::path config_file;
  std::filesystem::path state_dir;
  std::optional<std::filesystem::path> repo;  // unset: none
  std::optional<SwarmToken> swarm;             // unset: a new private swarm
  std::vector<std::string> bootstrap;          // empty: the daemon's default
  bool force = false;                          // overwrite an existing config file
  bool probe_nat = true;
};

struct InitResult {
  std::string node_id;
  SwarmToken swarm = SwarmToken::public_swarm();  // replaced by the one written
  bool new_swarm = false;
  std::string repo_uuid;
  std::string nat;  // one line: what the home router allows
};

Result<InitResult> first_run(const InitOptions& options);

}  // namespace annexswarm
