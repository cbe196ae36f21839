-- WebSocket handlers for tests/integration/test_websocket.py.
--
--   /echo, /echo/<name>   echo; commands in text messages:
--                         "close:<code>:<reason>" the server closes,
--                         "ping:<data>" the server pings (on_pong answers
--                         "pong:<data>"), "json" a table as JSON
--   /anyorigin            echo that accepts every Origin
--   /proto                picks "chat" among the offered subprotocols
--   /slow                 echoes after 20 ms each: order must hold
--   /error                on_message raises (-> 1011)
--   /flood                writes 64 KiB messages from another task until
--                         the client is closed for not reading (1008)
--   /pinger               pings every 0.2 s, 0.5 s timeout
--   /churn                echo whose on_close makes garbage (a collection
--                         then runs while other closes are being handled)
--   /threads              coroutines the registry holds after a full
--                         collection (plain HTTP): readers must not stay
--   /stats                what the handlers saw, as JSON (plain HTTP)
--   /hello                plain HTTP, to show the server still serves
local web = require "gust.web"
local websocket = require "gust.websocket"
local gust = require "gust"

local stats = { opened = 0, closed = 0, codes = {}, reasons = {}, errors = 0, flood = {} }

local function closed(self, name)
  stats.closed = stats.closed + 1
  stats.codes[name] = self.close_code
  stats.reasons[name] = self.close_reason
end

local Echo = websocket.WebSocketHandler:extend()
function Echo:open(name)
  stats.opened = stats.opened + 1
  if name then self:write_message("hello " .. name) end
end
function Echo:on_message(msg, binary)
  if not binary then
    local code, reason = msg:match("^close:(%d+):(.*)$")
    if code then return self:close(tonumber(code), reason) end
    local data = msg:match("^ping:(.*)$")
    if data then
      self._pinged = data
      return self:ping(data)
    end
    if msg == "json" then return self:write_message({ hello = "world", n = 1 }) end
  end
  self:write_message(msg, binary)
end
function Echo:on_pong(data)
  -- Only the answer to our own ping (a client may send pongs unasked).
  if data == self._pinged then self:write_message("pong:" .. data) end
end
function Echo:on_close() closed(self, "echo") end

local AnyOrigin = Echo:extend()
function AnyOrigin.check_origin() return true end

local Proto = Echo:extend()
function Proto.select_subprotocol(_, list)
  for _, p in ipairs(list) do if p == "chat" then return p end end
end
function Proto:open() self:write_message("proto=" .. tostring(self.selected_subprotocol)) end

local Slow = websocket.WebSocketHandler:extend()
function Slow:on_message(msg)
  gust.sleep(0.02)
  self:write_message(msg)
end

local Error = websocket.WebSocketHandler:extend()
function Error.on_message()
  stats.errors = stats.errors + 1
  error("boom")
end
function Error:on_close() closed(self, "error") end

local Flood = websocket.WebSocketHandler:extend()
function Flood:open()
  local chunk = string.rep("f", 65536)
  stats.flood = { started = true }
  gust.spawn(function()
    local sent = 0
    while true do
      -- Another task than the connection's: write_message never waits.
      local ok = self:write_message(chunk, true)
      if not ok then break end
      sent = sent + 1
      if sent % 16 == 0 then gust.sleep(0.001) end
    end
    stats.flood.sent = sent
  end)
end
function Flood:on_close()
  stats.flood.code = self.close_code
  stats.flood.reason = self.close_reason
end

local Pinger = Echo:extend()
Pinger.ping_interval = 0.2
Pinger.ping_timeout = 0.5
function Pinger.on_pong() stats.pongs = (stats.pongs or 0) + 1 end
function Pinger:on_close() closed(self, "pinger") end

local Churn = Echo:extend()
local churned = 0
function Churn:on_close()
  closed(self, "churn")
  for i = 1, 3000 do churned = churned + #{ i } end
end

local Threads = web.RequestHandler:extend()
function Threads:get()
  collectgarbage("collect")
  collectgarbage("collect")
  local n = 0
  for _, v in pairs(debug.getregistry()) do
    if type(v) == "thread" then n = n + 1 end
  end
  self:write(tostring(n))
end

local Stats = web.RequestHandler:extend()
function Stats:get() self:write(stats) end

local Hello = web.RequestHandler:extend()
function Hello:get() self:write("hello") end

return web.Application({
  {"/echo", Echo},
  {"/echo/(%w+)", Echo},
  {"/anyorigin", AnyOrigin},
  {"/proto", Proto},
  {"/slow", Slow},
  {"/error", Error},
  {"/flood", Flood},
  {"/pinger", Pinger},
  {"/churn", Churn},
  {"/threads", Threads},
  {"/stats", Stats},
  {"/hello", Hello},
}, { websocket_max_message_size = 65536 })
