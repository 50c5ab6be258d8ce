// annex-swarm-test-node: the annex-swarm binary with test hooks. The daemon takes
//   --test-fault corrupt-data     every chunk this node serves is corrupted
//   --test-fault claim-everything HAVE says "held" for any key; PROVE answers garbage
//   --test-relay-capture FILE     the relay appends every byte it copies to FILE
//   --test-relay-only on|off      advertise no direct endpoint; hold relay reservations
// before its usual settings. The annex-swarm binary itself has none of these.
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "app/cli.hpp"

int main(int argc, char** argv) {
  annexswarm::TestHooks hooks;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "annex-swarm-test-node: " << arg << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--test-fault") {
      auto v = value();
      if (v != "corrupt-data" && v != "claim-everything" && v != "none") {
        std::cerr << "annex-swarm-test-node: --test-fault: expected corrupt-data, claim-everything or none\n";
        return 2;
      }
      hooks.corrupt_data = v == "corrupt-data";
      hooks.claim_everything = v == "claim-everything";
    } else if (arg == "--test-relay-capture") {
      hooks.relay_capture = value();
    } else if (arg == "--test-relay-only") {
      hooks.relay_only = value() == "on";
    } else {
      rest.push_back(argv[i]);
    }
  }
  rest.push_back(nullptr);
  return annexswarm::app::run(static_cast<int>(rest.size() - 1), rest.data(), hooks);
}
