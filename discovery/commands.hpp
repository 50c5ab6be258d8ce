#pragma once
// CLI subcommands that ask a running node. Exit status: 0 found, 1 not found, 2 error.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace annexswarm::cli {

struct LookupOptions {
  std::filesystem::path state_dir;
  bool json = false;
  std::string format;  // discover only: a template such as '{host} {port}'
};

int whereis(const LookupOptions& options, const std::string& key);
int discover(const LookupOptions& options, const std::string& uuid);
int status(const LookupOptions& options);
// For a container's HEALTHCHECK or a monitor: exit 0 when the node answers and has had a
// DHT peer within `window` (a first node, with no bootstrap, may be alone), else 1; one
// line says which.
int health(const LookupOptions& options, std::chrono::seconds window);
int peers(const LookupOptions& options);
// What this node's swarm stores moved to the trash; taking one key back into its store.
int trash(const LookupOptions& options);
int restore(const LookupOptions& options, const std::string& key, const std::string& store);
// Rebuilds the missing shares of a key of an erasure-coded store onto other members.
int repair(const LookupOptions& options, const std::string& key, const std::string& store);
// Every key of the store whose share map the node keeps.
int repair_all(const LookupOptions& options, const std::string& store);

// The swarm rules: hand a signed document to the node (0 adopted or already held, 1
// refused, 2 error), or print the version in force.
int rules_push(const LookupOptions& options, const std::string& document, const std::string& public_keys);
int rules_show(const LookupOptions& options);

// A byte stream between stdin/stdout and SERVICE on TARGET (an annex repository UUID, a
// node id, or an alias), through this node: for ssh's ProxyCommand. 0 when the far side
// closed the stream, 1 when the tunnel could not be opened or broke, 2 on a usage error.
int connect(const LookupOptions& options, const std::string& target, const std::string& service);

// Downloads KEY into `to` through the daemon: 0 done, 1 no provider, 2 failed.
int get(const LookupOptions& options, const std::string& key, const std::string& to, bool unverified);

}  // namespace annexswarm::cli
