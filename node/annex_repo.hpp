#pragma once
// A git-annex repository this node serves: where its objects live, and which keys it
// holds right now. Listing walks .git/annex/objects directly (no git-annex process):
// one readdir per hash directory and one stat per key.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "protocol/result.hpp"

namespace annexswarm {

struct AnnexRepo {
  std::filesystem::path path;  // as configured
  std::filesystem::path git_dir;
  std::filesystem::path objects_dir;
  // objects_dir resolved (it may be a link to another disk) when the node took the
  // repository up; empty when it did not exist yet. Lets a lookup skip resolving it again.
  std::filesystem::path objects_root;
  std::string uuid;
  bool bare = false;
  bool store = false;  // a swarm store (node/swarm_store.hpp), not a git repository
};

// Runs git to find the git dir and annex.uuid; the error says what to do.
Result<AnnexRepo> open_annex_repo(const std::filesystem::path& path);

struct KeyScan {
  std::vector<std::string> keys;  // sorted
  std::size_t invalid_names = 0;  // directories that are not valid keys
};
KeyScan scan_present_keys(const AnnexRepo& repo);

// Changes whenever git-annex records a change of content: it journals every change of
// the location log and commits it to the git-annex branch. Cheap: a few stats.
struct ChangeStamp {
  std::vector<std::int64_t> parts;
  friend bool operator==(const ChangeStamp&, const ChangeStamp&) = default;
};
ChangeStamp change_stamp(const AnnexRepo& repo);

}  // namespace annexswarm
