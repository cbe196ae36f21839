-- gust.shared under plain LuaJIT: every method of a shared dict and its
-- return conventions (those of OpenResty's ngx.shared.DICT). With no master
-- process the dicts belong to this process: their segments are named after
-- it and go when the Lua state closes. Sharing across processes is the
-- business of tests/c/test_shdict.c and tests/integration/test_shared.py.
local core = require "gust.core"
local shared = require "gust.shared"

local function run(fn, limit)
  local done, err = false, nil
  core.spawn(function()
    local ok, e = xpcall(fn, debug.traceback)
    if not ok then err = e end
    done = true
    core.stop()
  end)
  local guard = core.call_later(limit or 5, function() core.stop() end)
  core.run()
  guard:cancel()
  assert(done, "task did not finish in time")
  if err then error(err, 0) end
end

local function pack(...) return { n = select("#", ...), ... } end

local seq = 0
-- A fresh dict per test (names are per process, and busted runs every spec
-- file in one).
local function fresh(size)
  seq = seq + 1
  return assert(shared.dict("spec" .. seq, size or "64k"))
end

describe("gust.shared", function()
  it("has a version", function()
    assert.equal("0.1.0", shared._VERSION)
  end)

  describe("dict(name, size)", function()
    it("takes sizes as numbers or strings with k, m, g", function()
      assert.equal(65536, shared.parse_size("64k"))
      assert.equal(10 * 1024 * 1024, shared.parse_size("10m"))
      assert.equal(1024 * 1024 * 1024, shared.parse_size("1g"))
      assert.equal(8192, shared.parse_size("8K"))
      assert.equal(65536, shared.parse_size("64kb"))
      assert.equal(12345, shared.parse_size(12345))
      assert.is_nil(shared.parse_size("1q"))
      assert.is_nil(shared.parse_size("-1k"))
      assert.is_nil(shared.parse_size({}))
      local d = fresh("16k")
      assert.equal(16384, d:capacity())
      assert.is_true(d:free_space() > 8192 and d:free_space() < 16384)
    end)

    it("rounds a size up to a whole page", function()
      local d = assert(shared.dict("pages", 10000))
      assert.equal(12288, d:capacity())
    end)

    it("returns the same dict for the same name; the existing size wins", function()
      local a = assert(shared.dict("same", "64k"))
      local b = assert(shared.dict("same", "1m"))
      assert.equal(a, b)
      assert.equal(65536, b:capacity())
      a:set("k", "v")
      assert.equal("v", b:get("k"))
      local c = assert(shared.dict("other", "64k"))
      assert.not_equal(a, c)
      assert.is_nil(c:get("k"))
      assert.equal("same", a:name())
      assert.matches("gust.shared.dict: same", tostring(a), 1, true)
    end)

    it("keeps its segment in /dev/shm, named after this process", function()
      local d = assert(shared.dict("visible", "64k"))
      d:set("x", 1)
      local p = io.popen("ls /dev/shm")
      local listing = p:read("*a")
      p:close()
      assert.matches("gust%-shdict%." .. core.pid() .. "%.%d+%.visible", listing)
    end)

    it("raises on a bad name or size", function()
      for _, name in ipairs({ "", "a/b", "a b", ("x"):rep(129), 12 }) do
        assert.has_error(function() shared.dict(name, "64k") end)
      end
      for _, size in ipairs({ 4096, "4k", 8192.5, "2t", "1q", true }) do
        assert.has_error(function() shared.dict("badsize", size) end)
      end
      assert.has_error(function() shared.dict("nosize") end)
      local ok, err = pcall(shared.dict, "a/b", "64k")
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'dict'", err, 1, true)
    end)
  end)

  describe("get and set", function()
    it("stores strings, numbers and booleans", function()
      local d = fresh()
      assert.is_true(d:set("s", "hello"))
      assert.is_true(d:set("bin", "a\0b\255"))
      assert.is_true(d:set("empty", ""))
      assert.is_true(d:set("n", 3.25))
      assert.is_true(d:set("neg", -1e300))
      assert.is_true(d:set("t", true))
      assert.is_true(d:set("f", false))
      assert.equal("hello", d:get("s"))
      assert.equal("a\0b\255", d:get("bin"))
      assert.equal("", d:get("empty"))
      assert.equal(3.25, d:get("n"))
      assert.equal(-1e300, d:get("neg"))
      assert.is_true(d:get("t"))
      assert.is_false(d:get("f"))
      assert.equal("number", type(d:get("n")))
    end)

    it("returns a single nil for a missing key", function()
      local d = fresh()
      local r = pack(d:get("missing"))
      assert.equal(1, r.n)
      assert.is_nil(r[1])
    end)

    it("overwrites, changing size and type", function()
      local d = fresh()
      d:set("k", "short")
      d:set("k", ("x"):rep(5000))
      assert.equal(5000, #d:get("k"))
      d:set("k", 1)
      assert.equal(1, d:get("k"))
      d:set("k", "short again")
      assert.equal("short again", d:get("k"))
    end)

    it("turns number keys into strings", function()
      local d = fresh()
      d:set(1, "one")
      assert.equal("one", d:get("1"))
      assert.equal("one", d:get(1))
    end)

    it("deletes on set(k, nil)", function()
      local d = fresh()
      d:set("k", 1)
      assert.is_true(d:set("k", nil))
      assert.is_nil(d:get("k"))
    end)

    it("returns flags when they are not zero", function()
      local d = fresh()
      d:set("a", "x", 0, 42)
      d:set("b", "y")
      local r = pack(d:get("a"))
      assert.same({ n = 2, "x", 42 }, r)
      r = pack(d:get("b"))
      assert.same({ n = 1, "y" }, r)
    end)

    it("answers nil, \"no memory\" when full, leaving the key absent", function()
      local d = fresh("16k")
      local big = ("v"):rep(1000)
      local n = 0
      while true do
        local ok, err = d:set("k" .. n, big)
        if not ok then
          assert.is_nil(ok)
          assert.equal("no memory", err)
          break
        end
        n = n + 1
        assert.is_true(n < 100, "never filled up")
      end
      assert.is_nil(d:get("k" .. n))
      -- overwriting with something bigger than anything free
      local r = pack(d:set("k0", ("w"):rep(8000)))
      assert.same({ n = 2, nil, "no memory" }, r)
      assert.is_nil(d:get("k0"))
      -- delete makes room again
      d:delete("k1")
      assert.is_true(d:set("again", big))
    end)

    it("raises on a bad key, value, ttl or flags", function()
      local d = fresh()
      for _, key in ipairs({ {}, true, "" }) do
        assert.has_error(function() d:set(key, 1) end)
        assert.has_error(function() d:get(key) end)
      end
      assert.has_error(function() d:get(nil) end)
      assert.has_error(function() d:get(("k"):rep(65536)) end)
      assert.has_error(function() d:set("k", {}) end)
      assert.has_error(function() d:set("k", print) end)
      assert.has_error(function() d:set("k", 1, -1) end)
      assert.has_error(function() d:set("k", 1, "soon") end)
      assert.has_error(function() d:set("k", 1, 0, -1) end)
      assert.has_error(function() d:set("k", 1, 0, 1.5) end)
      assert.has_error(function() d.get({}, "k") end)
      local ok, err = pcall(function() d:set("k", {}) end)
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'set' (value must be", err, 1, true)
      ok, err = pcall(function() d:get({}) end)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'get' (key must be a string", err, 1, true)
    end)
  end)

  describe("add and replace", function()
    it("add stores only a new key", function()
      local d = fresh()
      assert.is_true(d:add("k", 1))
      local r = pack(d:add("k", 2))
      assert.same({ n = 2, false, "exists" }, r)
      assert.equal(1, d:get("k"))
    end)

    it("replace stores only an existing key", function()
      local d = fresh()
      local r = pack(d:replace("k", 1))
      assert.same({ n = 2, false, "not found" }, r)
      assert.is_nil(d:get("k"))
      d:set("k", 1)
      assert.is_true(d:replace("k", "two"))
      assert.equal("two", d:get("k"))
    end)

    it("add answers nil, \"no memory\" when full", function()
      local d = fresh("16k")
      local big = ("v"):rep(1000)
      local ok, err
      for i = 1, 100 do
        ok, err = d:add("k" .. i, big)
        if not ok then break end
      end
      assert.is_nil(ok)
      assert.equal("no memory", err)
    end)
  end)

  describe("incr", function()
    it("adds to a number and returns the new value", function()
      local d = fresh()
      d:set("n", 10)
      assert.equal(11, d:incr("n", 1))
      assert.equal(8.5, d:incr("n", -2.5))
      assert.equal(8.5, d:get("n"))
    end)

    it("answers nil, \"not found\" for a missing key without init", function()
      local d = fresh()
      assert.same({ n = 2, nil, "not found" }, pack(d:incr("n", 1)))
      assert.is_nil(d:get("n"))
    end)

    it("creates a missing key from init", function()
      local d = fresh()
      assert.equal(5, d:incr("n", 5, 0))
      assert.equal(6, d:incr("n", 1, 100))
      assert.equal(-1, d:incr("m", -2, 1))
    end)

    it("answers nil, \"not a number\" for another type", function()
      local d = fresh()
      d:set("s", "10")
      assert.same({ n = 2, nil, "not a number" }, pack(d:incr("s", 1)))
      d:set("b", true)
      assert.same({ n = 2, nil, "not a number" }, pack(d:incr("b", 1, 0)))
      assert.equal("10", d:get("s"))
    end)

    it("raises when n or init is not a number", function()
      local d = fresh()
      assert.has_error(function() d:incr("n") end)
      assert.has_error(function() d:incr("n", {}) end)
      assert.has_error(function() d:incr("n", 1, {}) end)
      assert.has_error(function() d:incr("n", 1, 0, -5) end)
    end)

    it("gives a new key created from init its init_ttl", function()
      run(function()
        local d = fresh()
        assert.equal(1, d:incr("n", 1, 0, 0.05))
        assert.equal(2, d:incr("n", 1, 0, 10)) -- exists: init_ttl unused
        local ttl = d:ttl("n")
        assert.is_true(ttl > 0 and ttl <= 0.05)
        core.sleep(0.08)
        assert.is_nil(d:get("n"))
        assert.equal(1, d:incr("n", 1, 0))
        assert.equal(0, d:ttl("n"))
      end)
    end)
  end)

  describe("delete, keys, flush", function()
    it("delete returns true, present or not", function()
      local d = fresh()
      d:set("k", 1)
      assert.is_true(d:delete("k"))
      assert.is_nil(d:get("k"))
      assert.is_true(d:delete("k"))
    end)

    it("delete gives the space back", function()
      local d = fresh()
      local empty = d:free_space()
      d:set("k", ("x"):rep(1000))
      assert.is_true(d:free_space() < empty - 1000)
      d:delete("k")
      assert.equal(empty, d:free_space())
    end)

    it("keys lists up to 1024 by default, max if given, all for 0", function()
      local d = fresh("1m")
      for i = 1, 1100 do d:set("key" .. i, i) end
      assert.equal(1024, #d:keys())
      assert.equal(10, #d:keys(10))
      local all = d:keys(0)
      assert.equal(1100, #all)
      local seen = {}
      for _, k in ipairs(all) do seen[k] = true end
      for i = 1, 1100 do assert.is_true(seen["key" .. i]) end
      assert.same({}, fresh():keys())
      assert.has_error(function() d:keys(-1) end)
      assert.has_error(function() d:keys("all") end)
    end)

    it("flush_all empties the dict", function()
      local d = fresh()
      local empty = d:free_space()
      for i = 1, 50 do d:set("k" .. i, ("v"):rep(i)) end
      assert.is_true(d:flush_all())
      assert.same({}, d:keys())
      assert.is_nil(d:get("k1"))
      assert.equal(empty, d:free_space())
    end)
  end)

  describe("expiry", function()
    it("forgets a key after its ttl", function()
      run(function()
        local d = fresh()
        d:set("short", "x", 0.05)
        d:set("long", "y", 10)
        d:set("never", "z")
        assert.equal("x", d:get("short"))
        local ttl = d:ttl("short")
        assert.is_true(ttl > 0 and ttl <= 0.05)
        assert.is_true(d:ttl("long") > 9.9)
        assert.equal(0, d:ttl("never"))
        core.sleep(0.08)
        assert.is_nil(d:get("short"))
        assert.same({ n = 2, nil, "not found" }, pack(d:ttl("short")))
        assert.is_true(d:add("short", "again")) -- gone, so add works
        assert.equal("y", d:get("long"))
      end)
    end)

    it("expire changes a key's ttl, 0 for none", function()
      run(function()
        local d = fresh()
        d:set("k", 1)
        assert.is_true(d:expire("k", 0.03))
        assert.is_true(d:ttl("k") <= 0.03)
        assert.is_true(d:expire("k", 0))
        assert.equal(0, d:ttl("k"))
        assert.same({ n = 2, nil, "not found" }, pack(d:expire("nope", 1)))
        assert.is_true(d:expire("k", 0.03))
        core.sleep(0.05)
        assert.is_nil(d:get("k"))
        assert.has_error(function() d:expire("k") end)
        assert.has_error(function() d:expire("k", -1) end)
      end)
    end)

    it("skips expired keys in keys() and frees them with flush_expired", function()
      run(function()
        local d = fresh()
        for i = 1, 10 do d:set("e" .. i, i, 0.02) end
        d:set("kept", 1)
        core.sleep(0.04)
        assert.same({ "kept" }, d:keys())
        assert.equal(3, d:flush_expired(3))
        assert.equal(7, d:flush_expired())
        assert.equal(0, d:flush_expired())
      end)
    end)

    it("makes room from expired entries when full", function()
      run(function()
        local d = fresh("16k")
        local big = ("v"):rep(1000)
        local i = 0
        while d:set("x" .. i, big, 0.02) do i = i + 1 end
        assert.same({ n = 2, nil, "no memory" }, pack(d:set("late", big)))
        core.sleep(0.04)
        assert.is_true(d:set("late", big))
        assert.same({ "late" }, d:keys())
      end)
    end)
  end)
end)
