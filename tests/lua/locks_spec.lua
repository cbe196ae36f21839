-- gust.locks on the real loop: every test body runs as a task and the other
-- parties are tasks too (gust.spawn / core.call_later), no doubles.
local core = require "gust.core"
local locks = require "gust.locks"

-- Runs fn as a task on the real loop until it returns (or times out).
local run = require("gust.testing").run

-- Lets every task that is ready run (a few loop iterations).
local function settle()
  for _ = 1, 3 do core.sleep(0) end
end

local function pack(...) return { n = select("#", ...), ... } end

-- A task that waits with `waitfn` and records what it returned.
local function waiter(waitfn)
  local t = {}
  core.spawn(function()
    t.co = coroutine.running()
    t.res = pack(waitfn())
    t.at = core.now()
  end)
  return t
end

describe("gust.locks", function()
  it("has a version", function()
    assert.equal("0.1.0", locks._VERSION)
  end)

  describe("Event", function()
    it("returns at once when already set", function()
      run(function()
        local e = locks.Event()
        assert.is_false(e:is_set())
        e:set()
        assert.is_true(e:is_set())
        local order = {}
        core.spawn(function() order[#order + 1] = "other" end)
        assert.is_true(e:wait())
        order[#order + 1] = "waited"
        settle()
        assert.same({ "waited", "other" }, order) -- did not yield
      end)
    end)

    it("wakes every waiter when set, and clear() makes wait block again", function()
      run(function()
        local e = locks.Event()
        local a = waiter(function() return e:wait() end)
        local b = waiter(function() return e:wait(1) end)
        settle()
        assert.is_nil(a.res)
        assert.is_nil(b.res)
        e:set()
        settle()
        assert.same(pack(true), a.res)
        assert.same(pack(true), b.res)
        e:clear()
        assert.is_false(e:is_set())
        local c = waiter(function() return e:wait() end)
        settle()
        assert.is_nil(c.res)
        e:set()
        settle()
        assert.same(pack(true), c.res)
      end)
    end)

    it("times out with nil, 'timeout' after about the time", function()
      run(function()
        local e = locks.Event()
        local t0 = core.now()
        local ok, err = e:wait(0.05)
        local dt = core.now() - t0
        assert.is_nil(ok)
        assert.equal("timeout", err)
        assert.is_true(dt >= 0.045 and dt < 0.5, "waited " .. dt)
        assert.is_false(locks.waiting(coroutine.running()))
      end)
    end)

    it("does not count a timed-out waiter when set later", function()
      run(function()
        local e = locks.Event()
        local a = waiter(function() return e:wait(0.01) end)
        local b = waiter(function() return e:wait() end)
        core.sleep(0.03)
        assert.same(pack(nil, "timeout"), a.res)
        e:set()
        settle()
        assert.same(pack(true), b.res)
      end)
    end)

    it("rejects bad timeouts and waiting outside a task", function()
      local e = locks.Event()
      assert.has_error(function() e:wait() end)
      run(function()
        assert.has_error(function() e:wait("soon") end)
        assert.has_error(function() e:wait(0 / 0) end)
        e:set()
        assert.is_true(e:wait(-1)) -- negative: already expired, but set wins
      end)
    end)

    it("has a readable tostring", function()
      local e = locks.Event()
      assert.equal("<gust.locks.Event clear>", tostring(e))
      e:set()
      assert.equal("<gust.locks.Event set>", tostring(e))
    end)
  end)

  describe("Condition", function()
    it("notify(1) wakes exactly one waiter, in FIFO order", function()
      run(function()
        local c = locks.Condition()
        local order = {}
        for i = 1, 3 do
          core.spawn(function()
            assert(c:wait())
            order[#order + 1] = i
          end)
        end
        settle()
        assert.equal(1, c:notify(1))
        settle()
        assert.same({ 1 }, order)
        assert.equal(1, c:notify())
        settle()
        assert.same({ 1, 2 }, order)
        assert.equal(1, c:notify(5))
        settle()
        assert.same({ 1, 2, 3 }, order)
        assert.equal(0, c:notify())
      end)
    end)

    it("notify(n) wakes n and notify_all wakes the rest", function()
      run(function()
        local c = locks.Condition()
        local ws = {}
        for i = 1, 5 do ws[i] = waiter(function() return c:wait() end) end
        settle()
        assert.equal(2, c:notify(2))
        settle()
        assert.same(pack(true), ws[1].res)
        assert.same(pack(true), ws[2].res)
        assert.is_nil(ws[3].res)
        assert.equal(3, c:notify_all())
        settle()
        for i = 3, 5 do assert.same(pack(true), ws[i].res) end
        assert.equal(0, c:notify_all())
      end)
    end)

    it("times out with nil, 'timeout'", function()
      run(function()
        local c = locks.Condition()
        local t0 = core.now()
        local ok, err = c:wait(0.03)
        assert.is_nil(ok)
        assert.equal("timeout", err)
        assert.is_true(core.now() - t0 >= 0.025)
      end)
    end)

    it("does not count a waiter whose timeout fired: notify(1) wakes a live one", function()
      run(function()
        local c = locks.Condition()
        local a = waiter(function() return c:wait(0.01) end)
        local b = waiter(function() return c:wait() end)
        core.sleep(0.03)
        assert.same(pack(nil, "timeout"), a.res)
        assert.is_nil(b.res)
        assert.equal(1, c:notify(1))
        settle()
        assert.same(pack(true), b.res)
      end)
    end)

    it("resolves a timeout and a notify due at the same moment only once", function()
      run(function()
        local c = locks.Condition()
        -- a's timer is armed first, so it fires first; the notify
        -- right after must go to b.
        local a = waiter(function() return c:wait(0.02) end)
        local b = waiter(function() return c:wait() end)
        settle()
        local woken
        core.call_later(0.02, function() woken = c:notify(1) end)
        core.sleep(0.05)
        assert.same(pack(nil, "timeout"), a.res)
        assert.same(pack(true), b.res)
        assert.equal(1, woken)
      end)
    end)

    it("cancels the timer of a notified waiter, which is woken exactly once", function()
      run(function()
        local c = locks.Condition()
        local results = {}
        -- The notify is armed before the waiter's timer, with the
        -- same delay: it fires first.
        core.call_later(0.02, function() c:notify(1) end)
        core.spawn(function()
          results[1] = pack(c:wait(0.02))
          local t0 = core.now()
          results[2] = pack(c:wait(0.06)) -- a stale wake would end this early
          results.dt = core.now() - t0
        end)
        core.sleep(0.15)
        assert.same(pack(true), results[1])
        assert.same(pack(nil, "timeout"), results[2])
        assert.is_true(results.dt >= 0.055, "second wait took " .. results.dt)
      end)
    end)

    it("rejects a bad count", function()
      local c = locks.Condition()
      assert.has_error(function() c:notify(-1) end)
      assert.has_error(function() c:notify(1.5) end)
      assert.has_error(function() c:notify("1") end)
    end)
  end)

  describe("cancel", function()
    it("wakes a waiting task with nil, 'closed' and removes it from the wait list", function()
      run(function()
        local c = locks.Condition()
        local a = waiter(function() return c:wait(1) end)
        local b = waiter(function() return c:wait() end)
        settle()
        assert.is_true(locks.waiting(a.co))
        assert.is_true(locks.cancel(a.co))
        assert.is_false(locks.waiting(a.co))
        assert.is_false(locks.cancel(a.co)) -- once
        settle()
        assert.same(pack(nil, "closed"), a.res)
        assert.equal(1, c:notify(1))
        settle()
        assert.same(pack(true), b.res)
        assert.equal(0, c:notify(1))
      end)
    end)

    it("passes a custom error, and a cancelled waiter never receives a later notify", function()
      run(function()
        local c = locks.Condition()
        local got = {}
        local co
        core.spawn(function()
          co = coroutine.running()
          got[#got + 1] = pack(c:wait())
          -- a second wait somewhere else: must not see c's notify
          got[#got + 1] = pack(core.sleep(0.05))
          got.slept_until = core.now()
        end)
        settle()
        locks.cancel(co, "gone")
        local t0 = core.now()
        assert.equal(0, c:notify_all())
        core.sleep(0.1)
        assert.same(pack(nil, "gone"), got[1])
        assert.same(pack(true), got[2])
        assert.is_true(got.slept_until - t0 >= 0.045)
      end)
    end)

    it("cancels the wait's timer", function()
      run(function()
        local c = locks.Condition()
        local got = {}
        local co
        core.spawn(function()
          co = coroutine.running()
          got[1] = pack(c:wait(0.02))
          got[2] = pack(c:wait()) -- the old timer must not end this one
        end)
        settle()
        assert.is_true(locks.cancel(co))
        core.sleep(0.05)
        assert.same(pack(nil, "closed"), got[1])
        assert.is_nil(got[2])
        assert.is_true(locks.waiting(co))
        assert.equal(1, c:notify())
        settle()
        assert.same(pack(true), got[2])
      end)
    end)

    it("is a no-op once the waiter was notified, even before it resumed", function()
      run(function()
        local c = locks.Condition()
        local a = waiter(function() return c:wait() end)
        settle()
        assert.equal(1, c:notify())
        assert.is_false(locks.waiting(a.co))
        assert.is_false(locks.cancel(a.co, "late"))
        settle()
        assert.same(pack(true), a.res)
      end)
    end)

    it("returns false for a task that is not waiting, and checks its argument", function()
      run(function()
        assert.is_false(locks.cancel(coroutine.running()))
        assert.is_false(locks.waiting(coroutine.running()))
        assert.has_error(function() locks.cancel("co") end)
      end)
    end)

    it("works on Event, Lock and Semaphore waits", function()
      run(function()
        local e, l, s = locks.Event(), locks.Lock(), locks.Semaphore(0)
        assert(l:acquire())
        local a = waiter(function() return e:wait() end)
        local b = waiter(function() return l:acquire() end)
        local c = waiter(function() return s:acquire(5) end)
        settle()
        for _, t in ipairs({ a, b, c }) do assert.is_true(locks.cancel(t.co, "closed")) end
        settle()
        for _, t in ipairs({ a, b, c }) do assert.same(pack(nil, "closed"), t.res) end
        l:release()
        assert.is_false(l:locked()) -- the cancelled waiter did not get it
        s:release()
        assert.equal(1, s:value())
      end)
    end)
  end)

  describe("Lock", function()
    it("excludes tasks that sleep while holding it, and serves them FIFO", function()
      run(function()
        local lock = locks.Lock()
        local log, inside = {}, 0
        local finished = 0
        for i = 1, 5 do
          core.spawn(function()
            assert.is_true(lock:acquire())
            inside = inside + 1
            assert.equal(1, inside)
            log[#log + 1] = "in" .. i
            core.sleep(0.005)
            log[#log + 1] = "out" .. i
            inside = inside - 1
            lock:release()
            finished = finished + 1
          end)
        end
        while finished < 5 do core.sleep(0.01) end
        assert.same({ "in1", "out1", "in2", "out2", "in3", "out3",
                      "in4", "out4", "in5", "out5" }, log)
        assert.is_false(lock:locked())
      end)
    end)

    it("is fair: a task that releases and re-acquires goes to the back", function()
      run(function()
        local lock = locks.Lock()
        local order = {}
        assert(lock:acquire())
        for i = 1, 3 do
          core.spawn(function()
            assert(lock:acquire())
            order[#order + 1] = i
            lock:release()
          end)
        end
        settle()
        lock:release()
        assert.is_true(lock:locked()) -- handed to task 1 already
        assert(lock:acquire())
        order[#order + 1] = "main"
        lock:release()
        assert.same({ 1, 2, 3, "main" }, order)
      end)
    end)

    it("errors when releasing an unlocked lock", function()
      local lock = locks.Lock()
      assert.has_error(function() lock:release() end, "release unlocked lock")
    end)

    it("times out an acquire, and hands the lock to the next live waiter", function()
      run(function()
        local lock = locks.Lock()
        assert(lock:acquire())
        local a = waiter(function() return lock:acquire(0.01) end)
        local b = waiter(function() return lock:acquire() end)
        core.sleep(0.03)
        assert.same(pack(nil, "timeout"), a.res)
        assert.is_nil(b.res)
        lock:release()
        settle()
        assert.same(pack(true), b.res)
        assert.is_true(lock:locked())
        lock:release()
        assert.is_false(lock:locked())
        assert.matches("gust.locks.Lock unlocked", tostring(lock), 1, true)
      end)
    end)
  end)

  describe("Semaphore", function()
    it("lets `value` tasks in at once", function()
      run(function()
        local sem = locks.Semaphore(2)
        local inside, most, finished = 0, 0, 0
        for _ = 1, 6 do
          core.spawn(function()
            assert(sem:acquire())
            inside = inside + 1
            if inside > most then most = inside end
            core.sleep(0.005)
            inside = inside - 1
            sem:release()
            finished = finished + 1
          end)
        end
        while finished < 6 do core.sleep(0.01) end
        assert.equal(2, most)
        assert.equal(2, sem:value())
      end)
    end)

    it("counts acquire and release, and times out at zero", function()
      run(function()
        local sem = locks.Semaphore()
        assert.equal(1, sem:value())
        assert.is_true(sem:acquire())
        assert.equal(0, sem:value())
        local ok, err = sem:acquire(0.01)
        assert.is_nil(ok)
        assert.equal("timeout", err)
        sem:release()
        sem:release() -- unbounded: may go above the initial value
        assert.equal(2, sem:value())
        assert.matches("value=2 waiters=0", tostring(sem), 1, true)
      end)
    end)

    it("hands a release to the oldest waiter", function()
      run(function()
        local sem = locks.Semaphore(0)
        local a = waiter(function() return sem:acquire() end)
        local b = waiter(function() return sem:acquire() end)
        settle()
        sem:release()
        assert.equal(0, sem:value())
        settle()
        assert.same(pack(true), a.res)
        assert.is_nil(b.res)
        sem:release()
        settle()
        assert.same(pack(true), b.res)
      end)
    end)

    it("rejects a bad initial value", function()
      assert.has_error(function() locks.Semaphore(-1) end)
      assert.has_error(function() locks.Semaphore("2") end)
    end)

    it("BoundedSemaphore errors when released too many times", function()
      run(function()
        local sem = locks.BoundedSemaphore(2)
        assert(sem:acquire())
        sem:release()
        assert.has_error(function() sem:release() end, "semaphore released too many times")
        assert.equal(2, sem:value())
        assert.matches("gust.locks.BoundedSemaphore", tostring(sem), 1, true)
      end)
    end)
  end)

  it("skips many timed-out waiters without losing the live one", function()
    run(function()
      local c = locks.Condition()
      local dead = {}
      for i = 1, 100 do dead[i] = waiter(function() return c:wait(0.01) end) end
      local live = waiter(function() return c:wait() end)
      core.sleep(0.05)
      for i = 1, 100 do assert.same(pack(nil, "timeout"), dead[i].res) end
      assert.equal("<gust.locks.Condition waiters=1>", tostring(c))
      assert.equal(1, c:notify_all())
      settle()
      assert.same(pack(true), live.res)
    end)
  end)
end)
