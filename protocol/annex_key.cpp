#include "protocol/annex_key.hpp"

#include <array>
#include <charconv>

#include "protocol/bytes.hpp"

namespace annexswarm {
namespace {

struct BackendHash {
  std::string_view name;  // without the trailing E of the extension-keeping variant
  HashAlgorithm hash;
  std::size_t hex_digits;
};

constexpr std::array<BackendHash, 21> kComputable{{
    {"MD5", HashAlgorithm::Md5, 32},
    {"SHA1", HashAlgorithm::Sha1, 40},
    {"SHA224", HashAlgorithm::Sha224, 56},
    {"SHA256", HashAlgorithm::Sha256, 64},
    {"SHA384", HashAlgorithm::Sha384, 96},
    {"SHA512", HashAlgorithm::Sha512, 128},
    {"SHA3_224", HashAlgorithm::Sha3_224, 56},
    {"SHA3_256", HashAlgorithm::Sha3_256, 64},
    {"SHA3_384", HashAlgorithm::Sha3_384, 96},
    {"SHA3_512", HashAlgorithm::Sha3_512, 128},
    {"BLAKE2B160", HashAlgorithm::Blake2b160, 40},
    {"BLAKE2B224", HashAlgorithm::Blake2b224, 56},
    {"BLAKE2B256", HashAlgorithm::Blake2b256, 64},
    {"BLAKE2B384", HashAlgorithm::Blake2b384, 96},
    {"BLAKE2B512", HashAlgorithm::Blake2b512, 128},
    {"BLAKE2BP512", HashAlgorithm::Blake2bp512, 128},
    {"BLAKE2S160", HashAlgorithm::Blake2s160, 40},
    {"BLAKE2S224", HashAlgorithm::Blake2s224, 56},
    {"BLAKE2S256", HashAlgorithm::Blake2s256, 64},
    {"BLAKE2SP224", HashAlgorithm::Blake2sp224, 56},
    {"BLAKE2SP256", HashAlgorithm::Blake2sp256, 64},
}};

bool is_lower_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool is_backend_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

std::optional<std::uint64_t> parse_number(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

Result<AnnexKey> AnnexKey::parse(std::string_view text) {
  if (text.empty()) return Error{"empty annex key"};
  if (text.size() > kMaxLength)
    return Error{"annex key longer than " + std::to_string(kMaxLength) + " bytes"};
  for (unsigned char c : text) {
    if (c < 0x21 || c == 0x7f)
      return Error{"annex key contains a space or control character"};
    if (c == '/' || c == '\\')
      return Error{"annex key contains a path separator: '" + std::string(text) + "'"};
  }
  auto sep = text.find("--");
  if (sep == std::string_view::npos)
    return Error{"not an annex key (no '--' before the name): '" + std::string(text) + "'"};

  AnnexKey key;
  key.text_ = std::string(text);
  std::string_view head = text.substr(0, sep);
  key.name_pos_ = sep + 2;
  if (key.name().empty()) return Error{"annex key has an empty name: '" + key.text_ + "'"};
  if (key.name() == "." || key.name() == "..")
    return Error{"annex key name is a relative path: '" + key.text_ + "'"};

  auto dash = head.find('-');
  std::string_view backend = head.substr(0, dash);
  if (backend.empty()) return Error{"annex key has no backend: '" + key.text_ + "'"};
  for (char c : backend)
    if (!is_backend_char(c)) return Error{"annex key backend is malformed: '" + key.text_ + "'"};
  key.backend_len_ = backend.size();

  while (dash != std::string_view::npos) {
    auto next = head.find('-', dash + 1);
    std::string_view field = head.substr(dash + 1, next == std::string_view::npos
                                                        ? std::string_view::npos
                                                        : next - dash - 1);
    if (field.size() < 2) return Error{"annex key has an empty field: '" + key.text_ + "'"};
    auto value = parse_number(field.substr(1));
    if (!value) return Error{"annex key field is not a number: '" + key.text_ + "'"};
    std::optional<std::uint64_t>* slot = nullptr;
    switch (field[0]) {
      case 's': slot = &key.size_; break;
      case 'm': slot = &key.mtime_; break;
      case 'S': slot = &key.chunk_size_; break;
      case 'C': slot = &key.chunk_number_; break;
      default: return Error{"annex key has an unknown field: '" + key.text_ + "'"};
    }
    if (slot->has_value()) return Error{"annex key repeats a field: '" + key.text_ + "'"};
    *slot = value;
    dash = next;
  }

  // A share of an erasure-coded object: the name is its manifest root.
  if (backend == kShareBackend) {
    std::string_view name = key.name();
    if (name.size() != 64 || !is_lower_hex(name) || !key.size_ || key.chunk_number_ || key.chunk_size_)
      return Error{"share key must be " + std::string(kShareBackend) + "-sSIZE--<64 hex digits>: '" + key.text_ + "'"};
    return key;
  }
  // Hash backends: the name is the digest, plus an extension for the ...E variants.
  bool extension_variant = backend.size() > 1 && backend.back() == 'E';
  std::string_view base = extension_variant ? backend.substr(0, backend.size() - 1) : backend;
  for (const auto& known : kComputable) {
    if (base != known.name) continue;
    std::string_view name = key.name();
    if (name.size() < known.hex_digits || !is_lower_hex(name.substr(0, known.hex_digits)))
      return Error{"annex key name is not a " + std::string(known.name) + " digest: '" +
                   key.text_ + "'"};
    std::string_view rest = name.substr(known.hex_digits);
    if (!rest.empty() && (!extension_variant || rest[0] != '.'))
      return Error{"annex key name has trailing bytes after its digest: '" + key.text_ + "'"};
    key.hash_ = known.hash;
    key.digest_len_ = known.hex_digits;
    return key;
  }
  if (base.starts_with("SKEIN")) key.hash_ = HashAlgorithm::Other;
  return key;
}

std::optional<std::uint64_t> AnnexKey::content_size() const {
  if (!is_chunk()) return size_;
  if (!size_ || !chunk_size_ || *chunk_number_ == 0 || *chunk_size_ == 0) return std::nullopt;
  auto before = (*chunk_number_ - 1);
  if (before > *size_ / *chunk_size_) return std::nullopt;  // past the end (also guards overflow)
  auto start = before * *chunk_size_;
  if (start >= *size_) return std::nullopt;
  return std::min(*chunk_size_, *size_ - start);
}

std::string_view AnnexKey::digest_hex() const { return name().substr(0, digest_len_); }

std::string AnnexKey::object_hash_input() const {
  // git-annex hashes the canonical form of the key without its chunk fields.
  std::string out(backend());
  if (size_) out += "-s" + std::to_string(*size_);
  if (mtime_) out += "-m" + std::to_string(*mtime_);
  out += "--";
  out += name();
  return out;
}

bool is_annex_uuid(std::string_view text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool dash_pos = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_pos ? c != '-' : !std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace annexswarm
