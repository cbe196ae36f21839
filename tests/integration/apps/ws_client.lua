-- Drives gust's WebSocket client for tests/integration/test_websocket.py:
--   GET /run?url=<ws or wss url>&ca=<PEM file>&verify=0|1&msg=<text>
-- connects, sends msg, reads the answer, closes, and reports as JSON:
--   {"reply": ..., "close_code": ..., "subprotocol": ..., "err": ...}
local web = require "gust.web"
local websocket = require "gust.websocket"

local Run = web.RequestHandler:extend()
function Run:get()
  local url = self:get_argument("url")
  local opts = {
    ca_certs = self:get_argument("ca", nil),
    validate_cert = self:get_argument("verify", "1") == "1",
    connect_timeout = 5, request_timeout = 5,
  }
  local conn, err = websocket.connect(url, opts)
  if not conn then return self:write({ err = err }) end
  conn:write_message(self:get_argument("msg", "hello"))
  local reply = conn:read_message()
  conn:close(1000, "done")
  conn:read_message()
  self:write({ reply = reply, close_code = conn.close_code })
end

return web.Application({ {"/run", Run} })
