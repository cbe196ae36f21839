#!/usr/bin/env python3
"""Every Lua C binding in src/lua/*.c -- each `int NAME(lua_State *L) {`
definition, static or not -- carries the Lua manual's stack-effect notation
`[-o, +p, x]` in the comment right above it, e.g.

    /* req:body() -> string  [-1, +1|2, e] */
    static int req_body(lua_State *L) {

Lists file:line:name of each definition whose comment lacks `[-` (or that
has no comment), then prints "bindings: N passed, N failed" (the line
tests/run-all counts). Exits 1 on any failure.

Usage: tests/lint/bindings.py [FILE.c ...]  (default: src/lua/*.c)
"""
import glob
import os
import re
import sys

DEF = re.compile(r'^(?:[A-Za-z_]\w*\s+)*int\s+([A-Za-z_]\w*)\s*\(\s*lua_State\s*\*\s*L\s*\)\s*\{')


def comment_above(lines, i):
    """The comment block that ends on the line just above lines[i], or ''."""
    j = i - 1
    if j < 0 or not lines[j].rstrip().endswith('*/'):
        return ''
    block = []
    while j >= 0:
        block.append(lines[j])
        if '/*' in lines[j]:
            break
        j -= 1
    return '\n'.join(reversed(block))


def check(path):
    with open(path, encoding='utf-8') as f:
        lines = f.read().split('\n')
    passed, failed = 0, []
    for i, line in enumerate(lines):
        m = DEF.match(line)
        if not m:
            continue
        if '[-' in comment_above(lines, i):
            passed += 1
        else:
            failed.append('%s:%d:%s' % (path, i + 1, m.group(1)))
    return passed, failed


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    files = argv[1:] or sorted(glob.glob(os.path.join(root, 'src', 'lua', '*.c')))
    if not files:
        print('bindings: no files under src/lua', file=sys.stderr)
        print('bindings: 0 passed, 1 failed')
        return 1
    passed, failed = 0, []
    for path in files:
        p, f = check(os.path.relpath(path) if not argv[1:] else path)
        passed += p
        failed += f
    for where in failed:
        print('%s: binding without a [-o, +p, x] stack effect in its comment' % where)
    print('bindings: %d passed, %d failed' % (passed, len(failed)))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
