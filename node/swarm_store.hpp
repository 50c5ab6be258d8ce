#pragma once
// A swarm store: objects put into the swarm through git-annex-remote-swarm (STORE), kept
// by this node in its state dir and served and announced like a repository's, under the
// special remote's annex UUID. It is never a git repository, so it has no repo record:
// `discover` finds repositories, not stores. Layout as in a bare annex repository:
//   <store-dir>/<uuid>/annex/objects/<hashdirlower>/KEY/KEY   (store-dir: <state-dir>/stores)
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "node/annex_repo.hpp"
#include "protocol/annex_key.hpp"
#include "protocol/result.hpp"

namespace annexswarm {

// The store `uuid` in the stores directory (the node's store-dir).
AnnexRepo swarm_store(const std::filesystem::path& stores_dir, const std::string& uuid);
// The UUIDs of the stores found in the stores directory.
std::vector<std::string> existing_swarm_stores(const std::filesystem::path& stores_dir);
// The bytes of every regular file below `dir` (what the swarm stores hold, against a
// storage limit), a trash at its root (.trash) left out; what cannot be read counts as nothing.
std::uint64_t bytes_below(const std::filesystem::path& dir);

// Copies `file` to `dest` through `dest`.tmp and a rename, checking it against the key's
// size and hash on the way (keys without a hash are taken as they are). A crash or a full
// disk leaves no partial object at `dest`; a stale `dest`.tmp is replaced. `read_only`:
// the finished copy gets mode 0444 (store objects, like git-annex's own), set only once
// it is complete, so a crash never leaves a temp file nobody can rewrite.
Result<std::uint64_t> copy_verified(const std::filesystem::path& file, const AnnexKey& key,
                                    const std::filesystem::path& dest,
                                    const std::function<void(std::uint64_t)>& progress, bool read_only = false);
// Where the store keeps `key`'s object.
std::filesystem::path store_object_path(const AnnexRepo& store, const AnnexKey& key);
// copy_verified into the store.
Result<std::uint64_t> import_into_store(const AnnexRepo& store, const AnnexKey& key,
                                        const std::filesystem::path& file,
                                        const std::function<void(std::uint64_t)>& progress);
// Moves `file` (on the store's file system) into the store as the key's object, read-only;
// an object already there stays (false).
Result<bool> move_into_store(const AnnexRepo& store, const AnnexKey& key, const std::filesystem::path& file);
// Moves the key's object out of the store into `trash` (<trash>/<store uuid>/KEY, its
// time set to now), where it stays until purge_trash; true when the key was there.
Result<bool> remove_from_store(const AnnexRepo& store, const AnnexKey& key, const std::filesystem::path& trash);
// Puts a trashed object back into the store; an error when the trash does not hold it.
Result<bool> restore_from_trash(const AnnexRepo& store, const AnnexKey& key, const std::filesystem::path& trash);

struct Trashed {
  std::string store;  // uuid
  std::string key;
  std::uint64_t bytes = 0;
  std::filesystem::file_time_type removed;
};
std::vector<Trashed> list_trash(const std::filesystem::path& trash);
// Deletes what was trashed before `cutoff`; how many objects went.
std::size_t purge_trash(const std::filesystem::path& trash, std::filesystem::file_time_type cutoff);
// Space runs out: deletes trashed objects, oldest first, until `available()` (the bytes
// free where the store writes) reaches `needed`; none when emptying the whole trash would
// not make room enough (the store fails anyway); how many went.
std::size_t purge_trash_for_space(const std::filesystem::path& trash, std::uint64_t needed,
                                  const std::function<std::uint64_t()>& available);

}  // namespace annexswarm
