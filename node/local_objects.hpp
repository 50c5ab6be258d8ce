#pragma once
// What this node holds: the git-annex repositories it serves and its swarm stores, by
// annex UUID, and where a key's object is in them. The only owner of that list; the
// announcer follows it through on_added / on_changed.
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "node/annex_repo.hpp"
#include "protocol/annex_key.hpp"
#include "protocol/result.hpp"

namespace annexswarm {

class LocalObjects {
public:
  // `stores_dir`: where the swarm stores live (empty: <state_dir>/stores).
  // The trash is on the stores' file system: <state_dir>/trash, or <stores_dir>/.trash when
  // the stores live elsewhere (a move to the trash is a rename, and emptying it frees room
  // where the stores write).
  explicit LocalObjects(std::filesystem::path state_dir, std::filesystem::path stores_dir = {})
      : state_dir_(std::move(state_dir)),
        stores_dir_(stores_dir.empty() ? state_dir_ / "stores" : stores_dir),
        trash_dir_(stores_dir.empty() ? state_dir_ / "trash" : stores_dir / ".trash") {}

  // The repositories given, then the swarm stores found in the state dir. Every
  // repository that cannot be served is listed in the error, one per line.
  // `origins`: where each repository was set (a config file line, an option), for errors.
  Result<bool> open(const std::vector<std::filesystem::path>& repos, const std::vector<std::string>& origins = {});
  const std::vector<AnnexRepo>& all() const { return repos_; }
  const AnnexRepo& at(std::size_t index) const { return repos_[index]; }
  std::optional<std::size_t> index_of(std::string_view uuid) const;

  // Where the object is, in the repository or store with that UUID (empty: in any).
  std::optional<std::filesystem::path> locate(const AnnexKey& key, std::string_view scope) const;

  // The swarm store with that UUID, made when new. An error when it is a repository.
  Result<std::size_t> store(const std::string& uuid);
  // Moves the key from one of our swarm stores to the trash; false when it was not there.
  Result<bool> remove_from_store(const AnnexKey& key, std::string_view store);
  // Takes a trashed key back into its store.
  Result<bool> restore(const AnnexKey& key, std::string_view store);
  std::filesystem::path trash_dir() const { return trash_dir_; }
  std::filesystem::path audit_dir() const { return state_dir_ / "audits"; }  // see AuditBook
  // A key came into a store (or left it) through us: whoever lists keys hears of it.
  void changed(std::size_t index, const AnnexKey& key, bool present);

  void on_added(std::function<void(std::size_t index)> fn) { on_added_ = std::move(fn); }
  void on_changed(std::function<void(std::size_t index, const AnnexKey& key, bool present)> fn) {
    on_changed_ = std::move(fn);
  }

private:
  std::filesystem::path state_dir_;
  std::filesystem::path stores_dir_;
  std::filesystem::path trash_dir_;
  std::vector<AnnexRepo> repos_;
  std::function<void(std::size_t)> on_added_;
  std::function<void(std::size_t, const AnnexKey&, bool)> on_changed_;
};

}  // namespace annexswarm
