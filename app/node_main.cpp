// annex-swarm-node: the whole command line (annex-swarm execs it for daemon, init, swarm
// and help), and git-annex-remote-swarm under that name.
#include "app/cli.hpp"

int main(int argc, char** argv) { return annexswarm::app::run(argc, argv, {}); }
