-- A TCPServer whose streams read until the client's EOF, without pausing
-- (read_until_close), and say on stderr how much came (the EOF has closed
-- the stream, as in Tornado): for the test of bytes and a FIN that arrive
-- together.
local core = require "gust.core"
local ioloop = require "gust.ioloop"
local tcpserver = require "gust.tcpserver"

local Drain = tcpserver.TCPServer:extend()
function Drain:handle_stream(stream)
  local data = stream:read_until_close()
  io.stderr:write(("tcpdrain: got %d bytes\n"):format(#(data or "")))
  io.stderr:flush()
end

local config = core.config()
local port = Drain():listen(config.port, config.bind)
print(("tcpdrain listening on %s:%d"):format(config.bind or "127.0.0.1", port))
io.stdout:flush()
ioloop.current():start()
