#!/usr/bin/env python3
"""The docs suite: checks that docs/ covers the API and that its examples run.

    tests/docs/run.py [BUILD_DIR]      (default: build)

Checks, each reported as "PASS name" or "FAIL name: why", then the closing
line "docs: N passed, N failed" that tests/run-all counts:

  * reference coverage, one result per Lua module: tests/docs/coverage.lua
    walks the public modules and classes and looks for an entry heading in
    docs/reference (see docs/CONVENTIONS.md);
  * the C API: every GUST_API function and every gust_config_t field of
    src/gust.h has an entry in docs/reference/c-api.md, and every entry there
    names something the header has;
  * the command line: every option `gust --help` prints is described in the
    man page source docs/man/gust.1.md and in docs/reference/cli.md, they
    describe no option it lacks, and they give the defaults it gives;
  * `make docs` (docs/build.sh, pandoc) builds, and the man page it makes has
    every option;
  * the docs stand alone: no link or path outside the repository, and every
    relative link in docs/ and README.md leads to a file that exists;
  * the examples in docs/**/*.md and README.md, marked in their fence's info
    string (docs/CONVENTIONS.md):
      lua example [file=NAME]  an app: `gust --check` must accept it; the
                               blocks after it are run against it, served on
                               a free port
      http example             "$ curl ..." commands and their expected output
                               ("..." matches any lines, or any text in a line)
      lua client               a luajit script run against the served app
      lua run [file=NAME]      a luajit script on its own; must exit 0
      sh run                   a bash script; must exit 0
      text output              what the block before it prints (lua run/sh run)
    A line of output that is a JSON object or array is compared as JSON, so
    the order of keys (which Lua tables do not keep) does not matter.
      LANG file=NAME           saved as NAME in the page's directory, not run
    In every block, "127.0.0.1:8888" (the default address) is rewritten to
    the port the example app was given.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from blocks import blocks_of

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from gusttest import Server  # noqa: E402 (the harness lives with the integration tests)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.path.join(ROOT, sys.argv[1] if len(sys.argv) > 1 else "build"))
GUST = os.path.join(BUILD, "gust")
DOCS = os.path.join(ROOT, "docs")
REFERENCE = os.path.join(DOCS, "reference")
DEFAULT_ADDR = re.compile(r"(127\.0\.0\.1|localhost):8888\b")
TIMEOUT = 60

results = []  # (ok, name, detail)


def report(ok, name, detail=""):
    results.append((ok, name, detail))
    if ok:
        print("PASS %s" % name)
    else:
        print("FAIL %s: %s" % (name, detail))
    sys.stdout.flush()


def lua_env(cwd=None):
    env = dict(os.environ)
    env["LUA_PATH"] = "%s/lua/?.lua;%s/lua/?/init.lua;./?.lua;;" % (ROOT, ROOT)
    env["LUA_CPATH"] = "%s/lib/?.so;;" % BUILD
    env["GUST"] = ROOT
    env["PATH"] = BUILD + os.pathsep + env.get("PATH", "")
    return env


def md_files():
    out = []
    for dirpath, _, files in os.walk(DOCS):
        for f in files:
            if f.endswith(".md"):
                out.append(os.path.join(dirpath, f))
    out.sort()
    out.append(os.path.join(ROOT, "README.md"))
    return out


def rel(path):
    return os.path.relpath(path, ROOT)


# ---------------------------------------------------------------------------
# Reference coverage


def check_lua_coverage():
    proc = subprocess.run(["luajit", os.path.join(ROOT, "tests", "docs", "coverage.lua"), REFERENCE],
                          cwd=ROOT, env=lua_env(), capture_output=True, text=True, timeout=TIMEOUT)
    seen = False
    for line in proc.stdout.splitlines():
        if line.startswith("PASS "):
            seen = True
            report(True, "reference covers " + line[5:].split(" ")[0])
        elif line.startswith("FAIL "):
            seen = True
            mod, _, why = line[5:].partition(": ")
            report(False, "reference covers " + mod, why)
        elif line.startswith("WARN "):
            print(line)
    if not seen:
        report(False, "reference coverage", "coverage.lua printed nothing:\n" + proc.stdout + proc.stderr)


ENTRY = re.compile(r"^#{2,4}\s+`([^`]+)`", re.M)


def entries_of(path):
    with open(path, encoding="utf-8") as f:
        text = strip_fences(f.read())
    return [re.match(r"[^(\s=]+", m.group(1)).group(0) for m in ENTRY.finditer(text)]


def strip_fences(text):
    return re.sub(r"^```.*?^```[ \t]*$", "", text, flags=re.M | re.S)


def check_c_api():
    header = open(os.path.join(ROOT, "src", "gust.h"), encoding="utf-8").read()
    code = re.sub(r"/\*.*?\*/", " ", header, flags=re.S)
    functions = re.findall(r"\bGUST_API\b[^;{(]*?\b(gust_\w+)\s*\(", code)
    m = re.search(r"typedef\s+struct\s+gust_config\s*\{(.*?)\}\s*gust_config_t\s*;", code, re.S)
    fields = re.findall(r"(\w+)\s*(?:\[[^\]]*\])?\s*;", m.group(1)) if m else []
    macros = re.findall(r"^#define\s+(GUST_\w+)", code, re.M)
    types = re.findall(r"\b(gust_\w+)\b", code)  # types and typedefs (gust_handler_fn)
    path = os.path.join(REFERENCE, "c-api.md")
    if not os.path.exists(path):
        report(False, "c-api.md documents src/gust.h", "docs/reference/c-api.md is missing")
        return
    names = entries_of(path)
    documented = set(names)
    missing = [f for f in functions if f not in documented]
    report(not missing, "c-api.md documents every GUST_API function (%d)" % len(functions),
           "add a heading ### `NAME(...)` to docs/reference/c-api.md for: " + ", ".join(missing))
    missing = [f for f in fields if "gust_config_t." + f not in documented]
    report(not missing, "c-api.md documents every gust_config_t field (%d)" % len(fields),
           "add a heading #### `gust_config_t.FIELD` to docs/reference/c-api.md for: "
           + ", ".join(missing))
    known = set(functions) | set(macros) | set(types) | {"gust_config_t." + f for f in fields}
    stale = [n for n in names if n not in known]
    report(not stale, "c-api.md names only what src/gust.h has",
           "documented but not in src/gust.h: " + ", ".join(stale))


OPTION = r"(?<![\w-])(--[a-z][a-z0-9-]*)"


def help_entries(text):
    """[(options, default or None)] of `gust --help`: one entry per line that
    starts with an option, continuation lines included."""
    entries = []
    for line in text.splitlines():
        if re.match(r"\s+-", line):
            entries.append(line)
        elif entries and re.match(r"\s+\S", line):
            entries[-1] += " " + line.strip()
    out = []
    for e in entries:
        m = re.search(r"[(;] *default ([^;,)\s]+)", e)
        out.append((re.findall(OPTION, e), m.group(1) if m else None))
    return out


def man_entry(text, option):
    """The paragraph of the man page source that describes `option`."""
    m = re.search(r"^(?=\*\*)[^\n]*?\*\*" + re.escape(option) + r"\*\*.*?(?=^\*\*|^#|\Z)", text,
                  re.M | re.S)
    return m.group(0) if m else ""


def cli_default(text, option):
    """The default column of `option`'s row in cli.md's table, or None."""
    for row in re.findall(r"^\|(.*)\|\s*$", text, re.M):
        cells = [c.strip() for c in row.split("|")]
        if len(cells) >= 3 and re.search(re.escape(option) + r"(?![\w-])", cells[0]):
            return cells[1].replace("`", "")
    return None


def man_source(path):
    """The man page source as docs/build.sh makes it: its OPTIONS written
    in from src/proc/options.h by docs/man/options.py."""
    if not os.path.exists(path):
        return ""
    options = subprocess.run([sys.executable, os.path.join(DOCS, "man", "options.py")],
                             capture_output=True, text=True, timeout=TIMEOUT, check=True).stdout
    return open(path, encoding="utf-8").read().replace("@OPTIONS@", options)


def check_cli():
    """--help, the man page and cli.md describe the same options with the
    same defaults (the man page's come from the list --help prints, its
    descriptions and cli.md are prose of their own: this is what keeps
    them from drifting from --help)."""
    out = subprocess.run([GUST, "--help"], capture_output=True, text=True, timeout=TIMEOUT).stdout
    options = sorted(set(re.findall(OPTION, out)))
    if not options:
        report(False, "gust --help lists options", "no --option found in:\n" + out)
        return
    man_path = os.path.join(DOCS, "man", "gust.1.md")
    cli_path = os.path.join(REFERENCE, "cli.md")
    for doc in (man_path, cli_path):
        if doc == man_path:
            text = man_source(doc)
        else:
            text = open(doc, encoding="utf-8").read() if os.path.exists(doc) else ""
        missing = [o for o in options if not re.search(re.escape(o) + r"(?![\w-])", text)]
        report(not missing, "%s describes every option of gust --help (%d)" % (rel(doc), len(options)),
               "not described: " + ", ".join(missing))
        named = re.findall(r"\*\*" + OPTION + r"\*\*", text) if doc == man_path else \
            re.findall(r"^\|[^|]*?`" + OPTION, text, re.M)
        stale = sorted(set(o for o in named if o not in options))
        report(not stale, "%s describes no option gust --help lacks" % rel(doc),
               "not in gust --help: " + ", ".join(stale))
    man = man_source(man_path)
    cli = open(cli_path, encoding="utf-8").read() if os.path.exists(cli_path) else ""
    wrong = []
    for opts, default in help_entries(out):
        if default is None or not opts:
            continue
        entry = man_entry(man, opts[0])
        if not re.search(r"(?<![\w.])" + re.escape(default) + r"(?![\w.])", entry, re.I):
            wrong.append("%s: gust --help says default %s, gust.1.md does not" % (opts[0], default))
        got = cli_default(cli, opts[0])
        if got is None or got.lower() != default.lower():
            wrong.append("%s: gust --help says default %s, cli.md %s" % (opts[0], default, got))
    report(not wrong, "the man page and cli.md give the defaults gust --help gives", "; ".join(wrong))


def check_docs_build():
    """make docs: every page converts, and the man page has every option."""
    if not shutil.which("pandoc"):
        report(False, "make docs builds the HTML and gust(1)", "pandoc is missing: run make deps")
        return
    tmp = tempfile.mkdtemp(prefix="gust-docs-build-")
    try:
        proc = subprocess.run([os.path.join(DOCS, "build.sh"), tmp], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        man = os.path.join(tmp, "docs", "gust.1")
        if proc.returncode != 0 or not os.path.exists(man):
            report(False, "make docs builds the HTML and gust(1)", proc.stdout + proc.stderr)
            return
        roff = open(man, encoding="utf-8").read().replace("\\-", "-")
        out = subprocess.run([GUST, "--help"], capture_output=True, text=True, timeout=TIMEOUT).stdout
        options = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out)))
        missing = [o for o in options if o not in roff]
        report(not missing, "make docs builds the HTML and gust(1), which has every option",
               "not in the built man page: " + ", ".join(missing))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


FORBIDDEN = re.compile(r"\.\./shared|shared/DESIGN|shared/STYLE|/work/|DESIGN\.md|STYLE\.md")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def check_standalone():
    bad, broken = [], []
    for path in md_files():
        text = open(path, encoding="utf-8").read()
        for i, line in enumerate(text.splitlines(), 1):
            if FORBIDDEN.search(line):
                bad.append("%s:%d" % (rel(path), i))
        for target in LINK.findall(strip_fences(text)):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            file = target.split("#", 1)[0]
            if not os.path.exists(os.path.normpath(os.path.join(os.path.dirname(path), file))):
                broken.append("%s -> %s" % (rel(path), target))
    report(not bad, "docs and README name nothing outside the repository",
           "outside paths at " + ", ".join(bad))
    report(not broken, "every relative link in docs/ and README.md resolves", "; ".join(broken))


# ---------------------------------------------------------------------------
# Examples (their blocks: blocks.py, shared with the browser tests)


def expected_regex(expected):
    """Both sides are compared with a newline after every line."""
    rx = ""
    for line in expected.rstrip("\n").split("\n"):
        line = line.rstrip()
        if line == "...":
            rx += r"(?:[^\n]*\n)*?"
        else:
            rx += ".*?".join(re.escape(p) for p in line.split("...")) + r"\n"
    return re.compile(rx + r"\Z")


def canonical_json(line):
    """A line that is a JSON object or array, with its keys sorted: Lua
    tables have no key order, so neither does the comparison."""
    s = line.strip()
    if s[:1] in ("{", "[") and "..." not in s:
        try:
            return json.dumps(json.loads(s), sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False)
        except ValueError:
            pass
    return line


def normalise(text):
    lines = text.replace("\r\n", "\n").rstrip("\n").split("\n")
    return "\n".join(canonical_json(l.rstrip()) for l in lines) + "\n"


def matches(expected, actual):
    return expected_regex(normalise(expected)).match(normalise(actual)) is not None


def rewrite(text, port):
    return DEFAULT_ADDR.sub("127.0.0.1:%d" % port, text) if port else text


def commands_of(transcript):
    """[(command, expected output)] from "$ cmd" lines and what follows them."""
    out = []
    cmd, expected, cont = None, [], False
    for line in transcript.rstrip("\n").split("\n"):
        if cont:
            cmd += "\n" + line
            cont = line.endswith("\\")
        elif line.startswith("$ "):
            if cmd is not None:
                out.append((cmd, "\n".join(expected)))
            cmd, expected = line[2:], []
            cont = line.endswith("\\")
        elif cmd is not None:
            expected.append(line)
    if cmd is not None:
        out.append((cmd, "\n".join(expected)))
    return out


def run_script(argv, cwd, name, expected=None):
    try:
        proc = subprocess.run(argv, cwd=cwd, env=lua_env(), capture_output=True, text=True,
                              timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        report(False, name, "timed out after %d s" % TIMEOUT)
        return
    if proc.returncode != 0:
        report(False, name, "exit %d\n%s%s" % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    elif expected is not None and not matches(expected, proc.stdout):
        report(False, name, "output differs.\n--- expected\n%s\n--- got\n%s" % (expected, proc.stdout))
    else:
        report(True, name)


def run_page(path, workroot):
    blocks = blocks_of(path)
    if not any(("example" in w or "run" in w or "client" in w) for _, w, _, _ in blocks):
        return
    slug = rel(path).replace("/", "_").replace(".md", "")
    cwd = os.path.join(workroot, slug)
    os.makedirs(cwd, exist_ok=True)
    app, app_line, server, n = None, None, None, 0
    try:
        for k, (line, words, attrs, text) in enumerate(blocks):
            where = "%s:%d" % (rel(path), line)
            lang = words[0] if words else ""
            kinds = set(words[1:])
            nxt = blocks[k + 1] if k + 1 < len(blocks) else None
            expected = nxt[3] if nxt and nxt[1][:2] == ["text", "output"] else None
            file = attrs.get("file")
            if file and "example" not in kinds and "run" not in kinds:
                dest = os.path.join(cwd, file)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(dest, "w", encoding="utf-8") as f:
                    f.write(text)
                continue
            if lang == "lua" and "example" in kinds:
                n += 1
                if server:
                    server.stop(check=False)
                    server = None
                app = file or "example-%d.lua" % n
                app_line = where
                dest = os.path.join(cwd, app)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(dest, "w", encoding="utf-8") as f:
                    f.write(text)
                proc = subprocess.run([GUST, "--check", app], cwd=cwd, env=lua_env(),
                                      capture_output=True, text=True, timeout=TIMEOUT)
                report(proc.returncode == 0, "%s lua example (gust --check)" % where, proc.stderr)
            elif ((lang == "http" and "example" in kinds) or (lang == "lua" and "client" in kinds)
                  or (lang == "sh" and "run" in kinds and app is not None and DEFAULT_ADDR.search(text))):
                if app is None:
                    report(False, where, "no `lua example` app before this block")
                    continue
                if server is None:
                    try:
                        server = Server(app, binary=GUST, cwd=cwd, env=lua_env())
                    except RuntimeError as e:
                        report(False, "%s serve %s" % (where, app_line), str(e))
                        continue
                if expected is not None:
                    expected = rewrite(expected, server.port)
                if lang == "sh":
                    run_script(["bash", "-e", "-c", rewrite(text, server.port)], cwd,
                               "%s sh run" % where, expected)
                    continue
                if lang == "http":
                    for cmd, want in commands_of(text):
                        name = "%s $ %s" % (where, cmd.split("\n")[0][:70])
                        want = rewrite(want, server.port)
                        try:
                            proc = subprocess.run(["bash", "-c", rewrite(cmd, server.port)], cwd=cwd,
                                                  env=lua_env(), capture_output=True, text=True,
                                                  timeout=TIMEOUT)
                            got = proc.stdout
                        except subprocess.TimeoutExpired:
                            got = "(timed out)"
                        if matches(want, got):
                            report(True, name)
                        else:
                            report(False, name, "answer differs.\n--- expected\n%s\n--- got\n%s\n"
                                   "--- server log\n%s" % (want, got, server.stderr()))
                else:
                    script = os.path.join(cwd, "client-%d.lua" % line)
                    with open(script, "w", encoding="utf-8") as f:
                        f.write(rewrite(text, server.port))
                    run_script(["luajit", script], cwd, "%s lua client" % where, expected)
            elif lang == "lua" and "run" in kinds:
                script = os.path.join(cwd, file or "run-%d.lua" % line)
                os.makedirs(os.path.dirname(script), exist_ok=True)
                with open(script, "w", encoding="utf-8") as f:
                    f.write(rewrite(text, server.port if server else None))
                run_script(["luajit", script], cwd, "%s lua run" % where, expected)
            elif lang == "sh" and "run" in kinds:
                run_script(["bash", "-e", "-c", rewrite(text, server.port if server else None)], cwd,
                           "%s sh run" % where, expected)
    finally:
        if server:
            server.stop(check=False)


def main():
    if not os.access(GUST, os.X_OK):
        report(False, "build", "%s is missing: run make first" % GUST)
    else:
        # DOCS_ONLY=guide/handlers runs the examples of matching pages only.
        only = os.environ.get("DOCS_ONLY")
        if not only:
            check_lua_coverage()
            check_c_api()
            check_cli()
            check_standalone()
            check_docs_build()
        workroot = tempfile.mkdtemp(prefix="gust-docs-")
        try:
            for path in md_files():
                if not only or only in path:
                    run_page(path, workroot)
        finally:
            shutil.rmtree(workroot, ignore_errors=True)
    passed = sum(1 for ok, _, _ in results if ok)
    failed = len(results) - passed
    print("docs: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
