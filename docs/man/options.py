#!/usr/bin/env python3
"""The man page's OPTIONS entries, from src/proc/options.h (the list main.c
prints --help from), as pandoc markdown on stdout.

    docs/man/options.py [src/proc/options.h]

Each X("term", "summary", "description") becomes

    **-p**, **--port** *PORT*
    :   description
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "..", "src", "proc", "options.h")
ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "'": "'"}


def entries(text):
    """[(term, summary, description)] of GUST_OPTIONS in options.h."""
    body = text.split("#define GUST_OPTIONS(X)", 1)[1].split("#endif", 1)[0]
    body = body.replace("\\\n", "\n")
    out, args, lit, depth, i = [], [], None, 0, 0
    while i < len(body):
        c = body[i]
        if c == '"':
            i += 1
            s = []
            while body[i] != '"':
                if body[i] == "\\":
                    s.append(ESCAPES[body[i + 1]])
                    i += 2
                else:
                    s.append(body[i])
                    i += 1
            lit = (lit or "") + "".join(s)  # adjacent literals join
        elif c == "(":
            depth += 1
        elif c == "," and depth == 1:
            args.append(lit)
            lit = None
        elif c == ")":
            depth -= 1
            if depth == 0:
                args.append(lit)
                if len(args) != 3 or None in args:
                    sys.exit("options.py: an entry is not X(term, summary, description): %r" % args)
                out.append(tuple(args))
                args, lit = [], None
        i += 1
    return out


def term_md(term):
    """"-p, --port PORT" -> "**-p**, **--port** *PORT*"."""
    words = []
    for w in term.split():
        comma = "," if w.endswith(",") else ""
        w = w.rstrip(",")
        words.append(("**%s**" if w.startswith("-") else "*%s*") % w + comma)
    return " ".join(words)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT
    with open(path, encoding="utf-8") as f:
        opts = entries(f.read())
    if not opts:
        sys.exit("options.py: no options in %s" % path)
    for term, _, description in opts:
        print(term_md(term))
        print(":   " + description)
        print()


if __name__ == "__main__":
    main()
