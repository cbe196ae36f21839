-- gust.ioloop on the real loop: timers by deadline (call_at, add_timeout).
-- Each test runs its body as a task on the loop (gust.testing.run).
local core = require "gust.core"
local ioloop = require "gust.ioloop"
local testing = require "gust.testing"

local run = testing.run

describe("gust.ioloop call_at", function()
  local loop = ioloop.current()

  it("fires timers with the same deadline in the order they were added", function()
    run(function()
      local got = {}
      local t = loop:time() + 0.02
      for i = 1, 3 do loop:call_at(t, function() got[#got + 1] = i end) end
      for i = 4, 6 do loop:add_timeout(t, function() got[#got + 1] = i end) end
      core.sleep(0.05)
      assert.same({ 1, 2, 3, 4, 5, 6 }, got)
    end)
  end)

  it("fires the nearest deadline first, however close the deadlines are", function()
    run(function()
      local got = {}
      local t = loop:time() + 0.02
      -- added latest first; 1e-9 s apart, below what the clock can tell
      for i = 5, 1, -1 do loop:call_at(t + i * 1e-9, function() got[#got + 1] = i end) end
      loop:call_at(t + 0.01, function() got[#got + 1] = "later" end)
      loop:call_at(t - 0.01, function() got[#got + 1] = "sooner" end)
      core.sleep(0.06)
      assert.same({ "sooner", 1, 2, 3, 4, 5, "later" }, got)
    end)
  end)

  it("passes the arguments, nils included, and fires a past deadline at once", function()
    run(function()
      local got
      loop:call_at(loop:time() - 1, function(...) got = { n = select("#", ...), ... } end,
                   "a", nil, 3, nil)
      core.sleep(0.01)
      assert.same({ n = 4, "a", nil, 3, nil }, got)
    end)
  end)

  it("runs each callback in its own coroutine, so one that waits delays no other", function()
    run(function()
      local got = {}
      local t = loop:time() + 0.01
      loop:call_at(t, function()
        got[#got + 1] = "first"
        core.sleep(0.05)
        got[#got + 1] = "first again"
      end)
      loop:call_at(t, function() got[#got + 1] = "second" end)
      core.sleep(0.03)
      assert.same({ "first", "second" }, got)
      core.sleep(0.05)
      assert.same({ "first", "second", "first again" }, got)
    end)
  end)

  it("cancels with remove_timeout, also one that falls due with an earlier one", function()
    run(function()
      local got = {}
      local t = loop:time() + 0.01
      local h2
      loop:call_at(t, function() got[#got + 1] = 1; loop:remove_timeout(h2) end)
      h2 = loop:call_at(t, function() got[#got + 1] = 2 end)
      local h3 = loop:add_timeout(t, function() got[#got + 1] = 3 end)
      loop:call_at(t, function() got[#got + 1] = 4 end)
      assert.is_true(h3:cancel())
      assert.is_false(h3:cancel())
      loop:remove_timeout(nil)
      core.sleep(0.03)
      assert.same({ 1, 4 }, got)
      assert.is_false(h2:cancel())
    end)
  end)

  it("stays ordered through many cancellations", function()
    run(function()
      local got = {}
      local t = loop:time() + 0.02
      local handles = {}
      for i = 1, 1500 do
        handles[i] = loop:call_at(t + (i % 7) * 1e-4, function() got[#got + 1] = i end)
      end
      for i = 1, 1500 do
        if i % 3 ~= 0 then handles[i]:cancel() end
      end
      core.sleep(0.05)
      local want = {}
      for k = 0, 6 do
        for i = 1, 1500 do
          if i % 3 == 0 and i % 7 == k then want[#want + 1] = i end
        end
      end
      assert.same(want, got)
    end)
  end)

  it("checks its arguments", function()
    assert.has_error(function() loop:call_at("soon", function() end) end)
    assert.has_error(function() loop:call_at(0 / 0, function() end) end)
    assert.has_error(function() loop:add_timeout(loop:time(), "f") end)
  end)
end)
