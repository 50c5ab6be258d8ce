#pragma once
// Audits of what this node stored: when a key goes into one of its swarm stores, the node
// makes kAuditsPerKey proof-of-possession challenges from the bytes and keeps them to
// itself (a seed and the answers, in the state dir, mode 0600). Later, with no copy here
// to make fresh challenges from, another holder's copy of that store counts only when it
// answers one of them; each is used once, so a holder cannot keep answers and drop the bytes.
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

#include "protocol/annex_key.hpp"
#include "protocol/possession.hpp"
#include "protocol/result.hpp"

namespace annexswarm {

class AuditBook {
public:
  static constexpr std::uint32_t kAuditsPerKey = 16;

  explicit AuditBook(std::filesystem::path dir) : dir_(std::move(dir)) {}

  // Makes and keeps the audits of `key` in `store` from the object at `object` (replacing
  // any kept before). Reads kAuditsPerKey x 32 KiB of it.
  Result<bool> record(const std::string& store, const AnnexKey& key, const std::filesystem::path& object);
  // The next unused audit of `key` in `store`, with its answer; nullopt when none is left
  // (or none was made: this node did not store it).
  std::optional<PossessionChallenge> take(const std::string& store, const AnnexKey& key);
  // How many are left.
  std::uint32_t remaining(const std::string& store, const AnnexKey& key) const;
  void forget(const std::string& store, const AnnexKey& key);

private:
  struct Entry {
    std::uint64_t size = 0;
    Bytes seed;
    std::uint32_t next = 0;
    std::vector<Bytes> macs;
  };
  std::filesystem::path path_of(const std::string& store, const AnnexKey& key) const;
  std::optional<Entry> load(const std::string& store, const AnnexKey& key) const;
  Result<bool> save(const std::string& store, const AnnexKey& key, const Entry& e) const;

  std::filesystem::path dir_;
  // record() runs on the disk thread, take() and forget() on the io thread: one at a time
  // (they share each key's file and its temp name).
  mutable std::mutex mutex_;
};

}  // namespace annexswarm
