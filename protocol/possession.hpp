#pragma once
// Proof of possession (the PROVE frame): a challenge is a nonce and ranges of an object,
// and its answer, peer::prove_mac over those ranges, only a holder of the same bytes can
// give. Challenges are made from a seed, so a node can keep many for later (an audit of
// what it stored) as one seed and their answers.
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "protocol/bytes.hpp"
#include "protocol/result.hpp"

namespace annexswarm {

inline constexpr std::uint64_t kChallengeRange = 4096;  // bytes per range
inline constexpr std::size_t kChallengeRanges = 8;      // ranges per challenge

struct PossessionChallenge {
  Bytes nonce;  // 32 bytes
  std::vector<std::uint64_t> offsets, lengths;
  Bytes mac;  // the answer (empty until known)
};

// Challenge number `index` of `seed` over an object of `size` bytes (> 0): its nonce and
// kChallengeRanges ranges of kChallengeRange bytes (the whole object when smaller); no mac.
PossessionChallenge derive_challenge(ByteView seed, std::uint32_t index, std::uint64_t size);

// The answer to `challenge` from the file at `object`, for annex key `key`.
Result<Bytes> answer_challenge(std::string_view key, const std::filesystem::path& object,
                               const PossessionChallenge& challenge);

// Challenges 0..count-1 of `seed`, each with its answer from `object` (opened once); none
// for an empty object.
Result<std::vector<PossessionChallenge>> make_challenges(std::string_view key, const std::filesystem::path& object,
                                                         ByteView seed, std::size_t count);
// `count` challenges from a fresh random seed, each with its answer from `object`.
Result<std::vector<PossessionChallenge>> make_challenges(std::string_view key, const std::filesystem::path& object,
                                                         std::size_t count);

}  // namespace annexswarm
