-- gust: the top-level module. Tasks and time come straight from the C core;
-- the framework's modules load on first use (gust.web, gust.ioloop, ...).
local core = require "gust.core"

local require = require
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
