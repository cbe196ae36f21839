local template = require "gust.template"
local lfs = require "lfs"

local Template, Loader = template.Template, template.Loader

-- tests/lua/templates, wherever busted runs from.
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local ROOT = HERE .. "/templates"

local function render(source, ns, opts)
  return Template(source, opts):generate(ns or {})
end

-- The message of the error fn raises (fn must raise).
local function error_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function squash(s) -- fixtures end in newlines; compare without them
  return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
end

describe("gust.template", function()
  it("has a version", function()
    assert.equal("0.1.0", template._VERSION)
  end)

  describe("expressions", function()
    it("renders Lua expressions against the namespace", function()
      assert.equal("Hello, World! 3", render("Hello, {{ name }}! {{ 1 + 2 }}", { name = "World" }))
      assert.equal("5 x-y", render("{{ #s }} {{ a .. '-' .. b }}", { s = "abcde", a = "x", b = "y" }))
    end)

    it("HTML-escapes {{ }} output", function()
      assert.equal("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;",
                   render("{{ v }} {{ '&' }} {{ '\"' }}", { v = "<script>alert('x')</script>" }))
    end)

    it("leaves {% raw %} output alone", function()
      assert.equal("<b>bold</b> &lt;b&gt;", render("{% raw v %} {{ v:sub(1, 3) }}", { v = "<b>bold</b>" }))
    end)

    it("renders nil as nothing and other values through tostring", function()
      assert.equal("[][][true][false][1.5]",
                   render("[{{ missing }}][{% raw nothing %}][{{ t }}][{{ f }}][{{ n }}]",
                          { t = true, f = false, n = 1.5 }))
      local obj = setmetatable({}, { __tostring = function() return "<obj>" end })
      assert.equal("&lt;obj&gt;", render("{{ o }}", { o = obj }))
    end)

    it("offers Tornado's helpers and a safe standard library", function()
      local out = render("{% raw escape('<') %}|{% raw url_escape('a b&') %}|{% raw json_encode({1, 2}) %}"
                         .. "|{{ squeeze('  a   b ') }}|{{ string.upper('x') }}|{{ math.max(1, 4) }}"
                         .. "|{{ table.concat({'a', 'b'}, ',') }}|{{ tonumber('7') + 1 }}|{{ type(os.date()) }}"
                         .. "|{{ os.execute }}{{ io }}{{ require }}{{ debug }}{{ _G }}{{ loadstring }}")
      assert.equal("&lt;|a+b%26|[1,2]|a b|X|4|a,b|8|string|", out)
    end)

    it("lets the namespace shadow helpers and does not modify it", function()
      local ns = { escape = function(s) return "!" .. s end }
      assert.equal("!x", render("{% raw escape('x') %}", ns))
      assert.same({ "escape" }, (function() local k = {} for n in pairs(ns) do k[#k + 1] = n end return k end)())
    end)

    it("accepts expressions over several lines and with comments", function()
      assert.equal("3", render("{{\n  1 +\n  2 -- sum\n}}"))
    end)

    it("escapes with the function {% autoescape %} names, or not at all with nil", function()
      assert.equal("<i>", render("{% autoescape nil %}{{ v }}", { v = "<i>" }))
      assert.equal("[<i>]", render("{% autoescape brackets %}{{ v }}",
                                   { v = "<i>", brackets = function(s) return "[" .. s .. "]" end }))
      assert.equal("<i>", render("{{ v }}", { v = "<i>" }, { autoescape = false }))
      assert.equal("I", render("{{ v }}", { v = "i" }, { autoescape = string.upper }))
    end)
  end)

  describe("control flow", function()
    it("if / elseif / else", function()
      local t = Template("{% if n > 10 %}big{% elseif n > 5 %}medium{% else %}small{% end %}")
      assert.equal("big", t:generate({ n = 11 }))
      assert.equal("medium", t:generate({ n = 6 }))
      assert.equal("small", t:generate({ n = 1 }))
      assert.equal("yes", render("{% if x %}yes{% elif y %}no{% end %}", { x = true }))
    end)

    it("for over a plain table walks its values", function()
      assert.equal("<a><b&amp;>", render("{% for x in items %}<{{ x }}>{% end %}", { items = { "a", "b&" } }))
      assert.equal("", render("{% for x in items %}<{{ x }}>{% end %}", { items = {} }))
    end)

    it("for with an iterator, pairs and a numeric range", function()
      assert.equal("1:a 2:b ", render("{% for i, v in ipairs(t) %}{{ i }}:{{ v }} {% end %}",
                                      { t = { "a", "b" } }))
      assert.equal("k=v", render("{% for k, v in pairs(t) %}{{ k }}={{ v }}{% end %}", { t = { k = "v" } }))
      assert.equal("1 2 3 ", render("{% for i = 1, n %}{{ i }} {% end %}", { n = 3 }))
      assert.equal("10 8 6 ", render("{% for i = 10, 5, -2 %}{{ i }} {% end %}"))
      assert.equal("ab", render("{% for w in s:gmatch('%a') %}{{ w }}{% end %}", { s = "a1b" }))
    end)

    it("while, break and continue", function()
      assert.equal("321", render("{% set i = 3 %}{% while i > 0 %}{{ i }}{% set i = i - 1 %}{% end %}"))
      assert.equal("12", render("{% for i = 1, 5 %}{% if i == 3 %}{% break %}{% end %}{{ i }}{% end %}"))
      assert.equal("1245", render("{% for i = 1, 5 %}{% if i == 3 %}{% continue %}{% end %}{{ i }}{% end %}"))
    end)

    it("nests loops and conditions", function()
      local out = render("{% for _, r in ipairs(rows) %}[{% for _, c in ipairs(r) %}"
                         .. "{% if c % 2 == 0 %}{{ c }}{% end %}{% end %}]{% end %}",
                         { rows = { { 1, 2, 3, 4 }, { 6 } } })
      assert.equal("[24][6]", out)
    end)

    it("{% set %} makes render-wide locals that start from the namespace", function()
      assert.equal("2", render("{% set x = 1 %}{% set x = x + 1 %}{{ x }}"))
      assert.equal("6", render("{% set total = 0 %}{% for _, v in ipairs(t) %}"
                               .. "{% set total = total + v %}{% end %}{{ total }}",
                               { t = { 1, 2, 3 } }))
      local dflt = "{% set title = title or 'Default' %}{{ title }}"
      assert.equal("Default", render(dflt, {}))
      assert.equal("Given", render(dflt, { title = "Given" }))
      assert.equal("1 2", render("{% set a, b = 1, 2 %}{{ a }} {{ b }}"))
      assert.equal("v", render("{% set t = {} %}{% set t.k = 'v' %}{{ t.k }}"))
    end)

    it("{% apply %} passes the body's output through a function", function()
      assert.equal("<HELLO WORLD>", render("<{% apply string.upper %}hello {{ who }}{% end %}>",
                                           { who = "world" }))
    end)
  end)

  describe("comments and literal braces", function()
    it("drops {# #} and {% comment %}", function()
      assert.equal("ab", render("a{# not {{ shown }} #}{% comment nor this %}b"))
      assert.equal("a\nb", render("a{# spans\nlines #}\nb"))
    end)

    it("writes {{! {%! {#! as the literal braces", function()
      assert.equal("{{ x }} {% if %} {# c #}", render("{{! x }} {%! if %} {#! c #}"))
    end)

    it("keeps single braces and uses the innermost pair of {{{", function()
      assert.equal("{a} {1}", render("{a} {{{ 1 }}}"))
      assert.equal("function() { return 1 }", render("function() { return 1 }"))
    end)
  end)

  describe("whitespace", function()
    local src = "<p>\n\n   a    b\t\tc  \n\n</p>"

    it("collapses runs to one character in .html and .js files by default", function()
      assert.equal("<p>\na b c\n</p>", render(src, nil, { name = "x.html" }))
      assert.equal("<p>\na b c\n</p>", render(src, nil, { name = "x.js" }))
    end)

    it("keeps everything in other files and with whitespace = 'all'", function()
      assert.equal(src, render(src))
      assert.equal(src, render(src, nil, { name = "x.txt" }))
      assert.equal(src, render(src, nil, { name = "x.html", whitespace = "all" }))
    end)

    it("supports single, oneline and the {% whitespace %} directive", function()
      assert.equal("<p>\na b c\n</p>", render(src, nil, { whitespace = "single" }))
      assert.equal("<p> a b c </p>", render(src, nil, { whitespace = "oneline" }))
      assert.equal("a  b|c d", render("a  b|{% whitespace oneline %}c   d"))
    end)

    it("leaves text with <pre> alone", function()
      local pre = "<pre>\n  x   y\n</pre>"
      assert.equal(pre, render(pre, nil, { name = "x.html" }))
    end)

    it("refuses unknown modes", function()
      assert.matches("whitespace", error_of(Template, "x", { whitespace = "none" }))
      assert.equal("x:1: invalid whitespace mode 'sometimes'",
                   error_of(Template, "{% whitespace sometimes %}", { name = "x" }))
    end)
  end)

  describe("Loader", function()
    local loader

    before_each(function()
      loader = Loader(ROOT)
    end)

    it("includes files that share the namespace and locals", function()
      local out = loader:load("page.html"):generate({ title = "<T>" })
      assert.equal("<header>&lt;T&gt;</header>\n<p>set in header / 3</p>", squash(out):gsub("> <", ">\n<"))
    end)

    it("resolves includes relative to the including file", function()
      assert.equal("<header>t</header><span>part t</span>",
                   squash(loader:load("sub/nested.html"):generate({ title = "t" })):gsub("> <", "><"))
    end)

    it("extends with block overrides, two levels deep", function()
      local child = squash(loader:load("child.html"):generate({ title = "C" }))
      assert.equal("<title>Child title: C</title> <main>[base body child inner]</main>"
                   .. " <footer>base footer</footer>", child)
      local grand = squash(loader:load("grandchild.html"):generate({ title = "G" }))
      assert.equal("<title>Grandchild G</title> <main>[base body child inner]</main>"
                   .. " <footer>grandchild footer</footer>", grand)
      local base = squash(loader:load("base.html"):generate({}))
      assert.equal("<title>Base title</title> <main>[base body base inner]</main>"
                   .. " <footer>base footer</footer>", base)
    end)

    it("lets a child replace an outer block together with the blocks inside it", function()
      local l = Loader(ROOT)
      local t = Template('{% extends "base.html" %}{% block body %}own body{% end %}',
                         { name = "c.html", loader = l })
      assert.equal("<title>Base title</title> <main>own body</main> <footer>base footer</footer>",
                   squash(t:generate({})))
    end)

    it("caches compiled templates until reset()", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(lfs.mkdir(dir))
      finally(function()
        os.remove(dir .. "/t.html")
        lfs.rmdir(dir)
      end)
      write_file(dir .. "/t.html", "one {{ x }}")
      local l = Loader(dir)
      local first = l:load("t.html")
      assert.equal("one 1", first:generate({ x = 1 }))
      assert.equal(first, l:load("t.html"))
      assert.equal(first, l:load("./t.html"))
      write_file(dir .. "/t.html", "two {{ x }}")
      assert.equal("one 1", l:load("t.html"):generate({ x = 1 }))
      l:reset()
      local second = l:load("t.html")
      assert.are_not.equal(first, second)
      assert.equal("two 1", second:generate({ x = 1 }))
    end)

    it("refuses names outside the root", function()
      assert.matches("outside the template root", error_of(loader.load, loader, "../template_spec.lua"))
      assert.matches("outside the template root", error_of(loader.load, loader, "sub/../../template_spec.lua"))
      assert.matches("is absolute", error_of(loader.load, loader, "/etc/passwd"))
      local absolute = lfs.currentdir() .. "/" .. ROOT .. "/base.html"
      assert.matches("is absolute", error_of(loader.load, loader, absolute))
      assert.equal(loader:load("base.html"), loader:load("sub/../base.html"))
      assert.equal("x.html:1: template name '../../etc/passwd' is outside the template root",
                   error_of(Template, '{% include "../../etc/passwd" %}', { name = "x.html", loader = loader }))
      assert.matches("^x%.html:1: .* is absolute",
                     error_of(Template, '{% extends "/etc/passwd" %}', { name = "x.html", loader = loader }))
    end)

    it("reports a missing file with the file and line of the include", function()
      assert.matches("cannot open template 'nope.html'", error_of(loader.load, loader, "nope.html"))
      local err = error_of(loader.load, loader, "missing_include.html")
      assert.matches("missing_include.html:2: cannot open template 'no_such_file.html'", err, 1, true)
      -- and a failed compile is not cached as a good template
      assert.equal(err, error_of(loader.load, loader, "missing_include.html"))
    end)

    it("reports recursive includes", function()
      assert.matches("recursive include of 'cycle_", error_of(loader.load, loader, "cycle_a.html"))
    end)

    it("takes autoescape and whitespace defaults", function()
      local l = Loader(ROOT, { autoescape = false, whitespace = "oneline" })
      assert.equal("<header><T></header>  <p>set in header / 3</p> ",
                   l:load("page.html"):generate({ title = "<T>" }))
      assert.equal("a b c ", Loader(ROOT):load("plain.txt"):generate({}):gsub("%s+", " "))
      assert.equal("a    b\n\n   c\n", Loader(ROOT):load("plain.txt"):generate({}))
    end)

    it("rejects bad arguments", function()
      assert.matches("bad argument #1 to 'Loader'", error_of(Loader, nil))
      assert.matches("bad option autoescape", error_of(Loader, ROOT, { autoescape = 42 }))
      assert.matches("bad argument #1 to 'load'", error_of(loader.load, loader, 42))
      assert.matches("bad argument #1 to 'Template'", error_of(Template, nil))
      assert.matches("bad argument #1 to 'generate'", error_of(Template("x").generate, Template("x"), "ns"))
    end)
  end)

  describe("errors", function()
    local function syntax_error(src)
      return error_of(Template, src, { name = "bad.html" })
    end

    it("name the file and line of syntax errors", function()
      assert.equal("bad.html:2: Missing end block %}", syntax_error("one\ntwo {% if x\nthree"))
      assert.equal("bad.html:3: Missing end expression }}", syntax_error("\n\n{{ x"))
      assert.equal("bad.html:1: Missing end comment #}", syntax_error("{# x"))
      assert.equal("bad.html:2: unknown directive 'frobnicate'", syntax_error("x\n{% frobnicate y %}"))
      assert.equal("bad.html:3: Extra {% end %} block", syntax_error("{% if x %}\n{% end %}\n{% end %}"))
      assert.equal("bad.html:2: Missing {% end %} block for for", syntax_error("x\n{% for i = 1, 2 %}\n{{ i }}"))
      assert.equal("bad.html:1: Empty expression", syntax_error("{{ }}"))
      assert.equal("bad.html:1: Empty block tag ({% %})", syntax_error("{% %}"))
      assert.equal("bad.html:1: else outside if block", syntax_error("{% else %}"))
      assert.equal("bad.html:1: else block cannot be attached to for block",
                   syntax_error("{% for x in t %}{% else %}{% end %}"))
      assert.equal("bad.html:1: break outside for/while loop", syntax_error("{% if x %}{% break %}{% end %}"))
      assert.equal("bad.html:1: if missing condition", syntax_error("{% if %}{% end %}"))
      assert.equal("bad.html:1: include needs a template loader", syntax_error('{% include "x.html" %}'))
    end)

    it("map Lua syntax errors in expressions to the template line", function()
      assert.matches("^bad%.html:3: ", syntax_error("one\ntwo\n{{ x + }}\nfour"))
      assert.matches("^bad%.html:2: ", syntax_error("{% if x %}\n{% set = 1 %}\n{% end %}"))
    end)

    it("name the file and line of runtime errors", function()
      local l = Loader(ROOT)
      local err = error_of(l:load("runtime_error.html").generate, l:load("runtime_error.html"), {})
      assert.matches("^runtime_error%.html:3: attempt to index", err)
      -- inside an include, the included file's line
      local inc = l:load("includes_error.html")
      assert.matches("^runtime_error%.html:3: attempt to index", error_of(inc.generate, inc, {}))
      -- error() in an expression, and a failing helper
      local t = Template("a\n\n\n{{ error('boom') }}", { name = "e.html" })
      assert.equal("e.html:4: boom", error_of(t.generate, t, {}))
      t = Template("a\n{{ f() }}", { name = "e.html" })
      local helper = function() error("helper failed") end
      assert.matches("^e%.html:2: .*: helper failed$", error_of(t.generate, t, { f = helper }))
      t = Template("{% for x in nothing %}{% end %}", { name = "e.html" })
      assert.equal("e.html:1: cannot iterate over a nil value", error_of(t.generate, t, {}))
    end)

    it("pass error values that are not strings through unchanged", function()
      local http_error = { status = 403 }
      local t = Template("{{ f() }}")
      assert.equal(http_error, error_of(t.generate, t, { f = function() error(http_error) end }))
    end)
  end)

  describe("isolation", function()
    it("never sets globals", function()
      assert.is_nil(rawget(_G, "x"))
      assert.equal("1", render("{% set x = 1 %}{{ x }}"))
      assert.is_nil(rawget(_G, "x"))
      assert.equal("", render("{{ (function() leaked = 1 end)() }}"))
      assert.is_nil(rawget(_G, "leaked"))
      assert.equal("", render("{{ leaked }}")) -- nor across renders
    end)

    it("cannot change the standard library it sees", function()
      assert.matches("cannot set string%.upper", error_of(render, "{% set string.upper = nil %}"))
      assert.is_function(string.upper)
    end)

    it("keeps concurrent renders of one template apart", function()
      local t = Template("{{ a }}{{ pause() }}{{ a }}")
      local function pause() coroutine.yield() end
      local c1 = coroutine.wrap(function() return t:generate({ a = 1, pause = pause }) end)
      local c2 = coroutine.wrap(function() return t:generate({ a = 2, pause = pause }) end)
      c1()
      c2()
      assert.equal("11", c1())
      assert.equal("22", c2())
    end)
  end)

  it("renders a 100-row table 1000 times in under a second", function()
    local rows = {}
    for i = 1, 100 do
      rows[i] = { id = i, name = "User <" .. i .. ">", email = "user" .. i .. "@example.com" }
    end
    local t = Loader(ROOT):load("table.html")
    local out = t:generate({ rows = rows })
    assert.truthy(out:find('<tr class="odd"><td>1</td><td>User &lt;1&gt;</td>', 1, true))
    local start = os.clock()
    for _ = 1, 1000 do t:generate({ rows = rows }) end
    local elapsed = os.clock() - start
    assert.is_true(elapsed < 1, ("took %.3f s"):format(elapsed))
  end)
end)
