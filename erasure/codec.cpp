#include "erasure/codec.hpp"

#include <isa-l/erasure_code.h>

#include <algorithm>
#include <charconv>
#include <set>

namespace annexswarm::erasure {

Result<ShareShape> ShareShape::parse(std::string_view text) {
  auto bad = [&] {
    return Error{"shares=" + std::string(text) + " is not K+M with 1 <= K <= " + std::to_string(kMaxData) +
                 " data shares and 1 <= M <= " + std::to_string(kMaxParity) + " parity shares (for example 4+2)"};
  };
  auto plus = text.find('+');
  if (plus == std::string_view::npos) return bad();
  ShareShape s;
  auto k = text.substr(0, plus), m = text.substr(plus + 1);
  if (std::from_chars(k.data(), k.data() + k.size(), s.k).ptr != k.data() + k.size() || k.empty()) return bad();
  if (std::from_chars(m.data(), m.data() + m.size(), s.m).ptr != m.data() + m.size() || m.empty()) return bad();
  if (s.k < 1 || s.k > kMaxData || s.m < 1 || s.m > kMaxParity) return bad();
  return s;
}

void Rebuilder::run(std::size_t len, const std::uint8_t* const* from_units, std::uint8_t* const* out) const {
  if (wanted_.empty() || len == 0) return;
  ec_encode_data(static_cast<int>(len), static_cast<int>(k_), static_cast<int>(wanted_.size()),
                 const_cast<unsigned char*>(tables_.data()), const_cast<unsigned char**>(from_units),
                 const_cast<unsigned char**>(out));
}

Codec::Codec(ShareShape shape) : shape_(shape) {
  const int n = static_cast<int>(shape_.n()), k = static_cast<int>(shape_.k);
  matrix_.resize(static_cast<std::size_t>(n * k));
  gf_gen_cauchy1_matrix(matrix_.data(), n, k);
  encode_tables_.resize(static_cast<std::size_t>(32 * k * static_cast<int>(shape_.m)));
  ec_init_tables(k, static_cast<int>(shape_.m), matrix_.data() + k * k, encode_tables_.data());
}

void Codec::encode(std::size_t len, const std::uint8_t* const* data, std::uint8_t* const* parity) const {
  if (len == 0) return;
  ec_encode_data(static_cast<int>(len), static_cast<int>(shape_.k), static_cast<int>(shape_.m),
                 const_cast<unsigned char*>(encode_tables_.data()), const_cast<unsigned char**>(data),
                 const_cast<unsigned char**>(parity));
}

Result<Rebuilder> Codec::rebuilder(std::vector<unsigned> from, std::vector<unsigned> wanted) const {
  const unsigned k = shape_.k, n = shape_.n();
  if (from.size() != k) return Error{"rebuilding needs exactly " + std::to_string(k) + " units"};
  if (std::set<unsigned>(from.begin(), from.end()).size() != k ||
      std::any_of(from.begin(), from.end(), [&](unsigned i) { return i >= n; }))
    return Error{"rebuilding needs distinct units below " + std::to_string(n)};
  if (std::any_of(wanted.begin(), wanted.end(), [&](unsigned i) { return i >= n; }))
    return Error{"no unit above " + std::to_string(n - 1)};
  // The rows of the units we hold, inverted, map them back to the data units; a wanted
  // unit is then its own row of the code times that inverse.
  Bytes held(static_cast<std::size_t>(k) * k), inverse(static_cast<std::size_t>(k) * k);
  for (unsigned r = 0; r < k; ++r)
    std::copy_n(matrix_.begin() + static_cast<std::ptrdiff_t>(from[r] * k), k, held.begin() + r * k);
  if (gf_invert_matrix(held.data(), inverse.data(), static_cast<int>(k)) != 0)
    return Error{"the code cannot rebuild from these units"};  // never for a Cauchy code
  Bytes rows(static_cast<std::size_t>(wanted.size()) * k);
  for (std::size_t w = 0; w < wanted.size(); ++w)
    for (unsigned c = 0; c < k; ++c) {
      unsigned char sum = 0;
      for (unsigned j = 0; j < k; ++j) sum ^= gf_mul(matrix_[wanted[w] * k + j], inverse[j * k + c]);
      rows[w * k + c] = sum;
    }
  Rebuilder r;
  r.k_ = k;
  r.from_ = std::move(from);
  r.wanted_ = std::move(wanted);
  r.tables_.resize(32 * static_cast<std::size_t>(k) * std::max<std::size_t>(r.wanted_.size(), 1));
  if (!r.wanted_.empty())
    ec_init_tables(static_cast<int>(k), static_cast<int>(r.wanted_.size()), rows.data(), r.tables_.data());
  return r;
}

}  // namespace annexswarm::erasure
