#include "node/annex_repo.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "node/state_files.hpp"
#include "node/subprocess.hpp"
#include "protocol/annex_key.hpp"
#include "protocol/records.hpp"

namespace annexswarm {
namespace fs = std::filesystem;
namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// Calls fn(dir_fd, entry) for each entry of the directory parent/name, skipping . and ..
template <class Fn>
void for_each_entry(int parent, const char* name, Fn&& fn) {
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  DIR* dir = fdopendir(fd);
  if (!dir) {
    close(fd);
    return;
  }
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
      continue;
    fn(fd, e->d_name);
  }
  closedir(dir);
}

}  // namespace

Result<AnnexRepo> open_annex_repo(const fs::path& path) {
  std::error_code ec;
  if (auto why = read_permission_problem(path); !why.empty())
    return Error{"repository " + path.string() + " cannot be served: " + why};
  if (!fs::is_directory(path, ec))
    return Error{"repository " + path.string() + " does not exist or is not a directory"};
  auto git = run_process({"git", "-C", path.string(), "rev-parse", "--absolute-git-dir",
                          "--is-bare-repository"});
  if (git.exit_code == -1) return Error{"cannot run git; install it (apt-get install git)"};
  if (git.exit_code != 0) {
    // git's own words: "not a git repository", or "detected dubious ownership" (owned by
    // another user: git config --global --add safe.directory PATH).
    auto said = first_line(git.err);
    return Error{"repository " + path.string() + " is not a git repository" + (said.empty() ? "" : " (git: " + said + ")")};
  }
  AnnexRepo repo;
  repo.path = path;
  auto nl = git.out.find('\n');
  repo.git_dir = git.out.substr(0, nl);
  repo.bare = first_line(git.out.substr(nl + 1)) == "true";
  auto uuid = run_process({"git", "-C", path.string(), "config", "annex.uuid"});
  repo.uuid = first_line(uuid.out);
  if (uuid.exit_code != 0 || repo.uuid.empty())
    return Error{"repository " + path.string() +
                 " is not a git-annex repository (no annex.uuid); run 'git annex init' there"};
  if (!is_annex_uuid(repo.uuid))
    return Error{"repository " + path.string() + " has a malformed annex.uuid '" + repo.uuid + "'"};
  repo.objects_dir = repo.git_dir / "annex" / "objects";
  return repo;
}

KeyScan scan_present_keys(const AnnexRepo& repo) {
  KeyScan scan;
  int root = open(repo.objects_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return scan;  // no objects yet
  // objects/<h1>/<h2>/<KEY>/<KEY>: a key is present when its inner file exists.
  for_each_entry(root, ".", [&](int, const char* h1) {
    for_each_entry(root, h1, [&](int d1, const char* h2) {
      for_each_entry(d1, h2, [&](int d2, const char* key_dir) {
        std::string inner = std::string(key_dir) + "/" + key_dir;
        struct stat st;
        if (fstatat(d2, inner.c_str(), &st, 0) != 0 || !S_ISREG(st.st_mode)) return;
        if (!AnnexKey::parse(key_dir)) {
          ++scan.invalid_names;
          return;
        }
        scan.keys.emplace_back(key_dir);
      });
    });
  });
  close(root);
  std::sort(scan.keys.begin(), scan.keys.end());
  return scan;
}

ChangeStamp change_stamp(const AnnexRepo& repo) {
  ChangeStamp stamp;
  for (const char* rel : {"annex/journal", "annex/index", "annex", "refs/heads/git-annex",
                          "packed-refs", "annex/objects"}) {
    struct stat st;
    if (stat((repo.git_dir / rel).c_str(), &st) == 0) {
      stamp.parts.push_back(st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
      stamp.parts.push_back(static_cast<std::int64_t>(st.st_ino));
      stamp.parts.push_back(static_cast<std::int64_t>(st.st_size));
    } else {
      stamp.parts.push_back(-1);
    }
  }
  return stamp;
}

}  // namespace annexswarm
