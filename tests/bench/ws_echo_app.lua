-- The WebSocket echo that tests/bench/websocket.sh measures.
local web = require "gust.web"
local websocket = require "gust.websocket"

local Echo = websocket.WebSocketHandler:extend()
function Echo:on_message(msg, binary) self:write_message(msg, binary) end
function Echo.check_origin() return true end

return web.Application({ {"/echo", Echo} }, {
  websocket_compression = os.getenv("GUST_BENCH_COMPRESSION") == "1",
})
