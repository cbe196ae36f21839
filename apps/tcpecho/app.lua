-- A line-echo server written the way Tornado's IOLoop docstring writes its
-- raw accept loop: a non-blocking listening socket, a level-triggered READ
-- handler that accepts until EAGAIN, and a task per connection.
--
--   build/gust --port 9000 apps/tcpecho/app.lua
--   printf 'hello\n' | nc 127.0.0.1 9000        -> hello
local core = require "gust.core"
local ioloop = require "gust.ioloop"
local iostream = require "gust.iostream"
local netutil = require "gust.netutil"

local function handle_connection(connection, _address)
  local stream = iostream.IOStream(connection)
  while true do
    local line = stream:read_until("\n", 64 * 1024)
    if not line then break end            -- closed, or a line over 64 KiB
    if not stream:write(line) then break end
  end
  stream:close()
end

local function connection_ready(sock, _fd, _events)
  while true do
    local connection, address = sock:accept()
    if not connection then return end     -- "EAGAIN": no more waiting
    connection:setblocking(false)
    ioloop.current():spawn_callback(handle_connection, connection, address)
  end
end

local config = core.config()
local sock = assert(netutil.bind_sockets(config.port, config.bind))[1]
sock:setblocking(false)
local io_loop = ioloop.current()
io_loop:add_handler(sock:fileno(), function(fd, events)
  connection_ready(sock, fd, events)
end, ioloop.READ)
local addr = sock:getsockname()
print(("tcpecho listening on %s:%d"):format(addr[1], addr[2]))
io.stdout:flush()
io_loop:start()
