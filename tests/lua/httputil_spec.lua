local httputil = require "gust.httputil"

local HTTPHeaders = httputil.HTTPHeaders
local char, format = string.char, string.format

-- The real HMAC comes from C and is tested there; the signing logic only
-- needs a deterministic, injective stand-in.
local function fake_hmac(key, msg) return key .. "#" .. msg end

local function hex(s)
  return (s:gsub(".", function(c) return format("%02x", c:byte()) end))
end

-- Runs fn with a deterministic PRNG and returns random strings over an
-- alphabet that is dense in the bytes parsers care about.
local function random_strings(n, alphabet, maxlen)
  math.randomseed(12345)
  local out = {}
  for i = 1, n do
    local t = {}
    for j = 1, math.random(0, maxlen) do
      local k = math.random(1, #alphabet)
      t[j] = alphabet:sub(k, k)
    end
    out[i] = table.concat(t)
  end
  return out
end

-- A module's private upvalue, to check that its memo tables stay bounded.
local function upvalue(fn, wanted)
  for i = 1, 100 do
    local name, value = debug.getupvalue(fn, i)
    if name == wanted then return value end
    if name == nil then return nil end
  end
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- Calls fn(...) from a frame in this file, so error(msg, 2) must name it.
local function caller_error(fn, ...)
  local args = { n = select("#", ...), ... }
  local ok, err = pcall(function()
    local r = fn(unpack(args, 1, args.n))
    return r -- not a tail call: this frame must stay on the stack
  end)
  assert.is_false(ok)
  assert.matches("httputil_spec", err) -- error(msg, 2) names the caller
  return err
end

describe("gust.httputil", function()
  it("has a version", function()
    assert.equal("0.1.0", httputil._VERSION)
  end)

  describe("HTTPHeaders", function()
    local flat = {
      "content-type", "text/html",
      "accept", "a/b",
      "x-forwarded-for", "1.1.1.1",
      "accept", "c/d",
      "x-forwarded-for", "2.2.2.2",
      "accept", "e/f",
    }

    it("reads any case", function()
      local h = HTTPHeaders.from_list(flat)
      assert.equal("text/html", h["content-type"])
      assert.equal("text/html", h["Content-Type"])
      assert.equal("text/html", h["CONTENT-TYPE"])
      assert.equal("text/html", h:get("cOnTeNt-TyPe"))
      assert.is_nil(h["content-length"])
    end)

    it("joins repeated headers with ',' and lists them in order", function()
      local h = HTTPHeaders.from_list(flat)
      assert.equal("a/b,c/d,e/f", h["Accept"])
      assert.equal("1.1.1.1,2.2.2.2", h:get("X-Forwarded-For"))
      assert.same({ "a/b", "c/d", "e/f" }, h:get_list("ACCEPT"))
      assert.same({ "text/html" }, h:get_list("Content-Type"))
      assert.same({}, h:get_list("missing"))
    end)

    it("hands out get_list copies", function()
      local h = HTTPHeaders.from_list(flat)
      local l = h:get_list("accept")
      l[1] = "changed"
      table.insert(l, "more")
      assert.same({ "a/b", "c/d", "e/f" }, h:get_list("accept"))
      local single = h:get_list("content-type")
      single[2] = "x"
      assert.equal("text/html", h["content-type"])
    end)

    it("get returns the default only when absent", function()
      local h = HTTPHeaders.from_list({ "x-empty", "" })
      assert.equal("", h:get("X-Empty", "dflt"))
      assert.equal("dflt", h:get("X-Missing", "dflt"))
      assert.is_nil(h:get("X-Missing"))
    end)

    it("assignment replaces every value; nil removes", function()
      local h = HTTPHeaders.from_list(flat)
      h["ACCEPT"] = "z/z"
      assert.equal("z/z", h.accept)
      assert.same({ "z/z" }, h:get_list("accept"))
      h["Content-Length"] = 42
      assert.equal("42", h["content-length"])
      h["content-length"] = nil
      assert.is_nil(h["Content-Length"])
    end)

    it("add appends and remove deletes, case-insensitively", function()
      local h = HTTPHeaders.new()
      h:add("Set-Cookie", "a=1")
      assert.equal("a=1", h["set-cookie"])
      h:add("SET-COOKIE", "b=2")
      h:add("set-cookie", "c=3")
      assert.same({ "a=1", "b=2", "c=3" }, h:get_list("Set-Cookie"))
      h:remove("Set-Cookie")
      assert.is_nil(h["set-cookie"])
      assert.same({}, h:get_list("set-cookie"))
      h:remove("never-there")
    end)

    it("iterates lower-case names with joined values", function()
      local h = HTTPHeaders.from_list(flat)
      h["X-New"] = "n"
      local seen, n = {}, 0
      for name, value in h:pairs() do
        seen[name] = value
        n = n + 1
      end
      assert.equal(4, n)
      assert.same({ ["content-type"] = "text/html", accept = "a/b,c/d,e/f",
                    ["x-forwarded-for"] = "1.1.1.1,2.2.2.2", ["x-new"] = "n" }, seen)
      for _ in HTTPHeaders.new():pairs() do error("not empty") end
    end)

    it("does not let a header named like a method or field break the object", function()
      local h = HTTPHeaders.from_list({ "get", "1", "get_list", "2", "_store", "3", "1", "4" })
      assert.is_function(h.get)
      assert.equal("1", h:get("get"))
      assert.same({ "2" }, h:get_list("get_list"))
      assert.equal("3", h["_store"])
      assert.equal("4", h:get("1"))
      h:add("pairs", "5")
      assert.is_function(h.pairs)
      assert.equal("5", h:get("Pairs"))
    end)

    it("takes odd inputs", function()
      for _ in HTTPHeaders.from_list({}):pairs() do error("not empty") end
      local h = HTTPHeaders.from_list({ "a", "1", "dangling" })
      assert.equal("1", h.a)
      assert.is_nil(h.dangling)
      assert.is_nil(h[42])
      assert.is_nil(h[true])
    end)

    it("raises at the caller on misuse", function()
      caller_error(HTTPHeaders.from_list, nil)
      caller_error(HTTPHeaders.from_list, "x")
      local h = HTTPHeaders.new()
      caller_error(function() local r = h:get(nil); return r end)
      caller_error(function() local r = h:get_list(1); return r end)
      caller_error(function() h:add("x", {}); return nil end)
      caller_error(function() h:add(nil, "x"); return nil end)
      caller_error(function() h[1] = "x"; return nil end)
      caller_error(function() h.x = {}; return nil end)
    end)

    it("keeps its lower-case memo bounded", function()
      local h = HTTPHeaders.from_list({ "x-name-2999", "v" })
      for i = 1, 3000 do
        local v = h["X-Name-" .. i]
        assert.equal(i == 2999 and "v" or nil, v)
      end
      local lower_name = upvalue(getmetatable(h).__index, "lower_name")
      local cache = upvalue(lower_name, "lower_cache")
      assert.is_table(cache)
      assert.is_true(count(cache) <= 1000)
    end)

    it("has a name and a readable tostring", function()
      local h = HTTPHeaders.from_list({ "content-type", "text/plain", "x-a", "1", "x-a", "2" })
      assert.equal("gust.HTTPHeaders", getmetatable(h).__name)
      assert.equal("Content-Type: text/plain\r\nX-A: 1\r\nX-A: 2\r\n", tostring(h))
    end)
  end)

  describe("normalize_header_name", function()
    it("capitalises each dash-separated word", function()
      assert.equal("Content-Type", httputil.normalize_header_name("content-type"))
      assert.equal("Content-Length", httputil.normalize_header_name("CONTENT-LENGTH"))
      assert.equal("X-Xsrftoken", httputil.normalize_header_name("x-XSRFToken"))
      assert.equal("Etag", httputil.normalize_header_name("ETag"))
      assert.equal("Www-Authenticate", httputil.normalize_header_name("www-authenticate"))
      assert.equal("X-1a", httputil.normalize_header_name("x-1A"))
      assert.equal("", httputil.normalize_header_name(""))
    end)

    it("keeps its memo bounded and stays correct past the bound", function()
      for i = 1, 3000 do
        assert.equal("X-Name-" .. i, httputil.normalize_header_name("x-name-" .. i))
      end
      local cache = upvalue(httputil.normalize_header_name, "norm_cache")
      assert.is_table(cache)
      assert.is_true(count(cache) <= 1000)
    end)

    it("raises at the caller on a non-string", function()
      caller_error(httputil.normalize_header_name, nil)
    end)
  end)

  describe("parse_qs", function()
    it("collects every value of a name in order", function()
      assert.same({ a = { "1", "3" }, b = { "2" } }, httputil.parse_qs("a=1&b=2&a=3"))
    end)

    it("decodes + and %XX in names and values", function()
      assert.same({ q = { "hello world!" }, name = { "x+y" }, ["a b"] = { "%zz" } },
                   httputil.parse_qs("q=hello+world%21&n%61me=x%2By&a+b=%zz"))
      assert.same({ ["\195\169"] = { "\0\255" } }, httputil.parse_qs("%C3%A9=%00%ff"))
    end)

    it("keeps blank values", function()
      assert.same({ a = { "" }, b = { "" }, c = { "", "x" } },
                   httputil.parse_qs("a=&b&c=&c=x"))
    end)

    it("splits on the first '=' only", function()
      assert.same({ a = { "b=c" } }, httputil.parse_qs("a=b=c"))
    end)

    it("skips empty pieces and empty names", function()
      assert.same({ a = { "1" } }, httputil.parse_qs("&&=x&=&a=1&"))
      assert.same({}, httputil.parse_qs("&"))
      assert.same({}, httputil.parse_qs("="))
    end)

    it("takes empty and nil input", function()
      assert.same({}, httputil.parse_qs(""))
      assert.same({}, httputil.parse_qs(nil))
      local out = { keep = { "me" } }
      assert.equal(out, httputil.parse_qs(nil, out))
      assert.same({ keep = { "me" } }, out)
    end)

    it("adds to the table it is given and returns it", function()
      local out = { a = { "1" } }
      assert.equal(out, httputil.parse_qs("a=2&b=3", out))
      assert.same({ a = { "1", "2" }, b = { "3" } }, out)
    end)

    it("stays linear on many pieces without '='", function()
      -- Rescanning for "=" per piece would read ~10^12 bytes here.
      local s = string.rep("a&", 1000000) .. "b=1"
      local t0 = os.clock()
      local out = httputil.parse_qs(s)
      assert.is_true(os.clock() - t0 < 3)
      assert.equal(1000000, #out.a)
      assert.same({ "1" }, out.b)
    end)

    it("never raises on arbitrary input", function()
      for _, s in ipairs(random_strings(2000, "a=&%+2F;= \0\255", 24)) do
        local out = httputil.parse_qs(s)
        for name, list in pairs(out) do
          assert.is_string(name)
          assert.is_true(#list >= 1)
        end
      end
    end)

    it("raises at the caller on misuse", function()
      caller_error(httputil.parse_qs, {})
      caller_error(httputil.parse_qs, "a=1", "out")
    end)
  end)

  describe("parse_body_arguments", function()
    local B = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
    local CT = 'multipart/form-data; boundary="' .. B .. '"'
    local CT1234 = "multipart/form-data; boundary=1234"
    local function body(lines) return table.concat(lines, "\r\n") end
    local field2 = "two\r\nlines with --" .. B .. " and --" .. B:sub(1, -2)
                   .. "\r\n--" .. B:sub(1, -2)
    local good = body({
      "--" .. B,
      'Content-Disposition: form-data; name="field1"',
      "",
      "value1",
      "--" .. B,
      'content-disposition: form-data; name="field2"',
      "",
      field2, -- a delimiter only counts at the start of a line
      "--" .. B,
      'Content-Disposition: form-data; name="upload"; filename="a.txt"',
      "Content-Type: text/plain",
      "",
      "file\r\ncontent\r\n",
      "--" .. B .. "--",
      "",
    })

    it("parses two fields and a file", function()
      local args, files = {}, {}
      assert.is_true(httputil.parse_body_arguments(CT, good, args, files))
      assert.same({
        field1 = { "value1" },
        field2 = { field2 },
      }, args)
      assert.same({ upload = { { filename = "a.txt", content_type = "text/plain",
                                 body = "file\r\ncontent\r\n" } } }, files)
    end)

    it("takes an unquoted boundary, any-case type, padding, preamble, epilogue", function()
      local args, files = {}, {}
      local b = body({
        "This is the preamble.",
        "--1234  ",
        'Content-Disposition: form-data; name=plain; filename="x.bin"',
        "",
        "\0\1\2",
        "--1234",
        'Content-Disposition: form-data; name="a"',
        "",
        "",
        "--1234--",
        "epilogue --1234 ignored",
      })
      assert.is_true(httputil.parse_body_arguments(
        "Multipart/Form-Data; charset=utf-8; boundary=1234", b, args, files))
      assert.same({ a = { "" } }, args)
      assert.same({ plain = { { filename = "x.bin", body = "\0\1\2",
                                content_type = "application/unknown" } } }, files)
    end)

    it("appends repeated names and treats an empty filename as an argument", function()
      local args, files = { f = { "earlier" } }, {}
      local b = body({
        "--1234", 'Content-Disposition: form-data; name="f"', "", "one",
        "--1234", 'Content-Disposition: form-data; name="f"', "", "two",
        "--1234", 'Content-Disposition: form-data; name="up"; filename=""',
        "Content-Type: application/octet-stream", "", "",
        "--1234--",
      })
      assert.is_true(httputil.parse_body_arguments(CT1234, b, args, files))
      assert.same({ f = { "earlier", "one", "two" }, up = { "" } }, args)
      assert.same({}, files)
    end)

    it("unescapes quoted filenames and prefers filename*", function()
      local names = { "a;b.txt", 'a"b.txt', 'a";b.txt', 'a;"b.txt', 'a";";.txt',
                      'a\\"b.txt', "a\\b.txt" }
      for _, name in ipairs(names) do
        local quoted = name:gsub("\\", "\\\\"):gsub('"', '\\"')
        local b = body({ "--1234",
          'Content-Disposition: form-data; name="files"; filename="' .. quoted .. '"',
          "", "Foo", "--1234--" })
        local args, files = {}, {}
        assert.is_true(httputil.parse_body_arguments(
          "multipart/form-data; boundary=1234", b, args, files))
        assert.equal(name, files.files[1].filename)
        assert.equal("Foo", files.files[1].body)
      end
      local b = body({ "--1234",
        "Content-Disposition: form-data; name=\"f\"; "
          .. "filename*=UTF-8''%C3%A1b.txt; filename=\"ab.txt\"",
        "", "x", "--1234--" })
      local files = {}
      assert.is_true(httputil.parse_body_arguments(CT1234, b, {}, files))
      assert.equal("\195\161b.txt", files.f[1].filename)
    end)

    it("drops file parts when no files table is given", function()
      local args = {}
      assert.is_true(httputil.parse_body_arguments(CT, good, args))
      assert.same({ "value1" }, args.field1)
      assert.is_nil(args.upload)
    end)

    local function rejects(ct, b)
      local args, files = {}, {}
      local ok, err = httputil.parse_body_arguments(ct, b, args, files)
      assert.is_nil(ok)
      assert.equal("invalid multipart/form-data", err)
      -- All or nothing: a bad body adds no argument.
      assert.same({}, args)
      assert.same({}, files)
    end

    it("rejects a missing or empty boundary parameter", function()
      rejects("multipart/form-data", good)
      rejects("multipart/form-data; boundary=", good)
      rejects('multipart/form-data; boundary=""', good)
      rejects("multipart/form-data; charset=utf-8", good)
    end)

    it("rejects a body without the closing boundary", function()
      rejects(CT, good:gsub("%-%-\r\n$", "\r\n"))
      rejects(CT, good:sub(1, #good - #("--" .. B .. "--\r\n")))
      rejects(CT, "")
      rejects(CT, nil)
      rejects(CT, "no delimiter at all")
    end)

    it("fails every truncation cleanly and accepts only complete bodies", function()
      local complete_at = good:find("--" .. B .. "--", 1, true) + #B + 3
      for i = 0, #good do
        local prefix = good:sub(1, i)
        local args, files = {}, {}
        local ok, r, err = pcall(httputil.parse_body_arguments, CT, prefix, args, files)
        assert.is_true(ok)
        if i >= complete_at then
          assert.is_true(r)
        else
          assert.is_nil(r)
          assert.equal("invalid multipart/form-data", err)
        end
      end
    end)

    it("rejects malformed parts", function()
      local function one(...)
        return body({ "--1234", ... }) .. "\r\n--1234--\r\n"
      end
      local ct = "multipart/form-data; boundary=1234"
      rejects(ct, one("", "no headers"))
      rejects(ct, one("Content-Type: text/plain", "", "no disposition"))
      rejects(ct, one("Content-Disposition: attachment; name=\"a\"", "", "x"))
      rejects(ct, one("Content-Disposition: form-data", "", "no name"))
      rejects(ct, one("Content-Disposition: form-data; name=\"\"", "", "empty name"))
      rejects(ct, one("Content-Disposition: form-data; name=\"a\"", "headers never end"))
      rejects(ct, one("not a header line", "Content-Disposition: form-data; name=\"a\"", "", "x"))
      -- Junk straight after a delimiter, and bare-LF line endings.
      rejects(ct, "--1234junk\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--1234--")
      rejects(ct, "--1234\nContent-Disposition: form-data; name=\"a\"\n\nx\n--1234--\n")
    end)

    it("fills arguments from urlencoded bodies", function()
      local args = { a = { "0" } }
      assert.is_true(httputil.parse_body_arguments(
        "application/x-www-form-urlencoded; charset=UTF-8", "a=1&b=x+y%21", args, {}))
      assert.same({ a = { "0", "1" }, b = { "x y!" } }, args)
      assert.is_true(httputil.parse_body_arguments("Application/X-WWW-Form-Urlencoded",
                                                   nil, args))
      assert.is_true(httputil.parse_body_arguments("application/x-www-form-urlencoded", "", args))
      assert.same({ a = { "0", "1" }, b = { "x y!" } }, args)
    end)

    it("ignores other and missing content types", function()
      local args, files = {}, {}
      assert.is_true(httputil.parse_body_arguments("application/json", '{"a":1}', args, files))
      assert.is_true(httputil.parse_body_arguments("text/plain", "a=1", args, files))
      assert.is_true(httputil.parse_body_arguments(nil, "a=1", args, files))
      assert.is_true(httputil.parse_body_arguments("", "a=1", args, files))
      assert.same({}, args)
      assert.same({}, files)
    end)

    it("never raises on arbitrary multipart input", function()
      local alphabet = "-\r\n12:;=\"a form-data Content-Disposition name"
      for _, s in ipairs(random_strings(3000, alphabet, 60)) do
        local ok = pcall(httputil.parse_body_arguments,
                         "multipart/form-data; boundary=12", s, {}, {})
        assert.is_true(ok)
        ok = pcall(httputil.parse_body_arguments, s, s, {}, {})
        assert.is_true(ok)
      end
    end)

    it("raises at the caller on misuse", function()
      caller_error(httputil.parse_body_arguments, CT, good, nil)
      caller_error(httputil.parse_body_arguments, CT, good, {}, "x")
    end)
  end)

  describe("parse_cookie", function()
    it("splits, trims and unquotes", function()
      assert.same({ a = "1", b = "quoted value", c = "x=y", d = "" },
                   httputil.parse_cookie(' a=1;b="quoted value" ;  c = x=y; d='))
      assert.same({ chips = "ahoy", vienna = "finger" },
                   httputil.parse_cookie("chips=ahoy; vienna=finger"))
    end)

    it("decodes backslash escapes inside quotes only", function()
      assert.same({ a = 'x"y', b = "x;y", c = "\\073", d = "\n" },
                   httputil.parse_cookie('a="x\\"y"; b="x\\073y"; c=\\073; d="\\012"'))
    end)

    it("matches Tornado on Python's cookie cases", function()
      assert.same({ keebler = '"E=mc2', L = '\\"Loves\\"', fudge = "\\012", [""] = '"' },
                   httputil.parse_cookie('keebler="E=mc2; L=\\"Loves\\"; fudge=\\012;"'))
      assert.same({ keebler = "E=mc2" }, httputil.parse_cookie("keebler=E=mc2"))
      assert.same({ ["key:term"] = "value:term" }, httputil.parse_cookie("key:term=value:term"))
      assert.same({ a = "b", c = "[", d = "r", f = "h" },
                   httputil.parse_cookie("a=b; c=[; d=r; f=h"))
    end)

    it("keeps attribute-looking pairs as cookies and the last duplicate", function()
      assert.same({ a = "b", Domain = "example.com" },
                   httputil.parse_cookie("a=b; Domain=example.com"))
      assert.same({ a = "c", h = "i" }, httputil.parse_cookie("a=b; h=i; a=c"))
    end)

    it("takes what browsers send against the RFC", function()
      local c = httputil.parse_cookie("abc=def; unnamed; django_language=en")
      assert.equal("en", c.django_language)
      assert.same({ a = "b", [""] = '"', c = "d" }, httputil.parse_cookie('a=b; "; c=d'))
      assert.same({ ["a b c"] = "d e = f", gh = "i" },
                  httputil.parse_cookie("a b c=d e = f; gh=i"))
      assert.same({ ["a   b,c<>@:/[]?{}"] = 'd  "  =e,f g' },
                   httputil.parse_cookie('a   b,c<>@:/[]?{}=d  "  =e,f g'))
      assert.same({ [""] = "b", c = "" }, httputil.parse_cookie("  =  b  ;  ;  =  ;   c  =  ;  "))
    end)

    it("takes empty and nil input", function()
      assert.same({}, httputil.parse_cookie(""))
      assert.same({}, httputil.parse_cookie(nil))
      assert.same({}, httputil.parse_cookie(";;; ;"))
    end)

    it("never raises on arbitrary input", function()
      for _, s in ipairs(random_strings(2000, 'a=;" \\0\t', 30)) do
        assert.is_table(httputil.parse_cookie(s))
      end
    end)
  end)

  describe("format_cookie", function()
    it("writes name=value with Path=/ by default", function()
      assert.equal("a=b; Path=/", httputil.format_cookie("a", "b"))
      assert.equal("a=; Path=/", httputil.format_cookie("a", ""))
      assert.equal("n=42; Path=/", httputil.format_cookie("n", 42))
      assert.equal("a=b", httputil.format_cookie("a", "b", { path = false }))
    end)

    it("writes every attribute", function()
      local v = httputil.format_cookie("sid", "2|1:0|abc==", {
        expires = 784111777, max_age = 3600.7, path = "/app", domain = "example.com",
        secure = true, httponly = true, samesite = "lax",
      })
      assert.equal("sid=2|1:0|abc==; Expires=Sun, 06 Nov 1994 08:49:37 GMT; Max-Age=3600; "
                   .. "Domain=example.com; Path=/app; Secure; HttpOnly; SameSite=Lax", v)
      assert.matches("; SameSite=None$", httputil.format_cookie("a", "b", { samesite = "None" }))
      assert.matches("; SameSite=Strict$",
                     httputil.format_cookie("a", "b", { samesite = "STRICT" }))
      assert.equal("a=b; Path=/",
                   httputil.format_cookie("a", "b", { secure = false, httponly = false }))
    end)

    it("computes Expires from expires_days, and expires wins", function()
      local v = httputil.format_cookie("a", "b", { expires_days = 2 })
      local t = httputil.parse_http_date(v:match("Expires=([^;]+)"))
      assert.is_true(math.abs(t - (os.time() + 2 * 86400)) <= 5)
      v = httputil.format_cookie("a", "b", { expires = 0, expires_days = 2 })
      assert.matches("Expires=Thu, 01 Jan 1970 00:00:00 GMT", v, 1, true)
    end)

    it("round-trips through parse_cookie", function()
      local value = "!#$%&'()*+-./0123456789:<=>?@AZ[]^_`az{|}~"
      local v = httputil.format_cookie("tok_EN.1", value, { httponly = true })
      assert.same({ ["tok_EN.1"] = value }, httputil.parse_cookie((v:match("^[^;]*"))))
    end)

    it("refuses values that could split the header or add attributes", function()
      for _, bad in ipairs({ "a\rb", "a\nb", "a;b", "a,b", "a b", 'a"b', "a\\b",
                             "a\0b", "a\tb", "a\127b", "caf\195\169", "x\r\nSet-Cookie: y=z" }) do
        local err = caller_error(httputil.format_cookie, "a", bad)
        assert.matches("invalid cookie value", err)
      end
      caller_error(httputil.format_cookie, "a", nil)
      caller_error(httputil.format_cookie, "a", {})
    end)

    it("refuses names that are not tokens", function()
      for _, bad in ipairs({ "", "a b", "a=b", "a;b", "a,b", "a\r", "a\n", "a:b", "a/b",
                             "(a)", "a\"", "\195\169" }) do
        local err = caller_error(httputil.format_cookie, bad, "v")
        assert.matches("invalid cookie name", err)
      end
      caller_error(httputil.format_cookie, nil, "v")
    end)

    it("refuses attributes that could inject more attributes", function()
      caller_error(httputil.format_cookie, "a", "b", { path = "/;x" })
      caller_error(httputil.format_cookie, "a", "b", { domain = "d\r\nX: y" })
      caller_error(httputil.format_cookie, "a", "b", { samesite = "sometimes" })
      caller_error(httputil.format_cookie, "a", "b", { samesite = true })
      caller_error(httputil.format_cookie, "a", "b", { expires = "soon" })
      caller_error(httputil.format_cookie, "a", "b", { max_age = "1" })
      caller_error(httputil.format_cookie, "a", "b", { expires_days = "2" })
    end)
  end)

  describe("http dates", function()
    local T = 784111777 -- Sun, 06 Nov 1994 08:49:37 GMT

    it("formats RFC 1123 dates in GMT", function()
      assert.equal("Sun, 06 Nov 1994 08:49:37 GMT", httputil.format_http_date(T))
      assert.equal("Sun, 06 Nov 1994 08:49:37 GMT", httputil.format_http_date(T + 0.9))
      assert.equal("Thu, 01 Jan 1970 00:00:00 GMT", httputil.format_http_date(0))
      assert.equal("Tue, 29 Feb 2000 00:00:00 GMT", httputil.format_http_date(951782400))
      assert.equal("Sat, 01 Jan 2000 00:00:00 GMT", httputil.format_http_date(946684800))
      assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$",
                     httputil.format_http_date())
      caller_error(httputil.format_http_date, "now")
    end)

    it("parses the three formats RFC 7231 requires", function()
      assert.equal(T, httputil.parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"))
      assert.equal(T, httputil.parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"))
      assert.equal(T, httputil.parse_http_date("Sun Nov  6 08:49:37 1994"))
      assert.equal(1129363200, httputil.parse_http_date("Saturday, 15-Oct-05 08:00:00 GMT"))
    end)

    it("ignores an old browser's length suffix and surrounding space", function()
      assert.equal(T, httputil.parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT; length=1234"))
      assert.equal(T, httputil.parse_http_date("  Sun, 06 Nov 1994 08:49:37 GMT  "))
    end)

    it("round-trips format and parse across centuries", function()
      math.randomseed(7)
      for _ = 1, 2000 do
        local t = math.random(0, 4102444800) -- up to 2100
        assert.equal(t, httputil.parse_http_date(httputil.format_http_date(t)))
      end
      for _, t in ipairs({ 0, 68169599, 951782399, 951868800, 4107542400 }) do
        assert.equal(t, httputil.parse_http_date(httputil.format_http_date(t)))
      end
    end)

    it("returns nil for anything else", function()
      for _, s in ipairs({
        "", "garbage", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 PST",
        "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 08:60:00 GMT",
        "Mon, 29 Feb 1900 00:00:00 GMT", "Sun, 06 Nov 94 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT", "Sun Nov 6 08:49:37 94", "1994-11-06T08:49:37Z",
      }) do
        assert.is_nil(httputil.parse_http_date(s), s)
      end
      assert.equal(951782400, httputil.parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"))
      assert.is_nil(httputil.parse_http_date(nil))
      assert.is_nil(httputil.parse_http_date(784111777))
      for _, s in ipairs(random_strings(1000, "Sun, 06 Nov 1994 08:49:37 GMT-;", 40)) do
        httputil.parse_http_date(s)
      end
    end)
  end)

  describe("constant_time_compare", function()
    it("compares", function()
      assert.is_true(httputil.constant_time_compare("", ""))
      assert.is_true(httputil.constant_time_compare("abc\0", "abc\0"))
      assert.is_false(httputil.constant_time_compare("abc", "abd"))
      assert.is_false(httputil.constant_time_compare("abc", "abcd"))
      assert.is_false(httputil.constant_time_compare("\0", ""))
      caller_error(httputil.constant_time_compare, nil, "a")
    end)

    it("does the same work wherever the strings differ", function()
      local a = string.rep("a", 64)
      local function lines(b)
        local n = 0
        jit.off()
        debug.sethook(function() n = n + 1 end, "l")
        httputil.constant_time_compare(a, b)
        debug.sethook()
        jit.on()
        return n
      end
      local first = lines("b" .. a:sub(2))
      assert.equal(first, lines(a:sub(1, 63) .. "b"))
      assert.equal(first, lines(a))
    end)
  end)

  describe("signed values", function()
    local NOW = 1300000000
    local SECRET = "It's a secret to everybody"
    local DAY = 86400

    local function sign(value, now, name)
      return httputil.create_signed_value(SECRET, name or "key", value, fake_hmac, now or NOW)
    end
    local function check(signed, opts)
      opts = opts or {}
      return httputil.decode_signed_value(opts.secret or SECRET, opts.name or "key", signed,
                                          opts.max_age_days, fake_hmac, opts.now or NOW)
    end

    it("writes Tornado's version-2 layout", function()
      local prefix = "2|1:0|10:1300000000|3:key|8:dmFsdWU=|"
      assert.equal(prefix .. hex(SECRET .. "#" .. prefix), sign("value"))
    end)

    local has_openssl = os.execute("openssl version >/dev/null 2>&1")
    has_openssl = has_openssl == 0 or has_openssl == true
    local function openssl_hmac(key, msg)
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      f:write(msg)
      f:close()
      local p = io.popen("openssl dgst -sha256 -mac HMAC -macopt hexkey:" .. hex(key)
                         .. " -binary " .. path)
      local mac = p:read("*a")
      p:close()
      os.remove(path)
      return mac
    end
    local VECTOR = "2|1:0|10:1300000000|3:key|8:dmFsdWU=|"
                   .. "3d4e60b996ff9c5d5788e333a0cba6f238a22c6c0f94788870e1a9ecd482e152"
    if has_openssl then
      it("matches Tornado's known value with a real HMAC-SHA256", function()
        assert.equal(VECTOR, httputil.create_signed_value(SECRET, "key", "value",
                                                          openssl_hmac, NOW))
        assert.equal("value", httputil.decode_signed_value(SECRET, "key", VECTOR, nil,
                                                           openssl_hmac, NOW))
      end)
    else
      pending("Tornado known value (needs the openssl command)")
    end

    it("round-trips any bytes", function()
      local all = {}
      for b = 0, 255 do all[#all + 1] = char(b) end
      for _, v in ipairs({ "value", "", "x", "xy", "xyz", table.concat(all), "a|b:c" }) do
        assert.equal(v, check(sign(v)))
      end
      assert.equal("12", check(sign(12)))
      assert.equal("v", check(sign("v", NOW, "a|name:with|bars"), { name = "a|name:with|bars" }))
    end)

    it("rejects a wrong name or secret", function()
      local s = sign("value")
      assert.is_nil(check(s, { name = "other" }))
      assert.is_nil(check(s, { name = "ke" }))
      assert.is_nil(check(s, { secret = SECRET .. "!" }))
    end)

    it("rejects any single changed byte and any truncation", function()
      local s = sign("value")
      for i = 1, #s do
        local b = s:byte(i)
        local tampered = s:sub(1, i - 1) .. char((b + 1) % 256) .. s:sub(i + 1)
        assert.is_nil(check(tampered), "byte " .. i)
      end
      for i = 0, #s - 1 do
        assert.is_nil(check(s:sub(1, i)), "prefix " .. i)
      end
      assert.is_nil(check(s .. "0"))
    end)

    it("rejects a value swapped in with the old signature", function()
      local s = sign("value")
      local forged = s:gsub("8:dmFsdWU=", "8:dmFsdWV=")
      assert.is_nil(check(forged))
      local sig = s:match("|(%x+)$")
      assert.is_nil(check("2|1:0|10:1300000000|3:key|8:YWRtaW4=|" .. sig))
    end)

    it("expires after max_age_days (31 by default)", function()
      local s = sign("value")
      assert.equal("value", check(s, { now = NOW + 30 * DAY }))
      assert.equal("value", check(s, { now = NOW + 31 * DAY }))
      assert.is_nil(check(s, { now = NOW + 31 * DAY + 1 }))
      assert.equal("value", check(s, { now = NOW + DAY / 2, max_age_days = 1 }))
      assert.is_nil(check(s, { now = NOW + 2 * DAY, max_age_days = 1 }))
      assert.is_nil(check(s, { now = NOW + 1, max_age_days = 0 }))
      assert.equal("value", check(s, { now = NOW + 100 * DAY, max_age_days = 365 }))
    end)

    it("rejects timestamps more than 31 days in the future", function()
      assert.equal("value", check(sign("value", NOW + 30 * DAY)))
      assert.is_nil(check(sign("value", NOW + 32 * DAY)))
    end)

    it("uses the clock when now is not given", function()
      local s = httputil.create_signed_value(SECRET, "key", "v", fake_hmac)
      assert.equal("v", httputil.decode_signed_value(SECRET, "key", s, nil, fake_hmac))
      assert.is_nil(httputil.decode_signed_value(SECRET, "key", sign("v", os.time() - 40 * DAY),
                                                 nil, fake_hmac))
    end)

    -- Correctly signed, so only the field checks can reject them.
    local function signed_raw(to_sign)
      return to_sign .. hex(SECRET .. "#" .. to_sign)
    end

    it("rejects well-signed but malformed fields", function()
      assert.equal("value", check(signed_raw("2|1:0|10:1300000000|3:key|8:dmFsdWU=|")))
      assert.is_nil(check(signed_raw("2|1:0|10:13000000x0|3:key|8:dmFsdWU=|")))
      assert.is_nil(check(signed_raw("2|1:0|0:|3:key|8:dmFsdWU=|")))
      assert.is_nil(check(signed_raw("2|1:0|11:-1300000000|3:key|8:dmFsdWU=|")))
      assert.is_nil(check(signed_raw("2|1:0|10:1300000000|3:key|8:dmFsdWU!|")))
      assert.is_nil(check(signed_raw("2|1:0|10:1300000000|3:key|7:dmFsdWU|")))
      assert.is_nil(check(signed_raw("2|1:0|10:1300000000|3:key|4:dmF=|")))
      assert.is_nil(check(signed_raw("2|1:0|10:1300000000|3:key|4:dm==|")))
      assert.is_nil(check(signed_raw("2|1:0|10:1300000000|3:key|8:dmFsdWU=|x")))
      assert.is_nil(check(signed_raw("2|1:0|10:1300000000|3:key|8:dmFsdWU=")))
      assert.is_nil(check(signed_raw("2|1:0|10:1300000000|+3:key|8:dmFsdWU=|")))
    end)

    it("returns nil for malformed strings without raising", function()
      for _, bad in ipairs({ "", "2", "2|", "2|1:0", "2|1:0|",
                             "1|1:0|10:1300000000|3:key|8:dmFsdWU=|",
                             "dmFsdWU=|1300000000|31c934969f53e48164c50768b40cbd7e2daaaa4f",
                             "2|999999999999:0|", "2|99999999:0|", "2|:0|", "2|-1:0|",
                             "2|1:0|10:1300000000|3:key|8:dmFsdWU=|" }) do
        assert.is_nil(check(bad), bad)
      end
      assert.is_nil(check(nil))
      assert.is_nil(check(42))
      assert.is_nil(check({}))
      for _, s in ipairs(random_strings(3000, "2|1:0:3key8dmFsdWU=|", 50)) do
        assert.is_nil(check(s))
      end
    end)

    it("raises at the caller on misuse", function()
      caller_error(httputil.create_signed_value, nil, "k", "v", fake_hmac)
      caller_error(httputil.create_signed_value, "", "k", "v", fake_hmac)
      caller_error(httputil.create_signed_value, "s", nil, "v", fake_hmac)
      caller_error(httputil.create_signed_value, "s", "k", {}, fake_hmac)
      caller_error(httputil.create_signed_value, "s", "k", "v")
      caller_error(httputil.decode_signed_value, "s", "k", "x", nil, nil)
      caller_error(httputil.decode_signed_value, "s", "k", "x", "31", fake_hmac)
    end)
  end)

  describe("base64", function()
    it("encodes and decodes the RFC 4648 vectors", function()
      local vectors = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
                        fooba = "Zm9vYmE=", foobar = "Zm9vYmFy", ["\255\254\253"] = "//79" }
      for plain, enc in pairs(vectors) do
        assert.equal(enc, httputil._b64encode(plain))
        assert.equal(plain, httputil._b64decode(enc))
      end
    end)

    it("rejects non-canonical input", function()
      for _, bad in ipairs({ "Zg", "Zg=", "Zg===", "Z===", "Zh==", "Zm9=", "Zm=v", "Zm9v\n",
                             "Zm-_", "=Zm9" }) do
        assert.is_nil(httputil._b64decode(bad), bad)
      end
    end)
  end)

  describe("url_concat", function()
    it("appends with ? or & as needed", function()
      assert.equal("http://x/p?a=1&b=x+y",
                   httputil.url_concat("http://x/p", { b = "x y", a = 1 }))
      assert.equal("http://x/p?z=1&a=1", httputil.url_concat("http://x/p?z=1", { a = "1" }))
      assert.equal("http://x/p?a=1", httputil.url_concat("http://x/p?", { a = "1" }))
      assert.equal("http://x/p?z=1&a=1", httputil.url_concat("http://x/p?z=1&", { a = "1" }))
      assert.equal("/p?z=1&a=1#frag?x", httputil.url_concat("/p?z=1#frag?x", { a = "1" }))
      assert.equal("/p?a=1#", httputil.url_concat("/p#", { a = "1" }))
    end)

    it("keeps pair order and repeats", function()
      assert.equal("/?b=2&a=1&b=3",
                   httputil.url_concat("/", { { "b", "2" }, { "a", "1" }, { "b", "3" } }))
      assert.equal("/?a=1&a=2", httputil.url_concat("/", { a = { "1", "2" } }))
    end)

    it("escapes names and values", function()
      assert.equal("/?a%26b=c%3Dd%2B%25", httputil.url_concat("/", { ["a&b"] = "c=d+%" }))
    end)

    it("returns the url unchanged without arguments", function()
      assert.equal("/p?x", httputil.url_concat("/p?x", nil))
      assert.equal("/p", httputil.url_concat("/p", {}))
      assert.equal("/p", httputil.url_concat("/p", { a = {} }))
    end)

    it("raises at the caller on misuse", function()
      caller_error(httputil.url_concat, nil, {})
      caller_error(httputil.url_concat, "/", "a=1")
      caller_error(httputil.url_concat, "/", { { "a" } })
      caller_error(httputil.url_concat, "/", { [true] = "x" })
    end)
  end)
end)
