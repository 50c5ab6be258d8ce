#include "node/node_limits.hpp"

#include <ctime>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>

#include "node/config.hpp"

namespace annexswarm {

namespace {

std::optional<int> clock_minutes(std::string_view s) {
  if (s.size() != 5 || s[2] != ':') return std::nullopt;
  int h = 0, m = 0;
  auto [p1, e1] = std::from_chars(s.data(), s.data() + 2, h);
  auto [p2, e2] = std::from_chars(s.data() + 3, s.data() + 5, m);
  if (e1 != std::errc() || e2 != std::errc() || p1 != s.data() + 2 || p2 != s.data() + 5) return std::nullopt;
  if (h < 0 || h > 24 || m < 0 || m > 59 || (h == 24 && m != 0)) return std::nullopt;
  return h * 60 + m;
}

}  // namespace

bool HoursWindow::contains(int minute) const {
  if (from == to) return true;  // all day
  if (from < to) return minute >= from && minute < to;
  return minute >= from || minute < to;  // past midnight
}

bool in_hours_now(const std::optional<HoursWindow>& hours) {
  if (!hours) return true;
  auto now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  return hours->contains(local.tm_hour * 60 + local.tm_min);
}

std::string HoursWindow::text() const {
  return fmt::format("{:02}:{:02}-{:02}:{:02}", from / 60, from % 60, to / 60, to % 60);
}

Result<HoursWindow> parse_hours(std::string_view text) {
  text = trim(text);
  auto dash = text.find('-');
  auto from = dash == std::string_view::npos ? std::nullopt : clock_minutes(trim(text.substr(0, dash)));
  auto to = dash == std::string_view::npos ? std::nullopt : clock_minutes(trim(text.substr(dash + 1)));
  if (!from || !to) return Error{"hours is a daily window, HH:MM-HH:MM (e.g. 01:00-07:00; 22:00-06:00 wraps midnight)"};
  return HoursWindow{*from % (24 * 60), *to % (24 * 60)};
}

Result<NodeLimits> parse_node_limits(std::string_view text, std::string_view origin) {
  NodeLimits limits;
  std::string errors;
  std::set<std::string> seen;
  for_each_setting_line(text, [&](const SettingLine& line) {
    auto fail = [&](const std::string& why) {
      errors += (errors.empty() ? "" : "\n") + fmt::format("{}:{}: {}", origin, line.number, why);
    };
    if (!line.has_value) return fail("expected 'name = value', got '" + std::string(line.name) + "'");
    auto name = std::string(line.name);
    auto value = line.value;
    if (!seen.insert(name).second) return fail(name + " is given twice");
    if (name == "storage") {
      auto r = parse_rate(value);
      if (!r) fail("storage: " + r.error());
      else limits.storage = static_cast<std::uint64_t>(*r);
    } else if (name == "upload-rate" || name == "download-rate") {
      auto r = parse_rate(value);
      if (!r) fail(name + ": " + r.error());
      else (name == "upload-rate" ? limits.upload_rate : limits.download_rate) = *r;
    } else if (name == "hours") {
      auto h = parse_hours(value);
      if (!h) fail(h.error());
      else limits.hours = *h;
    } else {
      fail("unknown limit '" + name + "' (storage, upload-rate, download-rate, hours)");
    }
  });
  if (!errors.empty()) return Error{errors};
  return limits;
}

std::filesystem::path limits_file(const std::filesystem::path& stores_dir) { return stores_dir / ".annex-swarm"; }

double lower_rate(double a, std::optional<double> b) {
  if (!b || *b <= 0) return a;
  if (a <= 0) return *b;
  return std::min(a, *b);
}

std::optional<std::uint64_t> lower_limit(std::optional<std::uint64_t> a, std::optional<std::uint64_t> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

}  // namespace annexswarm
