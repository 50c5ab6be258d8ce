#pragma once
// git-annex-remote-swarm: git-annex's external special remote protocol (VERSION 1, with
// the INFO extension, and ASYNC when ANNEX_SWARM_REMOTE_ASYNC=1) on stdin/stdout, served
// by the local annex-swarm daemon through its control socket. With ASYNC every job runs
// on its own thread with its own control connection; without it, requests are served
// one at a time and git-annex starts one process per job (-J4: four).
//
// The remote's annex UUID decides what it stands for:
//  - a UUID no node serves as a repository: a swarm store. STORE puts the object into the
//    local daemon's store for that UUID; CHECKPRESENT counts only copies in stores of that
//    UUID, confirmed by the nodes holding them; REMOVE drops it from all of them.
//  - the UUID of a repository some node serves (initremote --sameas=REPO): the remote
//    reaches that repository through the swarm. RETRIEVE fetches from its node and from
//    every other node with the key; CHECKPRESENT asks its node; STORE and REMOVE refuse.
#include <filesystem>
#include <istream>
#include <ostream>

namespace annexswarm::remote {

// Returns the exit status.
int run(std::istream& in, std::ostream& out, const std::filesystem::path& default_state_dir);

}  // namespace annexswarm::remote
