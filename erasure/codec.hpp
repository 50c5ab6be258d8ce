#pragma once
// Erasure coding for swarm stores that keep an object as K data shares and M parity
// shares on K+M nodes: a systematic Reed-Solomon code over GF(2^8) whose parity rows are a
// Cauchy matrix (ISA-L). Any K of the K+M units of a segment rebuild the others. Cauchy,
// because every square submatrix of a Cauchy matrix is invertible, which ISA-L's
// Vandermonde matrices are not once M passes a few.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/bytes.hpp"
#include "protocol/result.hpp"

namespace annexswarm::erasure {

// K data shares and M parity shares, written "K+M" (as in `shares=4+2`).
struct ShareShape {
  unsigned k = 0;
  unsigned m = 0;
  static constexpr unsigned kMaxData = 32;
  static constexpr unsigned kMaxParity = 16;
  unsigned n() const { return k + m; }
  std::string text() const { return std::to_string(k) + "+" + std::to_string(m); }
  // "4+2": 1 <= K <= kMaxData, 1 <= M <= kMaxParity; the error says what is accepted.
  static Result<ShareShape> parse(std::string_view text);
  friend bool operator==(const ShareShape&, const ShareShape&) = default;
};

// Rebuilds chosen units of a segment from K others, with the tables for that choice
// computed once: a download or a repair that keeps the same holders reuses them.
class Rebuilder {
public:
  const std::vector<unsigned>& from() const { return from_; }
  const std::vector<unsigned>& wanted() const { return wanted_; }
  // `from_units[i]` holds unit from()[i], `out[j]` receives unit wanted()[j], `len` bytes each.
  void run(std::size_t len, const std::uint8_t* const* from_units, std::uint8_t* const* out) const;

private:
  friend class Codec;
  unsigned k_ = 0;
  std::vector<unsigned> from_;
  std::vector<unsigned> wanted_;
  Bytes tables_;
};

class Codec {
public:
  explicit Codec(ShareShape shape);
  const ShareShape& shape() const { return shape_; }
  // The M parity units of a segment from its K data units, `len` bytes each.
  void encode(std::size_t len, const std::uint8_t* const* data, std::uint8_t* const* parity) const;
  // Tables to rebuild units `wanted` (any of 0..n-1) from the K distinct units `from`.
  Result<Rebuilder> rebuilder(std::vector<unsigned> from, std::vector<unsigned> wanted) const;

private:
  ShareShape shape_;
  Bytes matrix_;         // n x k: identity, then the Cauchy rows
  Bytes encode_tables_;  // ISA-L's expanded tables for the parity rows
};

}  // namespace annexswarm::erasure
