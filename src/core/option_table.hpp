// The pool's options a user sets by name, in one table: each option's key
// (its long flag without the dashes; Python spells '-' as '_'), its flags,
// kind, range, help and where it lands in ufork::options. The table drives
// `ufork run` and `ufork hello`'s flags (cli/main.cpp) and the Python
// module's options (python/src/module.cpp); validate() holds an options
// struct to the same ranges, and is the only validator (the pool's
// constructor calls it; the command calls it first, for exit 2). A later
// config file, man page and shell completion read the same table.
// Internal, but exported from a shared libufork (UFORK_API): the ufork
// command reads it.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ufork/export.hpp"
#include "ufork/options.hpp"

namespace ufork {

enum class option_kind {
  count,    // a whole number
  seconds,  // seconds, into a milliseconds field
  mib,      // MiB, into a bytes field
  flag,     // true when given
  text,     // a string
  texts,    // a string each time it is given
};

// Which commands take it.
// in_app: `ufork wsgi` (a Python app served by the HTTP helper: a library
// pool, as hello's, whose workers answer requests).
enum option_use : unsigned { in_hello = 1, in_run = 2, in_python = 4, in_app = 8, everywhere = 15 };

// What an option is.
struct option_spec {
  const char* key;    // "max-requests"
  const char* flags;  // CLI11's names: "--max-requests", "--workers,-w"
  option_kind kind;
  double lo, hi;      // count, seconds, mib: the range
  bool zero_is_none;  // 0 is also accepted: the option is off
  unsigned use;       // option_use
  const char* help;
};

// And where it lands.
struct option_entry : option_spec {
  // Sets the field from a value as typed (texts: adds one); throws
  // std::invalid_argument saying what was expected ("expected a whole
  // number from 1 to 4096, not 'abc'").
  std::function<void(options&, std::string_view)> set;
  // The field as a number (count, seconds, mib, flag), for validate().
  std::function<double(const options&)> number;
  // The field as a flag would give it: the default a --help shows (a list
  // joined with commas), and what a reload compares.
  std::function<std::string(const options&)> show;
  // The field of `from` into `to` (a reload's new value).
  std::function<void(options& to, const options& from)> copy;
};

UFORK_API const std::vector<option_entry>& option_table();
// By key: "max-requests" or "max_requests"; null if there is none.
UFORK_API const option_entry* find_option(std::string_view key);

// The range as a help shows it: "INT in [1, 4096]", "SECONDS in [0, 3600]"
// (from 0 when 0 means none); "" for a flag or text.
UFORK_API std::string range_help(const option_spec& e);

// Why size 0 is refused unless options::allow_empty (validate(), resize, SIGTTOU).
inline constexpr const char* empty_pool_refused =
    "a pool of 0 workers leaves connections waiting unanswered (--allow-empty or options.allow_empty allows it)";

// Throws ufork::error (invalid_argument, "ufork: ...") for the first thing
// wrong in o: a value out of its table range, or options that do not go
// together. The only validator of an options struct.
UFORK_API void validate(const options& o);

}  // namespace ufork
