#include "docs.hpp"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string_view>

#include "ufork/arbiter.hpp"
#include "ufork/version.hpp"

namespace ufork::cli {
namespace {

bool listed(const CLI::Option* o) { return !o->get_group().empty(); }
bool takes_value(const CLI::Option* o) { return o->get_expected_min() > 0; }

// Text for roff: a backslash as \e, a hyphen as \- (a minus: what a user
// types), a line that starts with . or ' kept from being a request.
std::string roff(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\')
      out += "\\e";
    else if (c == '-')
      out += "\\-";
    else
      out += c;
  }
  if (!out.empty() && (out.front() == '.' || out.front() == '\'')) out.insert(0, "\\&");
  return out;
}

std::string page_name(const CLI::App* sub) { return sub ? "ufork-" + sub->get_name() : "ufork"; }

// "-w, --workers INT" (a flag without a value: its names alone).
std::string names_of(const CLI::Option* o) {
  std::string names;
  for (const auto& s : o->get_snames()) names += (names.empty() ? "" : ", ") + ("\\fB\\-" + s + "\\fR");
  for (const auto& l : o->get_lnames()) names += (names.empty() ? "" : ", ") + ("\\fB\\-\\-" + roff(l) + "\\fR");
  if (takes_value(o)) {
    std::string type = o->get_type_name();
    names += " \\fI" + roff(type.substr(0, type.find(':'))) + "\\fR";
  }
  return names;
}

void man_page(const CLI::App& app, const CLI::App* sub, std::ostream& out) {
  const std::string name = page_name(sub);
  std::string upper;
  for (char c : name) upper += static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  out << ".\\\" Made by `ufork _docs` from the command's own parser: do not edit.\n"
      << ".TH " << upper << " 1 \"\" \"ufork " << UFORK_VERSION_STRING << "\" \"User Commands\"\n"
      << ".SH NAME\n" << roff(name) << " \\- " << roff(sub ? sub->get_description() : app.get_description()) << "\n"
      << ".SH SYNOPSIS\n";
  if (!sub) {
    out << ".B ufork\n\\fISUBCOMMAND\\fR [\\fIOPTIONS\\fR]\n.br\n.B ufork \\-\\-version\n"
        << ".SH DESCRIPTION\nufork pre-forks worker processes and keeps them running: it replaces the dead, "
           "kills the hung, echoes their output line by line, and stops them all cleanly. Each subcommand has "
           "its own page.\n.SH SUBCOMMANDS\n";
    for (const CLI::App* s : app.get_subcommands([](const CLI::App* a) { return !a->get_group().empty(); }))
      out << ".TP\n.B " << s->get_name() << "\n" << roff(s->get_description()) << " (" << page_name(s) << "(1))\n";
    out << ".SH EXIT STATUS\n0 on success; 1 an error at run time (an address in use, an arbiter's error answer); "
           "2 a usage error (a flag with a wrong value, said in one line); 3 no worker could ever start, or "
           "nothing answers at a control socket. Each subcommand's page lists its own.\n";
  } else {
    out << ".B ufork " << sub->get_name() << "\n[\\fIOPTIONS\\fR]";
    for (const CLI::Option* o : sub->get_options([](const CLI::Option* o) { return o->get_positional(); }))
      out << " \\fI" << roff(o->get_name(true)) << "\\fR";
    if (sub->get_name() == "run") out << " \\-\\- \\fICMD\\fR [\\fIARGS\\fR...]";
    out << "\n.SH DESCRIPTION\n" << roff(sub->get_description()) << ".\n";
    auto positionals = sub->get_options([](const CLI::Option* o) { return o->get_positional(); });
    if (!positionals.empty()) {
      out << ".SH ARGUMENTS\n";
      for (const CLI::Option* o : positionals)
        out << ".TP\n.I " << roff(o->get_name(true)) << "\n" << roff(o->get_description()) << "\n";
    }
    out << ".SH OPTIONS\n";
    for (const CLI::Option* o : sub->get_options([](const CLI::Option* o) { return !o->get_positional(); })) {
      if (!listed(o)) continue;
      std::string type = o->get_type_name(), range;
      if (auto colon = type.find(':'); colon != std::string::npos) range = type.substr(colon + 1);
      out << ".TP\n" << names_of(o) << "\n" << roff(o->get_description());
      if (!range.empty() && range != "HOST:PORT") out << " (" << roff(range) << ")";
      if (!o->get_default_str().empty()) out << "; default: " << roff(o->get_default_str());
      out << "\n";
    }
    out << ".SH EXIT STATUS\n0 stopped on request, or done; 1 an error at run time; 2 a usage error, said in one "
           "line; 3 no worker could ever start, or nothing answers at the socket. The whole table: "
           "docs/exit-codes.md.\n";
  }
  out << ".SH SEE ALSO\n";
  std::string see = "ufork(1)";
  for (const CLI::App* s : app.get_subcommands([](const CLI::App* a) { return !a->get_group().empty(); }))
    if (s != sub) see += ", " + page_name(s) + "(1)";
  if (!sub) see = see.substr(see.find(", ") + 2);
  out << see << "\n";
}

// ufork.toml(5): the --config file's keys, from the serving subcommands'
// flags (cli/config.cpp reads them the same way).
void config_page(const CLI::App& app, std::ostream& out) {
  struct key {
    std::string name;
    const CLI::Option* option;
    std::string subs;
  };
  std::vector<key> keys;
  for (const char* name : {"run", "hello", "wsgi", "asgi"}) {
    const CLI::App* sub = app.get_subcommand(name);
    for (const CLI::Option* o : sub->get_options()) {
      std::string k = o->get_single_name() == "MODULE:APP" ? "app" : o->get_single_name();
      if (k == "help" || k == "config" || !(listed(o) || o->get_positional())) continue;
      auto it = std::find_if(keys.begin(), keys.end(), [&](const key& x) { return x.name == k; });
      if (it == keys.end()) keys.push_back({k, o, name});
      else it->subs += std::string(", ") + name;
    }
  }
  out << ".\\\" Made by `ufork _docs` from the command's own parser: do not edit.\n"
      << ".TH UFORK.TOML 5 \"\" \"ufork " << UFORK_VERSION_STRING << "\" \"File Formats\"\n"
      << ".SH NAME\nufork.toml \\- the settings of a ufork pool, for \\-\\-config\n"
      << ".SH SYNOPSIS\n.B ufork run \\-\\-config /etc/ufork/\\fINAME\\fB.toml\\fR\n.br\n"
      << ".B ufork config show\\fR|\\fBcheck\\fR [\\fBrun\\fR|\\fBhello\\fR|\\fBwsgi\\fR|\\fBasgi\\fR] "
         "\\fB\\-\\-config\\fR \\fIFILE\\fR [\\fIFLAGS\\fR]\n"
      << ".SH DESCRIPTION\n"
      << roff("A TOML file: one flat table (no sections), a key per long flag, spelt as the flag without its "
              "dashes. A value is what the flag takes: a number (seconds may have a fraction), a string, true "
              "for a flag without a value, an array for a flag given several times. The program to run is "
              "command (an array: the program and its arguments), the Python app is app. A flag typed on the "
              "command line wins over the file's key, which wins over the default: ufork config show prints "
              "each setting with where it came from, as TOML. An unknown key (with the closest known one), a "
              "value of the wrong type or out of its range is one line each, and exit status 2: nothing starts.")
      << "\n.PP\n"
      << roff("A reload (SIGHUP, systemctl reload, ufork ctl reload) reads the file again, with the flags typed "
              "at the start: the new workers, timeouts, recycling limits and, for run, command, env, chdir, "
              "ready-after and watchdog take effect, each worker's successor started with them; any other "
              "key that changed (bind, user, control, log, ...) is logged as taking a restart. A file with a "
              "problem refuses the reload, saying why, and the pool goes on as it was.")
      << "\n"
      << ".SH KEYS\n";
  for (const key& k : keys) {
    std::string type = k.option->get_type_name(), range;
    if (auto colon = type.find(':'); colon != std::string::npos) range = type.substr(colon + 1);
    std::string what = k.option->get_positional() ? (k.name == "command" ? "array of strings" : "string")
                       : !takes_value(k.option)   ? "true or false"
                       : k.option->get_items_expected_max() > 1 ? "array"
                                                                : type.substr(0, type.find(':'));
    out << ".TP\n.B " << roff(k.name) << " \\fR(" << roff(what) << "; " << roff(k.subs) << ")\n"
        << roff(k.option->get_description());
    if (!range.empty() && range != "HOST:PORT") out << " (" << roff(range) << ")";
    if (!k.option->get_default_str().empty()) out << "; default: " << roff(k.option->get_default_str());
    out << "\n";
  }
  out << ".SH EXAMPLE\n.nf\n"
      << roff("# /etc/ufork/app.toml, for ufork@app.service\n"
              "command = [\"/usr/bin/python3\", \"/srv/app/server.py\"]\n"
              "workers = 4\n"
              "bind = [\"127.0.0.1:8080\"]\n"
              "graceful-timeout = 20\n"
              "control = \"/run/ufork-app/control.sock\"\n"
              "user = \"www-data\"\n")
      << ".fi\n.SH SEE ALSO\nufork(1), ufork-run(1), ufork-config(1)\n";
}

// `ufork ...` completed by bash: subcommands, each one's flags, file and
// directory names for the flags that take them, users and groups, ctl's
// commands (asked of the arbiter at --socket when it answers, else the
// built-in ones), and after `run ... --` a command.
void bash_completion(const CLI::App& app, std::ostream& out) {
  auto subs = app.get_subcommands([](const CLI::App* a) { return !a->get_group().empty(); });
  const std::set<std::string> files = {"--log", "--pidfile", "--control", "--socket", "--access-log", "--config"};
  out << "# bash completion for ufork. Made by `ufork _docs` from the command's own parser: do not edit.\n"
         "_ufork() {\n"
         "  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} sub= i socket= positional=0\n"
         "  local flags= valued= files= dirs=\n"
         "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
         "    case ${COMP_WORDS[i]} in\n"
         "      --) if [[ $sub == run ]]; then  # the command: a path, or a name on PATH\n"
         "            if [[ $cur == */* ]]; then COMPREPLY=($(compgen -f -- \"$cur\")); else COMPREPLY=($(compgen -c -- \"$cur\" | sort -u)); fi\n"
         "            return\n"
         "          fi ;;\n"
         "      -*) ;;\n"
         "      *) if [[ -z $sub ]]; then sub=${COMP_WORDS[i]}; fi ;;\n"
         "    esac\n"
         "  done\n"
         "  if [[ -z $sub ]]; then\n"
         "    COMPREPLY=($(compgen -W \"";
  for (const CLI::App* s : subs) out << s->get_name() << ' ';
  out << "--version --help\" -- \"$cur\"))\n    return\n  fi\n  case $sub in\n";
  for (const CLI::App* s : subs) {
    std::string flags, valued, with_files, with_dirs;
    for (const CLI::Option* o : s->get_options([](const CLI::Option* o) { return !o->get_positional(); })) {
      std::vector<std::string> names;
      for (const auto& n : o->get_snames()) names.push_back("-" + n);
      for (const auto& n : o->get_lnames()) names.push_back("--" + n);
      for (const auto& n : names) {
        if (listed(o)) flags += n + ' ';
        if (takes_value(o)) valued += n + ' ';
        if (files.contains(names.back())) with_files += n + ' ';
        if (names.back() == "--chdir") with_dirs += n + ' ';
      }
    }
    out << "    " << s->get_name() << ") flags=\"" << flags << "\" valued=\"" << valued << "\" files=\"" << with_files
        << "\" dirs=\"" << with_dirs << "\" ;;\n";
  }
  out << "  esac\n"
         "  # The words after the subcommand: which flag's value this is, and how\n"
         "  # many arguments came before it; --socket's value, for ctl.\n"
         "  for ((i = 2; i < COMP_CWORD; i++)); do\n"
         "    if [[ \" $valued \" == *\" ${COMP_WORDS[i]} \"* ]]; then\n"
         "      [[ ${COMP_WORDS[i]} == --socket || ${COMP_WORDS[i]} == -s ]] && socket=${COMP_WORDS[i+1]}\n"
         "      ((i++))\n"
         "    elif [[ ${COMP_WORDS[i]} != -* ]]; then\n"
         "      ((positional++))\n"
         "    fi\n"
         "  done\n"
         "  if [[ \" $valued \" == *\" $prev \"* ]]; then\n"
         "    if [[ \" $files \" == *\" $prev \"* ]]; then COMPREPLY=($(compgen -f -- \"$cur\"))\n"
         "    elif [[ \" $dirs \" == *\" $prev \"* ]]; then COMPREPLY=($(compgen -d -- \"$cur\"))\n"
         "    elif [[ $prev == --user ]]; then COMPREPLY=($(compgen -u -- \"$cur\"))\n"
         "    elif [[ $prev == --group ]]; then COMPREPLY=($(compgen -g -- \"$cur\"))\n"
         "    fi\n"
         "    return\n"
         "  fi\n"
         "  if [[ $cur == -* ]]; then\n"
         "    COMPREPLY=($(compgen -W \"$flags\" -- \"$cur\"))\n"
         "  elif [[ $sub == ctl ]]; then\n"
         "    local known=\"";
  for (const auto& c : builtin_commands()) out << c << ' ';
  out << "\"\n"
         "    if ((positional == 0)) && [[ -n $socket && -S $socket ]]; then\n"
         "      known=$(\"${COMP_WORDS[0]}\" ctl --socket \"$socket\" complete 2>/dev/null) || known=\"${known}\"\n"
         "    fi\n"
         "    ((positional == 0)) && COMPREPLY=($(compgen -W \"$known follow\" -- \"$cur\"))\n"
         "  elif [[ $sub == wsgi ]]; then\n"
         "    COMPREPLY=($(compgen -f -X '!*.py' -- \"$cur\" | sed 's/\\.py$//') $(compgen -d -- \"$cur\"))\n"
         "  fi\n"
         "}\n"
         "complete -F _ufork ufork\n";
}

bool write(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  f.close();
  if (!f) std::cerr << "ufork _docs: cannot write " << path << "\n";
  return static_cast<bool>(f);
}

}  // namespace

int write_docs(const CLI::App& app, const std::string& dir) {
  bool ok = true;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App* a) { return !a->get_group().empty(); })) {
    std::ostringstream page;
    man_page(app, sub, page);
    ok = write(dir + "/" + page_name(sub) + ".1", page.str()) && ok;
  }
  std::ostringstream main_page, completion, config;
  man_page(app, nullptr, main_page);
  config_page(app, config);
  ok = write(dir + "/ufork.toml.5", config.str()) && ok;
  bash_completion(app, completion);
  ok = write(dir + "/ufork.1", main_page.str()) && ok;
  ok = write(dir + "/ufork.bash", completion.str()) && ok;
  return ok ? 0 : 1;
}

}  // namespace ufork::cli
