-- gust.iostream: Tornado's IOStream. The buffering, the waiting and the
-- socket work are in C (gust.stream); this module makes streams from fds
-- and sockets.
--
--   local s = iostream.IOStream(conn)            -- adopts a gust.socket or fd
--   local line = s:read_until("\n")               -- ends with "\n"; yields
--   local body = s:read_bytes(10, partial)        -- nil, err once closed
--   s:write("data")                               -- yields above 64 KiB queued
--   s:set_close_callback(fn); s:close(); s:closed()
local core = require "gust.core"

local _M = { _VERSION = "0.1.0" }

function _M.IOStream(fd_or_socket, opts)
  local stream = core.stream(fd_or_socket)
  if opts and opts.max_buffer_size then
    stream:set_max_buffer_size(opts.max_buffer_size)
  end
  return stream
end

return _M
