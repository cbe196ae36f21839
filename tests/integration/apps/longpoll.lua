-- Handlers that wait without defining on_connection_close: the framework
-- must wake their wait with nil, "closed" when the client leaves (§4.5).
local web = require "gust.web"
local locks = require "gust.locks"
local queues = require "gust.queues"

local cond = locks.Condition()
local queue = queues.Queue()
local stats = { cond_closed = 0, queue_closed = 0, waiting = 0, async = 0, async_closed = 0 }

local WaitCond = web.RequestHandler:extend()
function WaitCond:get()
  stats.waiting = stats.waiting + 1
  local ok, err = cond:wait(30)
  stats.waiting = stats.waiting - 1
  if not ok and err == "closed" then stats.cond_closed = stats.cond_closed + 1 return end
  self:write("woken")
end

local WaitQueue = web.RequestHandler:extend()
function WaitQueue:get()
  stats.waiting = stats.waiting + 1
  local item, err = queue:get(30)
  stats.waiting = stats.waiting - 1
  if item == nil and err == "closed" then stats.queue_closed = stats.queue_closed + 1 return end
  self:write(item)
end

-- A response ended under its handler (here the core's handle cut the
-- connection): finish() then says "closed", whether the response takes the
-- core's plain path (no headers of its own) or the full one.
local Late = web.RequestHandler:extend()
function Late:get(how)
  self._req:abort()
  if how == "headers" then self:set_header("X-Late", "1") end
  local ok, err = self:finish("late")
  stats["late_" .. how] = tostring(ok) .. " " .. tostring(err)
end

-- Returns at once and never finishes: its coroutine goes back to the
-- core's pool, and runs the next request.
local Async = web.RequestHandler:extend()
Async.get = web.asynchronous(function() stats.async = stats.async + 1 end)
function Async:on_connection_close() stats.async_closed = stats.async_closed + 1 end

local Notify = web.RequestHandler:extend()
function Notify:post()
  cond:notify_all()
  queue:put(self:get_argument("item", "x"))
  self:write("ok")
end

local Stats = web.RequestHandler:extend()
function Stats:get() self:write(stats) end

return web.Application({
  {"/cond", WaitCond}, {"/queue", WaitQueue}, {"/notify", Notify}, {"/stats", Stats},
  {"/late/(%a+)", Late}, {"/async", Async},
})
