-- The server of tests/bench/broadcast.sh: every WebSocket on /sub is a
-- gust.pubsub subscriber of "bcast" of its own and gets each message;
-- POST /pub publishes the body; GET /count says how many sockets are open.
local web = require "gust.web"
local websocket = require "gust.websocket"
local pubsub = require "gust.pubsub"

local open = 0

local Sub = websocket.WebSocketHandler:extend()
function Sub:open()
  open = open + 1
  self.sub = pubsub.subscribe("bcast", function(message) self:write_message(message) end)
end
function Sub:on_close()
  open = open - 1
  if self.sub then self.sub:cancel() end
end
function Sub.check_origin() return true end

local Pub = web.RequestHandler:extend()
function Pub:post()
  local ok, err = pubsub.publish("bcast", self.request.body)
  self:write(ok and "ok" or err)
end

local Count = web.RequestHandler:extend()
function Count:get() self:write(tostring(open)) end

return web.Application({ {"/sub", Sub}, {"/pub", Pub}, {"/count", Count} })
