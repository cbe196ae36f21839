-- WebSocket echo with permessage-deflate on (websocket_compression) and the
-- default limits, for tests/integration/test_websocket.py.
--   /echo    echo
--   /hello   plain HTTP
local web = require "gust.web"
local websocket = require "gust.websocket"

local Echo = websocket.WebSocketHandler:extend()
function Echo:on_message(msg, binary) self:write_message(msg, binary) end

local Hello = web.RequestHandler:extend()
function Hello:get() self:write("hello") end

return web.Application({
  {"/echo", Echo},
  {"/hello", Hello},
}, { websocket_compression = true })
