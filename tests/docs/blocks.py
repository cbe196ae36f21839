#!/usr/bin/env python3
"""The fenced code blocks of a docs page, and the files of one of its example
apps: the one reading of docs/CONVENTIONS.md's markers, shared by the docs
suite (tests/docs/run.py) and the tests that use an example from outside it
(tests/browser/guide-chat.test.js).

    tests/docs/blocks.py extract PAGE FILE DIR

writes the example app saved as FILE on PAGE (`lua example file=FILE`) into
DIR, with every file the page saved before it (templates and static files of
`LANG file=NAME`, earlier apps and scripts), as the docs suite's working
directory for that page holds them when it serves the app; prints the app's
path. Fails (exit 1) when the page
has no such example.
"""
import os
import re
import sys

FENCE = re.compile(r"^```(.*)$")


def blocks_of(path):
    """[(line, info words, attrs, text)] for every fenced block."""
    out = []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m:
            start = i + 1
            info = m.group(1).strip()
            j = i + 1
            while j < len(lines) and lines[j].rstrip() != "```":
                j += 1
            words = [w for w in info.split() if "=" not in w]
            attrs = dict(w.split("=", 1) for w in info.split() if "=" in w)
            out.append((start, words, attrs, "\n".join(lines[i + 1:j]) + "\n"))
            i = j + 1
        else:
            i += 1
    return out


def save(dest, text):
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "w", encoding="utf-8") as f:
        f.write(text)


def extract(page, name, dest_dir):
    """Writes the app `lua example file=NAME` of `page`, and the files saved
    before it on that page, into `dest_dir`; returns the app's path."""
    files = []
    for _, words, attrs, text in blocks_of(page):
        file = attrs.get("file")
        if not file:
            continue
        if words[:1] == ["lua"] and "example" in words[1:] and file == name:
            for saved, body in files:
                save(os.path.join(dest_dir, saved), body)
            app = os.path.join(dest_dir, name)
            save(app, text)
            return app
        files.append((file, text))
    raise LookupError("%s has no `lua example file=%s` block" % (page, name))


def main(argv):
    if len(argv) != 5 or argv[1] != "extract":
        sys.stderr.write("usage: %s extract PAGE FILE DIR\n" % argv[0])
        return 2
    try:
        print(extract(argv[2], argv[3], argv[4]))
    except (LookupError, OSError) as err:
        sys.stderr.write("%s\n" % err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
