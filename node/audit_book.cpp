#include "node/audit_book.hpp"

#include <sstream>
#include <system_error>

#include "node/state_files.hpp"
#include "protocol/crypto.hpp"

namespace annexswarm {

namespace fs = std::filesystem;

fs::path AuditBook::path_of(const std::string& store, const AnnexKey& key) const {
  // Both are validated names (an annex UUID, an annex key): no separators, no "..".
  return dir_ / store / key.str();
}

Result<bool> AuditBook::record(const std::string& store, const AnnexKey& key, const fs::path& object) {
  std::error_code ec;
  auto size = fs::file_size(object, ec);
  if (ec) return Error{"cannot read " + object.string() + ": " + ec.message()};
  if (size == 0) return true;  // an empty object is known from its key alone
  Entry e;
  e.size = size;
  e.seed.resize(32);
  crypto::random_fill(e.seed);
  auto made = make_challenges(key.str(), object, e.seed, kAuditsPerKey);
  if (!made) return Error{made.error()};
  for (auto& c : *made) e.macs.push_back(std::move(c.mac));
  std::lock_guard lock(mutex_);
  return save(store, key, e);
}

std::optional<PossessionChallenge> AuditBook::take(const std::string& store, const AnnexKey& key) {
  std::lock_guard lock(mutex_);
  auto e = load(store, key);
  if (!e || e->next >= e->macs.size()) return std::nullopt;
  auto c = derive_challenge(e->seed, e->next, e->size);
  c.mac = e->macs[e->next];
  ++e->next;
  // Used once: saved as used before anyone sees it.
  if (!save(store, key, *e)) return std::nullopt;
  return c;
}

std::uint32_t AuditBook::remaining(const std::string& store, const AnnexKey& key) const {
  std::lock_guard lock(mutex_);
  auto e = load(store, key);
  return e && e->next < e->macs.size() ? static_cast<std::uint32_t>(e->macs.size() - e->next) : 0;
}

void AuditBook::forget(const std::string& store, const AnnexKey& key) {
  std::lock_guard lock(mutex_);
  std::error_code ec;
  fs::remove(path_of(store, key), ec);
}

// "1 SIZE SEED NEXT MAC..." on one line, hex.
std::optional<AuditBook::Entry> AuditBook::load(const std::string& store, const AnnexKey& key) const {
  auto text = read_file(path_of(store, key));
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  int version = 0;
  std::string seed;
  Entry e;
  if (!(in >> version >> e.size >> seed >> e.next) || version != 1) return std::nullopt;
  auto s = from_hex(seed);
  if (!s || s->size() != 32) return std::nullopt;
  e.seed = std::move(*s);
  std::string mac;
  while (in >> mac && e.macs.size() < kAuditsPerKey) {
    auto m = from_hex(mac);
    if (!m || m->size() != 32) return std::nullopt;
    e.macs.push_back(std::move(*m));
  }
  return e;
}

Result<bool> AuditBook::save(const std::string& store, const AnnexKey& key, const Entry& e) const {
  auto path = path_of(store, key);
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) return Error{"cannot create " + path.parent_path().string() + ": " + ec.message()};
  std::string text = "1 " + std::to_string(e.size) + " " + to_hex(e.seed) + " " + std::to_string(e.next);
  for (const auto& m : e.macs) text += " " + to_hex(m);
  return write_file_atomic(path, text + "\n", 0600);
}

}  // namespace annexswarm
