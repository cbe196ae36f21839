-- gust.ioloop: Tornado's IOLoop facade over the C core's libevent loop.
-- Timers are kept in heaps (nearest first, equal deadlines in the order
-- added) and every callback runs in a coroutine of its own, so it may
-- yield. A worker has one loop; current() returns it.
local core = require "gust.core"

local error = error
local setmetatable = setmetatable
local type = type
local floor = math.floor
local xpcall = xpcall
local traceback = debug.traceback
local select = select
local unpack = unpack or table.unpack -- luacheck: ignore 143

local _M = { _VERSION = "0.1.0", READ = 1, WRITE = 4, ERROR = 8 }

local IOLoop = { __name = "gust.IOLoop" }
IOLoop.__index = IOLoop

local loop = setmetatable({}, IOLoop)

function _M.current()
  return loop
end

-- The loop's monotonic clock, the one call_at deadlines are measured on.
function IOLoop:time()
  return core.now()
end

-- Under the gust executable the loop starts once the app has loaded, so
-- start() there returns at once; under plain luajit it runs until stop().
function IOLoop:start()
  core.run()
end

function IOLoop:stop()
  core.stop()
end

function IOLoop:call_later(delay, callback, ...)
  if type(callback) ~= "function" then
    error("bad argument #2 to 'call_later' (function expected)", 2)
  end
  return core.call_later(delay, callback, ...)
end

------------------------------------------------------------------------------
-- Timers by deadline (call_at, add_timeout).
--
-- The core's timers take a delay, which it adds to its clock when the timer
-- is made; two timers asked for the same deadline through call_later(when -
-- now()) would land some nanoseconds apart, in no particular order. So the
-- deadlines are kept here, in a heap ordered by (deadline, order added),
-- with one core timer armed for the earliest. When it fires, every timer
-- due goes: the first runs in the core timer's coroutine, the others each
-- in a task of their own, started in order.

local heap, count, added = {}, 0, 0 -- entries; count in use; entries ever added
local cancelled = 0                  -- cancelled entries still in the heap
local armed, armed_when              -- the core timer for heap[1], and its deadline

-- An entry is also the handle call_at returns:
-- { when, seq, fn (nil once fired or cancelled), nargs, args... }.
local Timeout = { __name = "gust.ioloop.Timeout" }
Timeout.__index = Timeout

local function before(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end

local function sift_up(i)
  local x = heap[i]
  while i > 1 do
    local parent = floor(i / 2)
    if not before(x, heap[parent]) then break end
    heap[i] = heap[parent]
    i = parent
  end
  heap[i] = x
end

local function sift_down(i)
  local x = heap[i]
  while true do
    local child = 2 * i
    if child > count then break end
    if child < count and before(heap[child + 1], heap[child]) then child = child + 1 end
    if not before(heap[child], x) then break end
    heap[i] = heap[child]
    i = child
  end
  heap[i] = x
end

local function pop()
  local top = heap[1]
  heap[1] = heap[count]
  heap[count] = nil
  count = count - 1
  if count > 1 then sift_down(1) end
  return top
end

-- Drops the cancelled entries and rebuilds the heap.
local function compact()
  local n = 0
  for i = 1, count do
    local e = heap[i]
    heap[i] = nil
    if e[3] then
      n = n + 1
      heap[n] = e
    end
  end
  count, cancelled = n, 0
  for i = floor(n / 2), 1, -1 do sift_down(i) end
end

local fire

-- Arms the core timer for heap[1] unless it already is.
local function arm()
  local top = heap[1]
  if top ~= nil and armed ~= nil and armed_when == top[1] then return end
  if armed ~= nil then
    armed:cancel()
    armed = nil
  end
  if top == nil then return end
  armed_when = top[1]
  armed = core.call_later(armed_when - core.now(), fire)
end

local function run_entry(e)
  local fn = e[3]
  if fn == nil then return end -- cancelled after it fell due
  e[3] = nil
  return fn(unpack(e, 5, e[4] + 4))
end

function fire()
  armed = nil
  local now = core.now()
  local first
  while count > 0 do
    local top = heap[1]
    if top[1] > now then break end
    pop()
    if top[3] == nil then
      cancelled = cancelled - 1
    elseif first == nil then
      first = top
    else
      core.spawn(run_entry, top)
    end
  end
  arm()
  if first then return run_entry(first) end
end

-- true if the timer was pending (it had neither fired nor been cancelled).
function Timeout:cancel()
  if self[3] == nil then return false end
  self[3] = nil
  cancelled = cancelled + 1
  if cancelled > 512 and cancelled > count / 2 then
    compact()
    arm()
  end
  return true
end

-- callback(...) at `when`, a time on the loop's clock (time()); a handle
-- for remove_timeout.
function IOLoop:call_at(when, callback, ...)
  if type(when) ~= "number" or when ~= when then
    error("bad argument #1 to 'call_at' (number expected)", 2)
  end
  if type(callback) ~= "function" then
    error("bad argument #2 to 'call_at' (function expected)", 2)
  end
  added = added + 1
  local e = setmetatable({ when, added, callback, select("#", ...), ... }, Timeout)
  count = count + 1
  heap[count] = e
  sift_up(count)
  if heap[1] == e then arm() end
  return e
end

-- Tornado's add_timeout: a deadline on the loop's clock.
function IOLoop:add_timeout(deadline, callback, ...)
  return self:call_at(deadline, callback, ...)
end

-- Cancels a timer of call_later, call_at or add_timeout (nil is ignored).
function IOLoop:remove_timeout(handle)
  if handle then
    handle:cancel()
  end
end

-- Level-triggered fd handlers, as in Tornado: handler(fd, events) runs in
-- a coroutine of its own each iteration the fd is ready. fd may be a
-- number or an object with fileno() (a gust.socket).
function IOLoop:add_handler(fd, handler, events)
  if type(handler) ~= "function" then
    error("bad argument #2 to 'add_handler' (function expected)", 2)
  end
  core.add_handler(fd, handler, events or _M.READ)
end

function IOLoop:update_handler(fd, events)
  core.update_handler(fd, events)
end

function IOLoop:remove_handler(fd)
  core.remove_handler(fd)
end

-- callback(...) on the next iteration, in its own coroutine.
function IOLoop:add_callback(callback, ...)
  if type(callback) ~= "function" then
    error("bad argument #1 to 'add_callback' (function expected)", 2)
  end
  core.spawn(callback, ...)
end
IOLoop.spawn_callback = IOLoop.add_callback

-- PeriodicCallback(cb, ms): cb every ms milliseconds. Each run is scheduled
-- from the ideal timeline, not from when the last one ended, so lateness
-- does not accumulate; missed beats are skipped, as in Tornado.
local Periodic = { __name = "gust.PeriodicCallback" }
Periodic.__index = Periodic

function _M.PeriodicCallback(callback, callback_time)
  if type(callback) ~= "function" then
    error("bad argument #1 to 'PeriodicCallback' (function expected)", 2)
  end
  if type(callback_time) ~= "number" or callback_time <= 0 then
    error("bad argument #2 to 'PeriodicCallback' (positive milliseconds expected)", 2)
  end
  return setmetatable({ callback = callback, callback_time = callback_time,
                        _running = false }, Periodic)
end

local function schedule(self)
  local period = self.callback_time / 1000
  local now = core.now()
  if self._next <= now then
    self._next = self._next + (floor((now - self._next) / period) + 1) * period
  end
  self._timer = core.call_later(self._next - now, self._run, self)
end

function Periodic._run(self)
  if not self._running then
    return
  end
  local ok, err = xpcall(self.callback, traceback)
  if not ok then
    require("gust.log").error("PeriodicCallback: %s", err)
  end
  if self._running then
    schedule(self)
  end
end

function Periodic:start()
  if self._running then
    return
  end
  self._running = true
  self._next = core.now() + self.callback_time / 1000
  schedule(self)
end

function Periodic:stop()
  self._running = false
  if self._timer then
    self._timer:cancel()
    self._timer = nil
  end
end

function Periodic:is_running()
  return self._running
end

return _M
