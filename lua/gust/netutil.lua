-- gust.netutil: listening sockets for scripts that run their own accept
-- loop (Tornado's bind_sockets + IOLoop.add_handler pattern).
local core = require "gust.core"

local _M = { _VERSION = "0.1.0" }

-- bind_sockets(port, address?, backlog?) -> {socket} | nil, err
-- Sockets are non-blocking; port 0 picks a free one (sock:getsockname()).
function _M.bind_sockets(port, address, backlog)
  if type(port) ~= "number" then
    error("bad argument #1 to 'bind_sockets' (port number expected)", 2)
  end
  local sock, err = core.bind_socket(port, address, backlog or 128)
  if not sock then
    return nil, err
  end
  return { sock }
end

return _M
