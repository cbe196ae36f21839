-- gust.run_in_thread: blocking work in a thread pool while the loop runs.
local core = require "gust.core"
local gust = require "gust"
local testing = require "gust.testing"

describe("gust.run_in_thread", function()
  it("returns the function's results, arguments crossing over", function()
    testing.run(function()
      local a, b, c, d = gust.run_in_thread(function(x, s, flag)
        return x * 2, s:upper(), not flag, nil
      end, 21, "abc", false)
      assert.equal(42, a)
      assert.equal("ABC", b)
      assert.is_true(c)
      assert.is_nil(d)
    end)
  end)

  it("keeps the loop running while the thread works", function()
    testing.run(function()
      local ticks = 0
      local pc = require("gust.ioloop").PeriodicCallback(function() ticks = ticks + 1 end, 20)
      pc:start()
      local t0 = core.now()
      local ok = gust.run_in_thread(function()
        local t = os.clock()
        while os.clock() - t < 0.3 do end
        return true
      end)
      pc:stop()
      assert.is_true(ok)
      assert.is_true(core.now() - t0 >= 0.25)
      assert.is_true(ticks >= 8, "the loop ticked " .. ticks .. " times")
    end)
  end)

  it("runs jobs in parallel", function()
    testing.run(function()
      local t0 = core.now()
      local done = 0
      for _ = 1, 2 do
        gust.spawn(function()
          gust.run_in_thread(function() local t = os.clock() while os.clock() - t < 0.3 do end end)
          done = done + 1
        end)
      end
      while done < 2 do core.sleep(0.01) end
      -- Two 0.3 s jobs on two threads (this machine has 2 cores).
      assert.is_true(core.now() - t0 < 0.57, "took " .. (core.now() - t0))
    end)
  end)

  it("returns nil and the error when the function fails", function()
    testing.run(function()
      local ok, err = gust.run_in_thread(function() error("thread boom") end)
      assert.is_nil(ok)
      assert.matches("thread boom", err)
      ok, err = gust.run_in_thread(function() return {} end)
      assert.is_nil(ok)
      assert.matches("results must be", err)
    end)
  end)

  it("refuses closures, tables and calls outside a task", function()
    local up = 1
    assert.has_error(function() gust.run_in_thread(function() return up end) end)
    assert.has_error(function() gust.run_in_thread("not a function") end)
    testing.run(function()
      assert.has_error(function() gust.run_in_thread(function(t) return t end, {}) end)
    end)
    assert.has_error(function() gust.run_in_thread(function() end) end)
  end)
end)
