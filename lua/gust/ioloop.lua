-- gust.ioloop: Tornado's IOLoop facade over the C core's libevent loop.
-- Timers are kept in the core's heap (nearest first, equal deadlines in
-- the order added) and every callback runs in a coroutine of its own, so it
-- may yield. A worker has one loop; current() returns it.
local core = require "gust.core"

local error = error
local setmetatable = setmetatable
local type = type
local floor = math.floor
local xpcall = xpcall
local traceback = debug.traceback

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

-- callback(...) at `when`, a time on the loop's clock (time()); a handle
-- for remove_timeout. The core's one timer heap orders every timer by
-- (deadline, order added), so equal deadlines fire in the order added.
function IOLoop:call_at(when, callback, ...)
  if type(when) ~= "number" or when ~= when then
    error("bad argument #1 to 'call_at' (number expected)", 2)
  end
  if type(callback) ~= "function" then
    error("bad argument #2 to 'call_at' (function expected)", 2)
  end
  return core.call_at(when, callback, ...)
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
