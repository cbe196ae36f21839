-- Pubsub across workers: GET /wait?ch=X waits for the next message on X
-- (the answer names the worker that delivered it); POST /pub?ch=X&msg=Y
-- publishes from whichever worker takes the request; GET /count?ch=X is
-- the number of subscribers to X in that worker, GET /pid the worker,
-- GET /hold?s=S keeps it busy.
local core = require "gust.core"
local web = require "gust.web"
local pubsub = require "gust.pubsub"
local queues = require "gust.queues"

local Wait = web.RequestHandler:extend()
function Wait:get()
  local q = queues.Queue()
  local sub = pubsub.subscribe(self:get_argument("ch"), function(message, channel)
    q:put(channel .. ":" .. message)
  end)
  local got, err = q:get(tonumber(self:get_argument("timeout", "5")))
  sub:cancel()
  if not got then
    self:set_status(504)
    return self:write(err)
  end
  self:write(got .. " " .. core.pid())
end

local Pub = web.RequestHandler:extend()
function Pub:post()
  local ok, err = pubsub.publish(self:get_argument("ch"), self:get_argument("msg"))
  self:write(ok and ("published " .. core.pid()) or err)
end

local Count = web.RequestHandler:extend()
function Count:get() self:write(tostring(pubsub.subscribers(self:get_argument("ch")))) end

local Pid = web.RequestHandler:extend()
function Pid:get() self:write(tostring(core.pid())) end

-- GET /hold?s=S holds its worker's loop for S seconds: meanwhile the other
-- worker accepts every new connection.
local Hold = web.RequestHandler:extend()
function Hold:get()
  local done = core.now() + tonumber(self:get_argument("s"))
  while core.now() < done do end -- luacheck: ignore 563
  self:write("held")
end

return web.Application({ {"/wait", Wait}, {"/pub", Pub}, {"/count", Count}, {"/pid", Pid},
                         {"/hold", Hold} })
