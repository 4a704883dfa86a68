// --config FILE: a serving subcommand's settings in a TOML file
// (ufork.toml(5)), a flat table with one key per long flag, spelt as the flag
// without its dashes (`max-requests = 200`, `bind = ["127.0.0.1:8000"]` for a
// flag given several times, `daemon = true` for a flag without a value), and
// the positional as `command` (run) or `app` (wsgi, asgi). A flag typed on
// the command line wins over the file's key; the file over the defaults.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace CLI {
class App;
class Option;
}

namespace ufork::cli {

struct config_file {
  // The file's flags, as words for the subcommand's parser ("--workers", "4"),
  // for every key not typed on the command line.
  std::vector<std::string> words;
  std::vector<std::string> positional;  // `command` or `app`, if set in the file
  // Each problem, one line: "app.toml: unknown key 'wokers' (did you mean
  // 'workers'?)", "app.toml: workers: expected a whole number from 1 to
  // 4096, not 0", or the TOML parser's "app.toml:3:9: ...".
  std::vector<std::string> problems;
  std::map<std::string, std::string> keys;  // key -> "file" or "flag" (typed, so the file's was left)
};

// Reads `path` for `sub`, whose command line is args (its words after the
// subcommand's name).
config_file read_config(const CLI::App& sub, const std::string& path, const std::vector<std::string>& args);

// `ufork config show`: each setting of `sub` after parsing, as TOML, with
// where it came from ("# flag", "# file", "# default"); `positional`, the
// command or app as it ended up.
std::string show_config(const CLI::App& sub, const config_file& file, const std::vector<std::string>& positional);

}  // namespace ufork::cli
