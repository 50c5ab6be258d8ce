// Deterministic mutation run of the parsers of untrusted input: byte flips, truncations,
// insertions and splices of valid seeds. A crash or sanitizer report fails the test.
#include <cstdio>
#include <cstdlib>
#include <random>

#include "fuzz/parser_target.hpp"

int main(int argc, char** argv) {
  long iterations = argc > 1 ? std::atol(argv[1]) : 100000;
  auto seeds = annexswarm::fuzz::parser_seeds();
  std::mt19937_64 rng(20261126);
  for (const auto& s : seeds) annexswarm::fuzz::parse_untrusted(s.data(), s.size());
  for (long i = 0; i < iterations; ++i) {
    auto input = seeds[rng() % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !input.empty(); ++e) {
      std::size_t pos = rng() % input.size();
      switch (rng() % 5) {
        case 0: input[pos] ^= static_cast<std::uint8_t>(1u << (rng() % 8)); break;
        case 1: input[pos] = static_cast<std::uint8_t>(rng()); break;
        case 2: input.resize(pos); break;
        case 3: input.insert(input.begin() + static_cast<long>(pos), static_cast<std::uint8_t>(rng())); break;
        case 4: {
          const auto& other = seeds[rng() % seeds.size()];
          input.insert(input.begin() + static_cast<long>(pos), other.begin(), other.end());
          break;
        }
      }
    }
    annexswarm::fuzz::parse_untrusted(input.data(), input.size());
  }
  std::printf("%ld mutated inputs parsed without a crash\n", iterations);
  return 0;
}
