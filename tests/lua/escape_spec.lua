local escape = require "gust.escape"

local char = string.char

local UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"

local function all_bytes()
  local t = {}
  for b = 0, 255 do t[#t + 1] = char(b) end
  return table.concat(t)
end

describe("gust.escape", function()
  it("has a version", function()
    assert.equal("0.1.0", escape._VERSION)
  end)

  describe("url_escape", function()
    it("leaves exactly the unreserved characters alone", function()
      for b = 0, 255 do
        local c = char(b)
        local e = escape.url_escape(c, false)
        if UNRESERVED:find(c, 1, true) then
          assert.equal(c, e)
        else
          -- Upper-case hex of this very byte, nothing else.
          assert.equal(string.format("%%%02X", b), e)
          assert.equal(b, tonumber(e:sub(2), 16))
        end
      end
    end)

    it("turns space into + by default and %20 with plus = false", function()
      assert.equal("a+b", escape.url_escape("a b"))
      assert.equal("a+b", escape.url_escape("a b", true))
      assert.equal("a%20b", escape.url_escape("a b", false))
      assert.equal("%2B", escape.url_escape("+"))
    end)

    it("escapes reserved delimiters", function()
      assert.equal("a%2Fb%3Fc%3Dd%26e%23f%25~g.h-i_j",
                   escape.url_escape("a/b?c=d&e#f%~g.h-i_j"))
      assert.equal("%C3%A9", escape.url_escape("\195\169"))
      assert.equal("", escape.url_escape(""))
    end)

    it("accepts numbers and rejects other types at the caller", function()
      assert.equal("42", escape.url_escape(42))
      -- Not a tail call, so the caller's frame (this file) is still there.
      local ok, err = pcall(function() local r = escape.url_escape(nil); return r end)
      assert.is_false(ok)
      assert.matches("string expected", err)
      assert.matches("escape_spec", err)
      assert.has_error(function() escape.url_escape({}) end)
    end)
  end)

  describe("url_unescape", function()
    it("round-trips every byte value, alone and together, in both modes", function()
      for b = 0, 255 do
        local c = char(b)
        assert.equal(c, escape.url_unescape(escape.url_escape(c)))
        assert.equal(c, escape.url_unescape(escape.url_escape(c, false), false))
        assert.equal(c, escape.url_unescape(escape.url_escape(c, false)))
      end
      local s = all_bytes()
      assert.equal(s, escape.url_unescape(escape.url_escape(s)))
      assert.equal(s, escape.url_unescape(escape.url_escape(s, false), false))
    end)

    it("decodes %XX in either case", function()
      for b = 0, 255 do
        assert.equal(char(b), escape.url_unescape(string.format("%%%02x", b)))
        assert.equal(char(b), escape.url_unescape(string.format("%%%02X", b)))
      end
      assert.equal("\195\169t\195\169", escape.url_unescape("%C3%A9t%c3%a9"))
    end)

    it("turns + into space only when plus is not false", function()
      assert.equal("a b c", escape.url_unescape("a+b+c"))
      assert.equal("a b", escape.url_unescape("a+b", true))
      assert.equal("a+b", escape.url_unescape("a+b", false))
      -- An encoded plus is a plus, never a space.
      assert.equal("a+b", escape.url_unescape("a%2Bb"))
      assert.equal("a+b c", escape.url_unescape("a%2bb+c"))
    end)

    it("leaves invalid percent sequences as they are", function()
      assert.equal("%", escape.url_unescape("%"))
      assert.equal("100%", escape.url_unescape("100%"))
      assert.equal("%4", escape.url_unescape("%4"))
      assert.equal("%zz", escape.url_unescape("%zz"))
      assert.equal("%g1x", escape.url_unescape("%g1x"))
      assert.equal("%A", escape.url_unescape("%%41"))
      assert.equal("%%", escape.url_unescape("%%"))
      assert.equal("% 1", escape.url_unescape("%+1"))
      assert.equal("", escape.url_unescape(""))
    end)

    it("decodes only once", function()
      assert.equal("%41", escape.url_unescape("%2541"))
    end)
  end)

  describe("xhtml_escape", function()
    it("escapes the five special characters", function()
      assert.equal("&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;",
                   escape.xhtml_escape("<a href=\"x\" title='y'>&amp;</a>"))
      assert.equal("plain text", escape.xhtml_escape("plain text"))
      assert.equal("", escape.xhtml_escape(""))
    end)

    it("converts non-strings with tostring first", function()
      assert.equal("42", escape.xhtml_escape(42))
      assert.equal("true", escape.xhtml_escape(true))
      assert.equal("nil", escape.xhtml_escape(nil))
      local obj = setmetatable({}, { __tostring = function() return "<obj>" end })
      assert.equal("&lt;obj&gt;", escape.xhtml_escape(obj))
    end)
  end)

  describe("xhtml_unescape", function()
    it("undoes xhtml_escape for every byte", function()
      local s = all_bytes()
      assert.equal(s, escape.xhtml_unescape(escape.xhtml_escape(s)))
    end)

    it("decodes named, decimal and hex entities", function()
      assert.equal("<>&\"' ", escape.xhtml_unescape("&lt;&gt;&amp;&quot;&apos;&#32;"))
      assert.equal("A\195\169\226\130\172\240\159\152\128",
                   escape.xhtml_unescape("&#65;&#xe9;&#X20AC;&#x1F600;"))
      assert.equal("\194\160", escape.xhtml_unescape("&nbsp;"))
    end)

    it("decodes in a single pass", function()
      assert.equal("&lt;", escape.xhtml_unescape("&amp;lt;"))
    end)

    it("leaves unknown and invalid entities alone", function()
      for _, s in ipairs({ "&bogus;", "&#;", "&#x;", "&#xZZ;", "&#12a;",
                           "&#1114112;", "&#xD800;", "&#99999999999999999999;",
                           "& amp;", "&amp", "&", "" }) do
        assert.equal(s, escape.xhtml_unescape(s))
      end
    end)
  end)

  describe("json", function()
    it("never lets </ through, so JSON can sit in a <script>", function()
      local s = escape.json_encode({ html = "</script><script>alert(1)</script>" })
      assert.is_nil(s:find("</", 1, true))
      assert.same({ html = "</script><script>alert(1)</script>" }, escape.json_decode(s))
    end)

    it("round-trips nested values", function()
      local v = { a = { 1, 2, 3 }, b = { c = "d\n\"e\"" }, f = true, g = 1.5 }
      assert.same(v, escape.json_decode(escape.json_encode(v)))
      assert.equal('"x"', escape.json_encode("x"))
    end)

    it("raises at the caller when a value cannot be encoded", function()
      local ok, err = pcall(function()
        local r = escape.json_encode({ f = print }); return r
      end)
      assert.is_false(ok)
      assert.matches("json_encode", err)
      assert.matches("escape_spec", err)
    end)

    it("returns nil, err for bad input instead of raising", function()
      for _, bad in ipairs({ "", "{", "[1,", "{'a':1}", "nul", "\0", "[1]x" }) do
        local v, err = escape.json_decode(bad)
        assert.is_nil(v)
        assert.is_string(err)
      end
      local v, err = escape.json_decode(nil)
      assert.is_nil(v)
      assert.matches("string expected", err)
      v, err = escape.json_decode({})
      assert.is_nil(v)
      assert.is_string(err)
    end)

    it("rejects absurdly deep nesting without raising", function()
      local v, err = escape.json_decode(string.rep("[", 100000))
      assert.is_nil(v)
      assert.is_string(err)
    end)

    it("decodes null to a sentinel, distinct from failure", function()
      local v, err = escape.json_decode("null")
      assert.equal(escape.null, v)
      assert.is_nil(err)
    end)
  end)

  describe("squeeze", function()
    it("collapses whitespace runs and trims the ends", function()
      assert.equal("a b c", escape.squeeze("  a \t\n b\r\n\r\nc  "))
      assert.equal("a b", escape.squeeze("a\0\1\31b"))
      assert.equal("a", escape.squeeze("a"))
      assert.equal("", escape.squeeze(""))
      assert.equal("", escape.squeeze(" \t\n "))
      assert.equal("x\127y", escape.squeeze("x\127y"))
    end)
  end)
end)

describe("gust.escape JSON arrays", function()

  it("writes a marked empty table as [] and leaves it unchanged", function()
    local items = escape.json_array()
    assert.equal('{"items":[]}', escape.json_encode({ items = items }))
    assert.is_nil(next(items))
    assert.equal("[]", escape.json_encode(escape.json_empty_array))
    assert.equal('[[],{"c":[]}]', escape.json_encode({ escape.json_array(), { c = escape.json_array() } }))
  end)

  it("keeps unmarked empty tables objects and marked full ones arrays", function()
    assert.equal('{"a":{}}', escape.json_encode({ a = {} }))
    assert.equal("[1,2]", escape.json_encode(escape.json_array({ 1, 2 })))
  end)

  it("leaves the tables as they were when encoding fails", function()
    local items = escape.json_array()
    assert.has_error(function() escape.json_encode({ items = items, f = print }) end)
    assert.is_nil(next(items))
  end)

  it("refuses a mark on a non-table", function()
    assert.has_error(function() escape.json_array(42) end)
  end)
end)
