// annex-swarm: parse -> typed config -> build -> run (app/cli.cpp).
#include "app/cli.hpp"

int main(int argc, char** argv) { return annexswarm::app::run(argc, argv, {}); }
