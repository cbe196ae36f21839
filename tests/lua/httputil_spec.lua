local httputil = require "gust.httputil"
local helpers = require "httputil_helpers"

local HTTPHeaders = httputil.HTTPHeaders
local random_strings, upvalue, count = helpers.random_strings, helpers.upvalue, helpers.count
local caller_error = helpers.caller_error

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

