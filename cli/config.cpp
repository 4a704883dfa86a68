#include "config.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <stdexcept>
#include <string_view>

#include "core/option_table.hpp"

namespace ufork::cli {
namespace {

// The key of a flag or positional: its long name, "app" for MODULE:APP; ""
// for those a file does not set.
std::string key_of(const CLI::Option& opt) {
  const std::string& name = opt.get_single_name();
  if (name == "MODULE:APP") return "app";
  return name == "help" || name == "config" ? "" : name;
}

bool positional(const CLI::Option& opt) { return opt.get_lnames().empty() && opt.get_snames().empty(); }
bool is_flag(const CLI::Option& opt) { return opt.get_expected_max() == 0; }
bool takes_many(const CLI::Option& opt) { return opt.get_items_expected_max() > 1; }

std::size_t distance(std::string_view a, std::string_view b) {  // Levenshtein
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

const char* type_of(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "a whole number";
    case toml::node_type::floating_point: return "a number with a fraction";
    case toml::node_type::boolean: return "true or false";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

// A scalar as a flag's word; nullopt for what no flag takes (a table, an
// array, a date; a boolean, which only a flag without a value takes).
std::optional<std::string> word_of(const toml::node& n) {
  if (auto s = n.value<std::string>(); s && n.is_string()) return *s;
  if (n.is_integer()) return std::to_string(n.as_integer()->get());
  if (n.is_floating_point()) return fmt::format("{}", n.as_floating_point()->get());
  return std::nullopt;
}

// The flags typed in args (the subcommand's words), up to a `--`.
std::vector<const CLI::Option*> typed(const CLI::App& sub, const std::vector<std::string>& args) {
  std::vector<const CLI::Option*> out;
  auto options = sub.get_options();
  auto find = [&](auto&& match) -> const CLI::Option* {
    auto it = std::find_if(options.begin(), options.end(), match);
    return it == options.end() ? nullptr : *it;
  };
  for (const auto& a : args) {
    if (a == "--") break;
    if (a.starts_with("--")) {
      std::string name = a.substr(2, a.find('=') - 2);
      if (auto* o = find([&](const CLI::Option* o) { return o->check_lname(name); })) out.push_back(o);
    } else if (a.size() > 1 && a[0] == '-') {  // -w4, -dw 4: flags until one that takes a value
      for (std::size_t i = 1; i < a.size(); ++i) {
        auto* o = find([&](const CLI::Option* o) { return o->check_sname(std::string(1, a[i])); });
        if (!o) break;
        out.push_back(o);
        if (!is_flag(*o)) break;
      }
    }
  }
  return out;
}

std::string toml_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') out += std::string("\\") + c;
    else if (u < 0x20 || u == 0x7f) out += fmt::format("\\u{:04x}", u);
    else out += c;
  }
  return out + "\"";
}

// A value as TOML: bare for a number, quoted otherwise.
std::string toml_value(const CLI::Option& opt, const std::string& v) {
  const auto* e = find_option(key_of(opt));
  bool number = e ? e->kind == option_kind::count || e->kind == option_kind::seconds || e->kind == option_kind::mib
                  : opt.get_type_name().starts_with("INT") || opt.get_type_name().starts_with("UINT") ||
                        opt.get_type_name().starts_with("FLOAT");
  bool parses = !v.empty() && v.find_first_not_of("0123456789.-") == std::string::npos;
  if (e && e->kind == option_kind::texts) number = false;  // --refork-after 1000,2000: its text
  return number && parses ? v : toml_string(v);
}

}  // namespace

config_file read_config(const CLI::App& sub, const std::string& path, const std::vector<std::string>& args) {
  config_file out;
  std::vector<std::pair<std::uint32_t, std::string>> problems;  // by line: in the file's order
  auto problem = [&](const toml::node& at, const std::string& what) {
    problems.emplace_back(at.source().begin.line, fmt::format("{}:{}: {}", path, at.source().begin.line, what));
  };
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    // A file that cannot be opened is a parse error too, at line 0.
    if (e.source().begin.line == 0)
      out.problems.push_back(fmt::format("{}: {}", path, e.description()));
    else
      out.problems.push_back(
          fmt::format("{}:{}:{}: {}", path, e.source().begin.line, e.source().begin.column, e.description()));
    return out;
  }
  auto given = typed(sub, args);
  std::vector<std::string> known;
  for (const auto* opt : sub.get_options())
    if (!key_of(*opt).empty()) known.push_back(key_of(*opt));

  for (auto&& [k, node] : table) {
    std::string key(k.str());
    if (node.is_table()) {
      problem(node, fmt::format("[{}]: the file is one flat table of KEY = VALUE, without sections", key));
      continue;
    }
    auto matching = sub.get_options([&](const CLI::Option* o) {  // --watchdog's other name, --timeout, too
      return !key_of(*o).empty() && (key_of(*o) == key || o->check_lname(key));
    });
    if (matching.empty()) {
      auto closest = std::min_element(known.begin(), known.end(), [&](const auto& a, const auto& b) {
        return distance(key, a) < distance(key, b);
      });
      std::string hint = closest != known.end() && distance(key, *closest) <= 3
                             ? fmt::format(" (did you mean '{}'?)", *closest)
                             : fmt::format(" (see ufork {} --help)", sub.get_name());
      problem(node, fmt::format("unknown key '{}'{}", key, hint));
      continue;
    }
    const CLI::Option& opt = *matching.front();
    if (std::find(given.begin(), given.end(), &opt) != given.end()) {
      out.keys[key_of(opt)] = "flag";
      continue;
    }
    // The values, checked against the option's kind.
    std::vector<std::string> values;
    std::string wrong;
    if (is_flag(opt)) {
      if (!node.is_boolean()) wrong = "true or false";
      else if (node.as_boolean()->get()) values.emplace_back();
    } else if (takes_many(opt) && node.is_array()) {
      for (const auto& item : *node.as_array())
        if (auto w = word_of(item)) values.push_back(*w);
        else wrong = fmt::format("an array of values, not one holding {}", type_of(item));
    } else if (auto w = word_of(node)) {
      values.push_back(*w);
    } else {
      wrong = takes_many(opt) ? "a value or an array of values" : "one value";
    }
    if (!wrong.empty()) {
      problem(node, fmt::format("{}: expected {}{}", key, wrong, wrong.starts_with("an array of values, not")
                                                                       ? ""
                                                                       : fmt::format(", not {}", type_of(node))));
      continue;
    }
    // A table option's value against its range, as the flag's would be.
    if (const auto* e = find_option(key_of(opt)); e && !is_flag(opt)) {
      try {
        ufork::options scratch;
        for (const auto& v : values) e->set(scratch, v);
      } catch (const std::invalid_argument& x) {
        problem(node, fmt::format("{}: {}", key, x.what()));
        continue;
      }
    }
    out.keys[key_of(opt)] = "file";
    if (positional(opt)) {
      out.positional = values;
      continue;
    }
    for (const auto& v : values) {
      out.words.push_back("--" + key);
      if (!is_flag(opt)) out.words.push_back(v);
    }
  }
  std::stable_sort(problems.begin(), problems.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& p : problems) out.problems.push_back(std::move(p.second));
  return out;
}

std::string show_config(const CLI::App& sub, const config_file& file, const std::vector<std::string>& positional_value) {
  std::string out = fmt::format("# ufork {}: each setting, and where it comes from (flag, file, default)\n", sub.get_name());
  for (const auto* opt : sub.get_options()) {
    std::string key = key_of(*opt);
    if (key.empty() || opt->get_group().empty()) continue;  // a hidden flag: refused with why when typed
    auto from = file.keys.find(key);
    bool by_file = from != file.keys.end() && from->second == "file";
    std::vector<std::string> values = positional(*opt) ? positional_value : opt->results();
    const char* source = by_file ? "file" : !values.empty() ? "flag" : "default";
    if (values.empty() && !is_flag(*opt) && !opt->get_default_str().empty()) values.push_back(opt->get_default_str());
    std::string value;
    if (is_flag(*opt)) {
      value = opt->count() > 0 ? "true" : "false";
    } else if (values.empty()) {
      out += fmt::format("# {} =  (not set)\n", key);
      continue;
    } else if (takes_many(*opt) || positional(*opt)) {
      value = "[";
      for (const auto& v : values) value += (value.size() > 1 ? ", " : "") + toml_value(*opt, v);
      value += "]";
      if (key == "app") value = toml_value(*opt, values.front());
    } else {
      value = toml_value(*opt, values.back());
    }
    out += fmt::format("{} = {}  # {}\n", key, value, source);
  }
  return out;
}

}  // namespace ufork::cli
