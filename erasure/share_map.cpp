#include "erasure/share_map.hpp"

#include <charconv>

#include "protocol/crypto.hpp"

namespace annexswarm::erasure {

namespace {
constexpr std::string_view kHeader = "annex-swarm share map 1";
constexpr std::size_t kMaxMapText = 64 * 1024;

std::optional<std::uint64_t> number(std::string_view text) {
  std::uint64_t v = 0;
  if (text.empty() || std::from_chars(text.data(), text.data() + text.size(), v).ptr != text.data() + text.size())
    return std::nullopt;
  return v;
}
}  // namespace

ShareMap ShareMap::of(const AnnexKey& key, const ShareLayout& layout, const ShareDigests& digests) {
  ShareMap m{key, layout, {}};
  for (unsigned i = 0; i < layout.shape.n(); ++i) {
    auto text = std::string(kShareBackend) + "-s" + std::to_string(layout.share_size()) + "--" + to_hex(digests.root(i));
    m.shares.push_back(*AnnexKey::parse(text));
  }
  return m;
}

AnnexKey ShareMap::map_key(const AnnexKey& key) {
  return *AnnexKey::parse(std::string(kMapBackend) + "--" + to_hex(crypto::sha256(as_bytes(key.str()))));
}

std::string ShareMap::text() const {
  std::string out(kHeader);
  out += "\nkey " + key.str() + "\nshape " + layout.shape.text() + "\nsize " + std::to_string(layout.object_size) +
         "\nunit " + std::to_string(layout.unit) + "\n";
  for (const auto& s : shares) out += "share " + s.str() + "\n";
  for (std::size_t i = 0; i < holders.size(); ++i)
    if (holders[i]) out += "holder " + std::to_string(i) + " " + holders[i]->hex() + "\n";
  return out;
}

Result<ShareMap> ShareMap::parse(std::string_view text, const AnnexKey& key) {
  if (text.size() > kMaxMapText) return Error{"share map is oversized"};
  std::vector<std::string_view> lines;
  for (std::size_t at = 0; at < text.size();) {
    auto end = text.find('\n', at);
    if (end == std::string_view::npos) return Error{"share map does not end with a newline"};
    lines.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  auto field = [&](std::size_t i, std::string_view name) -> std::optional<std::string_view> {
    if (i >= lines.size() || !lines[i].starts_with(name) || lines[i].size() <= name.size() ||
        lines[i][name.size()] != ' ')
      return std::nullopt;
    return lines[i].substr(name.size() + 1);
  };
  if (lines.empty() || lines[0] != kHeader) return Error{"not a share map (or one of a newer version)"};
  auto k = field(1, "key");
  auto shape_text = field(2, "shape");
  auto size_text = field(3, "size");
  auto unit_text = field(4, "unit");
  if (!k || !shape_text || !size_text || !unit_text) return Error{"share map is malformed"};
  if (*k != key.str()) return Error{"share map is for another object (" + std::string(*k) + ")"};
  auto shape = ShareShape::parse(*shape_text);
  if (!shape) return Error{"share map: " + shape.error()};
  auto size = number(*size_text);
  auto unit = number(*unit_text);
  if (!size || !unit) return Error{"share map has a malformed size or unit"};
  if (auto ks = key.content_size(); ks && *ks != *size) return Error{"share map gives another size than the key"};
  ShareMap m{key, ShareLayout::plan(*shape, *size), {}};
  if (m.layout.unit != *unit) return Error{"share map has a unit its layout would not have"};
  if (lines.size() < 5 + shape->n() || lines.size() > 5 + 2 * std::size_t{shape->n()})
    return Error{"share map lists the wrong number of shares"};
  for (unsigned i = 0; i < shape->n(); ++i) {
    auto s = field(5 + i, "share");
    if (!s) return Error{"share map is malformed"};
    auto share = AnnexKey::parse(*s);
    if (!share || !share->is_share() || share->content_size() != m.layout.share_size())
      return Error{"share map lists a bad share key"};
    m.shares.push_back(*share);
  }
  m.holders.assign(shape->n(), std::nullopt);
  for (std::size_t l = 5 + shape->n(); l < lines.size(); ++l) {
    auto h = field(l, "holder");
    auto space = h ? h->find(' ') : std::string_view::npos;
    if (space == std::string_view::npos) return Error{"share map is malformed"};
    auto index = number(h->substr(0, space));
    auto node = NodeId::from_hex(h->substr(space + 1));
    if (!index || *index >= shape->n() || !node || m.holders[*index]) return Error{"share map has a bad holder line"};
    m.holders[*index] = *node;
  }
  return m;
}

Result<ShareMap> ShareMap::parse_any(std::string_view text) {
  auto at = text.find("\nkey ");
  if (at == std::string_view::npos) return Error{"share map names no object"};
  auto end = text.find('\n', at + 5);
  if (end == std::string_view::npos) return Error{"share map is malformed"};
  auto key = AnnexKey::parse(text.substr(at + 5, end - at - 5));
  if (!key) return Error{"share map names a bad key: " + key.error()};
  return parse(text, *key);
}

std::optional<unsigned> ShareMap::index_of(const AnnexKey& share) const {
  for (unsigned i = 0; i < shares.size(); ++i)
    if (shares[i] == share) return i;
  return std::nullopt;
}

}  // namespace annexswarm::erasure
