-- gust.core under plain LuaJIT: tasks, sleep, timers and the helpers the
-- framework builds on. Each test runs its body as a task on the real loop.
local core = require "gust.core"
local gust = require "gust"
local ioloop = require "gust.ioloop"

-- Runs fn as a task on the real loop until it returns (or times out).
local run = require("gust.testing").run

describe("gust.core", function()
  it("has a version", function()
    assert.equal("0.1.0", core.VERSION)
    assert.equal("0.1.0", gust._VERSION)
  end)

  it("sleeps for about the time asked, yielding the task", function()
    run(function()
      local t0 = core.now()
      assert.is_true(core.sleep(0.05))
      local dt = core.now() - t0
      assert.is_true(dt >= 0.045 and dt < 0.5, "slept " .. dt)
    end)
  end)

  it("keeps a task that outlived its run from stopping a later run", function()
    local ok, err = pcall(run, function() core.sleep(0.2) end, 0.05)
    assert.is_false(ok)
    assert.matches("timed out after 0.05 s", err)
    -- The first task wakes up and ends during this run, which goes on.
    run(function() core.sleep(0.4) end)
  end)

  it("refuses to sleep outside a task", function()
    assert.has_error(function() core.sleep(0.01) end)
  end)

  it("runs spawned tasks on the next iteration, with their arguments", function()
    run(function()
      local got = {}
      gust.spawn(function(a, b) got[#got + 1] = a + b end, 1, 2)
      assert.same({}, got) -- not yet: spawn never runs inline
      core.sleep(0)
      assert.same({3}, got)
    end)
  end)

  it("fires timers nearest first and equal deadlines in insertion order", function()
    run(function()
      local order = {}
      for i = 1, 5 do core.call_later(0.02, function() order[#order + 1] = "b" .. i end) end
      core.call_later(0.01, function() order[#order + 1] = "a" end)
      core.call_later(0.03, function() order[#order + 1] = "c" end)
      core.sleep(0.1)
      assert.same({"a", "b1", "b2", "b3", "b4", "b5", "c"}, order)
    end)
  end)

  it("cancels a pending timer, and reports whether it was pending", function()
    run(function()
      local fired = false
      local t = core.call_later(0.02, function() fired = true end)
      assert.is_true(t:cancel())
      assert.is_false(t:cancel())
      core.sleep(0.05)
      assert.is_false(fired)
    end)
  end)

  it("compacts many cancelled timers and still fires the live ones in order", function()
    run(function()
      local order = {}
      local handles = {}
      for i = 1, 2000 do handles[i] = core.call_later(0.01, function() order[#order + 1] = "x" end) end
      core.call_later(0.02, function() order[#order + 1] = "b" end)
      core.call_later(0.015, function() order[#order + 1] = "a" end)
      for i = 1, 2000 do assert.is_true(handles[i]:cancel()) end
      core.sleep(0.05)
      assert.same({"a", "b"}, order)
    end)
  end)

  it("lets timer callbacks yield", function()
    run(function()
      local steps = {}
      core.call_later(0, function()
        steps[#steps + 1] = 1
        core.sleep(0.01)
        steps[#steps + 1] = 2
      end)
      core.sleep(0.05)
      assert.same({1, 2}, steps)
    end)
  end)

  it("keeps a dropped timer handle alive until it fires", function()
    run(function()
      local fired = false
      core.call_later(0.02, function() fired = true end)
      collectgarbage(); collectgarbage()
      core.sleep(0.05)
      assert.is_true(fired)
    end)
  end)

  it("wakes a yielded coroutine with values", function()
    run(function()
      local me = coroutine.running()
      core.call_later(0.01, function() core.wake(me, "x", 42) end)
      local a, b = coroutine.yield()
      assert.equal("x", a)
      assert.equal(42, b)
    end)
  end)

  it("lets a task whose wait can never end be collected, not leaked", function()
    local locks = require "gust.locks"
    local weak = setmetatable({}, {__mode = "k"})
    run(function()
      local cond = locks.Condition()
      core.spawn(function()
        weak[coroutine.running()] = true
        cond:wait()                 -- nobody will ever notify
      end)
      core.sleep(0.01)
      local n = 0
      for _ in pairs(weak) do n = n + 1 end
      assert.equal(1, n)
    end)
    -- The condition (the only thing that knew the task) is gone now.
    collectgarbage(); collectgarbage()
    assert.is_nil(next(weak))
  end)

  it("logs an error raised in a task and carries on", function()
    run(function()
      core.spawn(function() error("expected test error") end)
      core.sleep(0.01)
      assert.is_true(true) -- still running
    end)
  end)

  it("computes HMAC-SHA256 and SHA-1 (RFC 4231 / FIPS 180 vectors)", function()
    assert.equal("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
      core.hex(core.hmac_sha256(("\11"):rep(20), "Hi There")))
    assert.equal("a9993e364706816aba3e25717850c26c9cd0d89d", core.hex(core.sha1("abc")))
  end)

  it("round-trips base64 and rejects malformed input", function()
    for _, s in ipairs({"", "f", "fo", "foo", "foob", "fooba", "foobar", ("\0\255"):rep(9)}) do
      assert.equal(s, core.b64decode(core.b64encode(s)))
    end
    assert.equal("Zm9vYmFy", core.b64encode("foobar"))
    assert.is_nil(core.b64decode("abc"))
    assert.is_nil(core.b64decode("ab!="))
  end)

  it("returns random bytes of the requested length", function()
    local a, b = core.random_bytes(16), core.random_bytes(16)
    assert.equal(16, #a)
    assert.not_equal(a, b)
  end)

  it("gzips data that zlib can read back", function()
    local data = ("hello gust "):rep(100)
    local z = core.gzip(data)
    assert.equal("\31\139", z:sub(1, 2))
    assert.is_true(#z < #data)
  end)

  it("listens on a free port and closes", function()
    local l = assert(core.listen(function() end, 0, "127.0.0.1"))
    assert.is_true(l:port() > 0)
    l:close()
    assert.is_nil(l:port())
  end)

  it("reports a bind failure as nil, err", function()
    local l = assert(core.listen(function() end, 0, "127.0.0.1"))
    local l2, err = core.listen(function() end, l:port(), "127.0.0.1")
    assert.is_nil(l2)
    assert.matches("bind", err)
    l:close()
  end)
end)

describe("gust.ioloop", function()
  it("returns one loop", function()
    assert.equal(ioloop.current(), ioloop.current())
  end)

  it("runs add_callback, call_later, call_at and add_timeout", function()
    run(function()
      local loop = ioloop.current()
      local got = {}
      loop:add_callback(function(x) got[#got + 1] = x end, "cb")
      loop:call_later(0.01, function() got[#got + 1] = "later" end)
      loop:call_at(loop:time() + 0.02, function() got[#got + 1] = "at" end)
      local h = loop:add_timeout(loop:time() + 0.015, function() got[#got + 1] = "removed" end)
      loop:remove_timeout(h)
      core.sleep(0.05)
      assert.same({"cb", "later", "at"}, got)
    end)
  end)

  it("runs a PeriodicCallback on its cadence and stops it", function()
    run(function()
      local n = 0
      local pc = ioloop.PeriodicCallback(function() n = n + 1 end, 10)
      pc:start()
      assert.is_true(pc:is_running())
      core.sleep(0.105)
      pc:stop()
      local seen = n
      assert.is_true(seen >= 8 and seen <= 11, "ran " .. seen .. " times")
      core.sleep(0.03)
      assert.equal(seen, n)
    end)
  end)
end)
