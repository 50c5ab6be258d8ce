// Where git-annex keeps a key's object: the hash directories, from the MD5 of the key.
// Apart from annex_key.cpp so that what only parses keys needs no crypto library.
#include "protocol/annex_key.hpp"
#include "protocol/crypto.hpp"

namespace annexswarm {
namespace {

// git-annex's display_32bits_as_dir: 6 characters from a 32-bit word, pairs swapped.
std::string word_as_dir(std::uint32_t w) {
  static constexpr char kChars[] = "0123456789zqjxkmvwgpfZQJXKMVWGPF";
  char cs[6];  // 6 bits each from the low 36 of 32: the last one only has 2
  for (int i = 0; i < 6; ++i) cs[i] = kChars[(static_cast<std::uint64_t>(w) >> (6 * i)) & 31];
  std::string out;
  for (int i = 0; i < 6; i += 2) {
    out.push_back(cs[i + 1]);
    out.push_back(cs[i]);
  }
  return out;
}

}  // namespace

std::string AnnexKey::hash_dir_mixed() const {
  auto digest = crypto::md5(as_bytes(object_hash_input()));
  std::uint32_t first = static_cast<std::uint32_t>(digest[0]) |
                        static_cast<std::uint32_t>(digest[1]) << 8 |
                        static_cast<std::uint32_t>(digest[2]) << 16 |
                        static_cast<std::uint32_t>(digest[3]) << 24;
  std::string dir = word_as_dir(first);
  return dir.substr(0, 2) + "/" + dir.substr(2, 2);
}

std::string AnnexKey::hash_dir_lower() const {
  std::string hex = to_hex(crypto::md5(as_bytes(object_hash_input())));
  return hex.substr(0, 3) + "/" + hex.substr(3, 3);
}

}  // namespace annexswarm
