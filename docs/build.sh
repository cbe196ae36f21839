#!/usr/bin/env bash
# docs/build.sh BUILD_DIR: the HTML site and the man page, with pandoc
# (Debian package `pandoc`), into BUILD_DIR/docs. `make docs` runs it.
#
#   BUILD_DIR/docs/index.html, guide/*.html, reference/*.html
#   BUILD_DIR/docs/gust.1           the man page (man -l build/docs/gust.1)
#   BUILD_DIR/docs/man/gust.1.html
#
# Links between pages (x.md, x.md#anchor) become x.html. The C API page
# ends with src/gust.h itself, so the reference always shows the header
# this build was made from.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out="$build/docs"
rm -rf "$out"
mkdir -p "$out"

filter="$out/.links.lua"
cat >"$filter" <<'LUA'
-- x.md and x.md#frag -> x.html and x.html#frag, for relative links only
function Link(el)
  if not el.target:match("^%a[%w+.-]*:") then
    el.target = el.target:gsub("%.md$", ".html"):gsub("%.md#", ".html#")
  end
  return el
end
LUA

css="$out/style.css"
cat >"$css" <<'CSS'
body { max-width: 52em; margin: 2em auto; padding: 0 1em; font: 16px/1.5 sans-serif; color: #222; }
pre, code { font-family: monospace; background: #f5f5f5; }
pre { padding: .6em; overflow-x: auto; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .2em .5em; vertical-align: top; }
h2, h3, h4 { margin-top: 1.6em; } h3 code, h4 code { background: none; }
CSS

# The man page source with its OPTIONS written in from src/proc/options.h,
# the list --help prints.
man_md="$out/.gust.1.md"
python3 docs/man/options.py >"$out/.options.md"
awk -v f="$out/.options.md" '$0 == "@OPTIONS@" { while ((getline l < f) > 0) print l; next } { print }' \
    docs/man/gust.1.md >"$man_md"

n=0
while IFS= read -r md; do
    rel=${md#docs/}
    html="$out/${rel%.md}.html"
    mkdir -p "$(dirname "$html")"
    prefix=$(awk -F/ '{ s = ""; for (i = 1; i < NF; i++) s = s "../"; print s }' <<<"$rel")
    title=$(grep -m1 '^# ' "$md" | sed 's/^# //; s/`//g' || true)
    [ -n "$title" ] || title=$(basename "$md" .md)
    if [ "$rel" = man/gust.1.md ]; then
        md="$man_md"
    elif [ "$rel" = reference/c-api.md ]; then
        # the header itself, as this build has it
        appendix="$out/.c-api-header.md"
        { printf '\n## The header as it is in this build (src/gust.h)\n\n```c\n'
          cat src/gust.h
          printf '```\n'; } >"$appendix"
        cat "$md" "$appendix" >"$out/.c-api.md"
        md="$out/.c-api.md"
    fi
    pandoc -f markdown-smart -t html5 -s --toc --toc-depth=3 \
        --metadata pagetitle="$title" --css "${prefix}style.css" \
        --lua-filter "$filter" -o "$html" "$md"
    n=$((n + 1))
done < <(find docs -name '*.md' | sort)

pandoc -s -f markdown-smart -t man "$man_md" -o "$out/gust.1"
rm -f "$filter" "$out/.c-api-header.md" "$out/.c-api.md" "$man_md" "$out/.options.md"
echo "docs: $n pages in $out/, man page $out/gust.1"
