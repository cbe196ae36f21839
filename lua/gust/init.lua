-- gust: the top-level module. Tasks and time come straight from the C core;
-- the framework's modules load on first use (gust.web, gust.ioloop, ...).
local core = require "gust.core"

local require = require
local error = error
local type = type
local rawset = rawset
local setmetatable = setmetatable

local _M = { _VERSION = core.VERSION }

-- gust.spawn(fn, ...): run fn(...) as a task on the next loop iteration;
-- an error in it is logged with its traceback.
_M.spawn = core.spawn
-- gust.sleep(seconds): yields the current task.
_M.sleep = core.sleep
-- gust.now(): the loop's monotonic clock, in seconds.
_M.now = core.now

-- gust.run_in_thread(fn, ...): fn(...) in a thread pool with Lua states of
-- its own, for blocking work that must not stall the loop; yields until it
-- returns, then gives its results, or nil and the error. fn must be
-- self-contained (no upvalues: it travels as bytecode) and its arguments and
-- results nil, booleans, numbers or strings.
local string_dump = string.dump
local getinfo = debug.getinfo
function _M.run_in_thread(fn, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'run_in_thread' (function expected, got " .. type(fn) .. ")", 2)
  end
  if getinfo(fn, "u").nups > 0 then
    error("bad argument #1 to 'run_in_thread' (function must not use upvalues)", 2)
  end
  return core.run_in_thread(string_dump(fn), ...)
end

local submodules = {
  web = true, ioloop = true, log = true, escape = true, httputil = true,
  websocket = true, httpclient = true, iostream = true, tcpserver = true,
  tcpclient = true, netutil = true, locks = true, queues = true,
  template = true, wsapi = true, testing = true, pubsub = true, shared = true,
}

return setmetatable(_M, {
  __index = function(t, k)
    if submodules[k] then
      local m = require("gust." .. k)
      rawset(t, k, m)
      return m
    end
  end,
})
