-- gust.queues on the real loop: every test body runs as a task and the
-- producers and consumers are tasks too, no doubles.
local core = require "gust.core"
local locks = require "gust.locks"
local queues = require "gust.queues"

-- Runs fn as a task on the real loop until it returns (or times out).
local run = require("gust.testing").run

-- Lets every task that is ready run (a few loop iterations).
local function settle()
  for _ = 1, 3 do core.sleep(0) end
end

local function pack(...) return { n = select("#", ...), ... } end

-- A task that runs `fn` and records what it returned in .res.
local function task(fn)
  local t = {}
  core.spawn(function()
    t.co = coroutine.running()
    t.res = pack(fn())
  end)
  return t
end

describe("gust.queues", function()
  it("has a version", function()
    assert.equal("0.1.0", queues._VERSION)
  end)

  describe("Queue", function()
    it("gets items in the order they were put", function()
      run(function()
        local q = queues.Queue()
        assert.is_true(q:empty())
        assert.is_false(q:full()) -- unbounded
        for i = 1, 5 do assert.is_true(q:put(i)) end
        assert.equal(5, q:qsize())
        assert.is_false(q:empty())
        for i = 1, 5 do assert.equal(i, q:get()) end
        assert.is_true(q:empty())
        assert.equal(0, q:maxsize())
      end)
    end)

    it("put_nowait and get_nowait report full and empty", function()
      local q = queues.Queue(2)
      assert.is_true(q:put_nowait("a"))
      assert.is_true(q:put_nowait("b"))
      assert.is_true(q:full())
      assert.same(pack(nil, "full"), pack(q:put_nowait("c")))
      assert.equal("a", q:get_nowait())
      assert.equal("b", q:get_nowait())
      assert.same(pack(nil, "empty"), pack(q:get_nowait()))
    end)

    it("carries false but rejects nil", function()
      run(function()
        local q = queues.Queue()
        assert.is_true(q:put(false))
        assert.same(pack(false), pack(q:get()))
        assert.has_error(function() q:put(nil) end)
        assert.has_error(function() q:put_nowait(nil) end)
        local g = task(function() return q:get() end)
        settle()
        q:put(false)
        settle()
        assert.same(pack(false), g.res)
      end)
    end)

    it("get waits for a put and gets the item handed to it", function()
      run(function()
        local q = queues.Queue()
        local a = task(function() return q:get() end)
        local b = task(function() return q:get() end)
        settle()
        assert.is_nil(a.res)
        q:put("x")
        q:put("y")
        assert.equal(0, q:qsize()) -- both handed over already
        settle()
        assert.same(pack("x"), a.res)
        assert.same(pack("y"), b.res)
      end)
    end)

    it("blocks a put on a full queue until a get", function()
      run(function()
        local q = queues.Queue(1)
        assert.is_true(q:put(1))
        local p = task(function() return q:put(2) end)
        settle()
        assert.is_nil(p.res)
        assert.equal(1, q:qsize())
        assert.equal(1, q:get())
        assert.equal(1, q:qsize()) -- the putter's item went in
        assert.is_true(q:full())
        settle()
        assert.same(pack(true), p.res)
        assert.equal(2, q:get())
        assert.is_true(q:empty())
      end)
    end)

    it("times out a get and a put with nil, 'timeout'", function()
      run(function()
        local q = queues.Queue(1)
        local t0 = core.now()
        assert.same(pack(nil, "timeout"), pack(q:get(0.03)))
        local dt = core.now() - t0
        assert.is_true(dt >= 0.025 and dt < 0.5, "waited " .. dt)
        q:put("a")
        assert.same(pack(nil, "timeout"), pack(q:put("b", 0.01)))
        assert.equal(1, q:qsize()) -- "b" was dropped
        assert.equal("a", q:get())
        assert.same(pack(nil, "empty"), pack(q:get_nowait()))
      end)
    end)

    it("does not hand a put to a getter whose timeout fired", function()
      run(function()
        local q = queues.Queue()
        local a = task(function() return q:get(0.01) end)
        local b = task(function() return q:get() end)
        core.sleep(0.03)
        assert.same(pack(nil, "timeout"), a.res)
        q:put("x")
        settle()
        assert.same(pack("x"), b.res)
      end)
    end)

    it("rejects bad arguments and blocking outside a task", function()
      assert.has_error(function() queues.Queue(-1) end)
      assert.has_error(function() queues.Queue(1.5) end)
      assert.has_error(function() queues.Queue("3") end)
      local q = queues.Queue()
      assert.has_error(function() q:get() end)
      assert.has_error(function() q:put(1) end)
      run(function()
        assert.has_error(function() q:get("1") end)
        assert.has_error(function() q:put(1, {}) end)
      end)
    end)

    it("join waits until every item is marked with task_done", function()
      run(function()
        local q = queues.Queue()
        assert.is_true(q:join()) -- nothing unfinished
        q:put("a")
        q:put("b")
        local j = task(function() return q:join() end)
        settle()
        assert.equal("a", q:get())
        q:task_done()
        settle()
        assert.is_nil(j.res)
        assert.equal("b", q:get())
        assert.same(pack(nil, "timeout"), pack(q:join(0.01)))
        q:task_done()
        settle()
        assert.same(pack(true), j.res)
        assert.is_true(q:join(0))
        assert.has_error(function() q:task_done() end, "task_done() called too many times")
      end)
    end)

    it("runs a producer/consumer pipeline to completion", function()
      run(function()
        local q = queues.Queue(2)
        local got = {}
        for _ = 1, 3 do
          core.spawn(function()
            while true do
              local item = q:get()
              core.sleep(0.001)
              got[#got + 1] = item
              q:task_done()
            end
          end)
        end
        for i = 1, 20 do assert.is_true(q:put(i)) end
        assert.is_true(q:join(2))
        table.sort(got)
        local want = {}
        for i = 1, 20 do want[i] = i end
        assert.same(want, got)
      end)
    end)
  end)

  describe("cancel", function()
    it("wakes a waiting get with nil, 'closed' and a later put goes to the next waiter", function()
      run(function()
        local q = queues.Queue()
        local a = task(function() return q:get(1) end)
        local b = task(function() return q:get() end)
        settle()
        assert.is_true(locks.waiting(a.co))
        assert.is_true(locks.cancel(a.co))
        assert.is_false(locks.waiting(a.co))
        settle()
        assert.same(pack(nil, "closed"), a.res)
        q:put("x")
        settle()
        assert.same(pack("x"), b.res)
        assert.is_true(q:empty())
      end)
    end)

    it("drops the item of a cancelled put", function()
      run(function()
        local q = queues.Queue(1)
        q:put("a")
        local p = task(function() return q:put("b") end)
        local r = task(function() return q:put("c") end)
        settle()
        assert.is_true(locks.cancel(p.co, "gone"))
        settle()
        assert.same(pack(nil, "gone"), p.res)
        assert.equal("a", q:get())
        assert.equal("c", q:get())
        settle()
        assert.same(pack(true), r.res)
        assert.is_true(q:empty())
      end)
    end)

    it("does not take back an item already handed to the getter", function()
      run(function()
        local q = queues.Queue()
        local a = task(function() return q:get() end)
        settle()
        q:put("x")
        assert.is_false(locks.cancel(a.co)) -- served, not resumed yet
        settle()
        assert.same(pack("x"), a.res)
      end)
    end)

    it("ends a join", function()
      run(function()
        local q = queues.Queue()
        q:put(1)
        local j = task(function() return q:join() end)
        settle()
        assert.is_true(locks.cancel(j.co))
        settle()
        assert.same(pack(nil, "closed"), j.res)
      end)
    end)
  end)

  describe("LifoQueue", function()
    it("gets the most recent item first", function()
      run(function()
        local q = queues.LifoQueue()
        for i = 1, 4 do q:put(i) end
        assert.equal(4, q:qsize())
        for i = 4, 1, -1 do assert.equal(i, q:get()) end
        assert.same(pack(nil, "empty"), pack(q:get_nowait()))
        assert.matches("gust.queues.LifoQueue", tostring(q), 1, true)
      end)
    end)

    it("blocks a put on a full queue", function()
      run(function()
        local q = queues.LifoQueue(2)
        q:put(1)
        q:put(2)
        local p = task(function() return q:put(3) end)
        settle()
        -- Tornado: the waiting putter's item goes in, then the top comes out
        assert.equal(3, q:get_nowait())
        assert.equal(2, q:get_nowait())
        assert.equal(1, q:get_nowait())
        settle()
        assert.same(pack(true), p.res)
      end)
    end)
  end)

  describe("PriorityQueue", function()
    it("gets the smallest first", function()
      run(function()
        local q = queues.PriorityQueue()
        for _, v in ipairs({ 5, 1, 4, 2, 3 }) do q:put(v) end
        for i = 1, 5 do assert.equal(i, q:get()) end
      end)
    end)

    it("takes a comparator and keeps equal items in put order", function()
      local q = queues.PriorityQueue(0, function(a, b) return a[1] < b[1] end)
      local items = { { 2, "b1" }, { 1, "a1" }, { 2, "b2" }, { 0, "z" }, { 1, "a2" }, { 2, "b3" } }
      for _, it in ipairs(items) do assert.is_true(q:put_nowait(it)) end
      local names = {}
      while not q:empty() do names[#names + 1] = q:get_nowait()[2] end
      assert.same({ "z", "a1", "a2", "b1", "b2", "b3" }, names)
      assert.has_error(function() queues.PriorityQueue(0, "nope") end)
    end)

    it("matches a sort on random input", function()
      math.randomseed(42)
      local q = queues.PriorityQueue()
      local all = {}
      for round = 1, 20 do
        for _ = 1, 30 do
          local v = math.random(1, 50)
          all[#all + 1] = v
          q:put_nowait(v)
        end
        if round % 2 == 0 then
          table.sort(all)
          for _ = 1, 20 do
            assert.equal(table.remove(all, 1), q:get_nowait())
          end
        end
      end
      table.sort(all)
      for i = 1, #all do assert.equal(all[i], q:get_nowait()) end
      assert.is_true(q:empty())
    end)

    it("hands a blocked putter's item in before choosing the smallest", function()
      run(function()
        local q = queues.PriorityQueue(1)
        q:put(5)
        local p = task(function() return q:put(1) end)
        settle()
        assert.equal(1, q:get()) -- Tornado: the putter's item goes in first
        assert.equal(5, q:get())
        settle()
        assert.same(pack(true), p.res)
      end)
    end)
  end)
end)
