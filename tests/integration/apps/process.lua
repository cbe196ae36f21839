-- For the process-model tests: which worker answered, a slow route to hold a
-- request across a reload, and a route that holds the loop (watchdog).
local core = require "gust.core"
local gust = require "gust"
local web = require "gust.web"

local VERSION = "v1"

local Pid = web.RequestHandler:extend()
function Pid:get() self:write(VERSION .. " " .. core.pid()) end

local Slow = web.RequestHandler:extend()
function Slow:get()
  gust.sleep(tonumber(self:get_argument("s", "1")))
  self:write("slow " .. VERSION .. " " .. core.pid())
end

local Busy = web.RequestHandler:extend()
function Busy:get()
  local t, s = core.now(), tonumber(self:get_argument("s", "0.3"))
  while core.now() - t < s do end
  self:write("busy")
end

local Thread = web.RequestHandler:extend()
function Thread:get()
  local n = tonumber(self:get_argument("n", "20"))
  local fib, err = gust.run_in_thread(function(k)
    local a, b = 0, 1
    for _ = 1, k do a, b = b, a + b end
    return a
  end, n)
  self:write(fib and tostring(fib) or err)
end

return web.Application({ {"/", Pid}, {"/slow", Slow}, {"/busy", Busy}, {"/thread", Thread},
                         {"/appmetrics", web.MetricsHandler} })
