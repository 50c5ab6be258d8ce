#pragma once
#include "node/daemon.hpp"

namespace annexswarm::app {

// The whole command line of annex-swarm (and of git-annex-remote-swarm, by argv[0]).
// `hooks` reach the daemon; only the test build of the node sets any.
int run(int argc, char** argv, const TestHooks& hooks);

}  // namespace annexswarm::app
