// Only here to carry the precompiled header (see ANNEX_SWARM_PCH in CMakeLists.txt).
