#include "node/local_objects.hpp"

#include <sys/stat.h>

#include <algorithm>

#include "node/log.hpp"
#include "node/swarm_store.hpp"

namespace annexswarm {
namespace fs = std::filesystem;

namespace {

void resolve_root(AnnexRepo& repo) {
  std::error_code ec;
  auto root = fs::canonical(repo.objects_dir, ec);
  if (!ec) repo.objects_root = std::move(root);
}

// root/relative when no part of `relative` is a symbolic link and it ends at a regular
// file: then it lies inside root, as resolving it would show, for a few lstat calls
// instead of a readlink per part of the whole path.
std::optional<fs::path> inside_without_links(const fs::path& root, const fs::path& relative) {
  auto at = root;
  struct stat st {};
  for (const auto& part : relative) {
    at /= part;
    if (::lstat(at.c_str(), &st) != 0 || S_ISLNK(st.st_mode)) return std::nullopt;
  }
  if (!S_ISREG(st.st_mode)) return std::nullopt;
  return at;
}

}  // namespace

Result<bool> LocalObjects::open(const std::vector<fs::path>& repos, const std::vector<std::string>& origins) {
  std::string problems;
  for (std::size_t i = 0; i < repos.size(); ++i) {
    auto repo = open_annex_repo(fs::absolute(repos[i]));
    if (!repo) {
      problems += (problems.empty() ? "" : "\n") + repo.error();
      if (i < origins.size() && !origins[i].empty()) problems += " (set at " + origins[i] + ")";
      continue;
    }
    resolve_root(*repo);
    repos_.push_back(std::move(*repo));
  }
  if (!problems.empty()) return Error{problems};
  for (const auto& uuid : existing_swarm_stores(stores_dir_)) {
    repos_.push_back(swarm_store(stores_dir_, uuid));
    resolve_root(repos_.back());
  }
  return true;
}

std::optional<std::size_t> LocalObjects::index_of(std::string_view uuid) const {
  for (std::size_t i = 0; i < repos_.size(); ++i)
    if (repos_[i].uuid == uuid) return i;
  return std::nullopt;
}

std::optional<fs::path> LocalObjects::locate(const AnnexKey& key, std::string_view scope) const {
  for (const auto& repo : repos_) {
    if (!scope.empty() && repo.uuid != scope) continue;
    auto dir = repo.bare ? key.hash_dir_lower() : key.hash_dir_mixed();
    auto relative = fs::path(dir) / key.str() / key.str();
    if (!repo.objects_root.empty())
      if (auto found = inside_without_links(repo.objects_root, relative)) return found;
    // Else (a link in the tree, the objects folder moved, or not there): resolve it all.
    auto path = repo.objects_dir / relative;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) continue;
    // Served only when it really lies inside the annex (the objects folder itself may be
    // a link to another disk): a symbolic link planted in the objects tree that points
    // elsewhere (~/.ssh, /etc) never makes us serve what it points to.
    auto real = fs::canonical(path, ec);
    if (ec) continue;
    auto root = fs::canonical(repo.objects_dir, ec);
    if (ec) continue;
    auto [end, at] = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
    if (end != root.end()) {
      log::warn("not serving {}: it resolves to {}, outside {}", path.string(), real.string(), root.string());
      continue;
    }
    return real;
  }
  return std::nullopt;
}

Result<std::size_t> LocalObjects::store(const std::string& uuid) {
  if (auto found = index_of(uuid)) {
    if (!repos_[*found].store)
      return Error{uuid + " is an annex repository this node serves, not a swarm store"};
    return *found;
  }
  repos_.push_back(swarm_store(stores_dir_, uuid));
  auto index = repos_.size() - 1;
  log::info("new swarm store {} in {}", uuid, repos_[index].path.string());
  if (on_added_) on_added_(index);
  return index;
}

Result<bool> LocalObjects::remove_from_store(const AnnexKey& key, std::string_view store) {
  auto index = index_of(store);
  if (!index || !repos_[*index].store) return Error{"no swarm store " + std::string(store) + " on this node"};
  auto removed = annexswarm::remove_from_store(repos_[*index], key, trash_dir());
  if (!removed) return Error{removed.error()};
  if (*removed) {
    log::info("moved {} from swarm store {} to the trash", key.str(), std::string(store));
    changed(*index, key, false);
  }
  return *removed;
}

Result<bool> LocalObjects::restore(const AnnexKey& key, std::string_view store) {
  auto index = index_of(store);
  if (!index || !repos_[*index].store) return Error{"no swarm store " + std::string(store) + " on this node"};
  auto restored = restore_from_trash(repos_[*index], key, trash_dir());
  if (!restored) return Error{restored.error()};
  log::info("took {} back into swarm store {} from the trash", key.str(), std::string(store));
  changed(*index, key, true);
  return true;
}

void LocalObjects::changed(std::size_t index, const AnnexKey& key, bool present) {
  if (on_changed_) on_changed_(index, key, present);
}

}  // namespace annexswarm
