-- gust.pubsub across servers (--redis): GET /collect?ch=X&n=N subscribes
-- and answers with the first N messages (or what came within `timeout`),
-- as JSON {pid=, messages=[...]}; GET /ready?ch=X counts the collectors
-- of this server that have subscribed; POST /burst?ch=X&from=ID&n=N
-- publishes "ID:1" .. "ID:N" from one worker; POST /pub?ch=X&msg=Y one.
local core = require "gust.core"
local gust = require "gust"
local web = require "gust.web"
local pubsub = require "gust.pubsub"
local shared = require "gust.shared"
local locks = require "gust.locks"

local ready = shared.dict("redis_pubsub_ready", "64k")

local Collect = web.RequestHandler:extend()
function Collect:get()
  local ch = self:get_argument("ch")
  local n = tonumber(self:get_argument("n", "1"))
  local got, done = {}, locks.Event()
  local sub = pubsub.subscribe(ch, function(message)
    got[#got + 1] = message
    if #got >= n then done:set() end
  end)
  ready:incr(ch, 1, 0)
  done:wait(tonumber(self:get_argument("timeout", "20")))
  sub:cancel()
  self:write({ pid = core.pid(), messages = got })
end

local Ready = web.RequestHandler:extend()
function Ready:get() self:write(tostring(ready:get(self:get_argument("ch")) or 0)) end

local Burst = web.RequestHandler:extend()
function Burst:post()
  local ch, from = self:get_argument("ch"), self:get_argument("from")
  for i = 1, tonumber(self:get_argument("n")) do
    local ok, err = pubsub.publish(ch, from .. ":" .. i)
    if not ok then return self:write("publish " .. i .. ": " .. err) end
    if i % 20 == 0 then gust.sleep(0.002) end -- let the bus drain
  end
  self:write("ok")
end

local Pub = web.RequestHandler:extend()
function Pub:post()
  local ok, err = pubsub.publish(self:get_argument("ch"), self:get_argument("msg"))
  self:write(ok and "ok" or err)
end

local Main = web.RequestHandler:extend()
function Main:get() self:write("ok") end

return web.Application({
  {"/", Main}, {"/collect", Collect}, {"/ready", Ready}, {"/burst", Burst}, {"/pub", Pub},
})
