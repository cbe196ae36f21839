-- gust.tcpclient: outgoing connections as IOStreams. Names resolve through
-- libevent's asynchronous DNS; nothing blocks the loop.
--
--   local stream, err = tcpclient.connect("example.com", 80, {timeout = 5})
local core = require "gust.core"

local _M = { _VERSION = "0.1.0" }

-- connect(host, port, opts?) -> stream | nil, err  (yields)
-- err: "connection refused", "timeout", "dns: <host>: <reason>", ...
function _M.connect(host, port, opts)
  if type(host) ~= "string" or type(port) ~= "number" then
    error("bad argument to 'connect' (host string and port number expected)", 2)
  end
  local timeout = opts and (opts.timeout or opts.connect_timeout) or 20
  return core.connect(host, port, timeout)
end

return _M
