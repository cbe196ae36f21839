-- gust.tcpserver: Tornado's TCPServer. Subclass it and define
-- handle_stream(stream, address); each connection runs it in a task of its
-- own, with address = {ip, port}.
--
--   local Echo = tcpserver.TCPServer:extend()
--   function Echo:handle_stream(stream, address) ... end
--   Echo():listen(8000)
local core = require "gust.core"
local log = require "gust.log"

local setmetatable = setmetatable
local xpcall = xpcall

local _M = { _VERSION = "0.1.0" }

local TCPServer = { __name = "gust.TCPServer" }
TCPServer.__index = TCPServer

setmetatable(TCPServer, {
  __call = function(cls, ...)
    local self = setmetatable({ _listeners = {} }, cls)
    if self.initialize then self:initialize(...) end
    return self
  end,
})

function TCPServer:extend()
  local cls = setmetatable({}, getmetatable(self))
  for k, v in pairs(self) do
    if k ~= "__index" then cls[k] = v end
  end
  cls.__index = cls
  cls.__name = self.__name
  return cls
end

function TCPServer:handle_stream(_stream, _address)
  error("TCPServer:handle_stream() must be defined by the subclass", 2)
end

-- listen(port, address?) -> the bound port; raises when the bind fails.
function TCPServer:listen(port, address)
  local server = self
  local listener, err = core.listen_stream(function(stream, addr)
    local ok, e = xpcall(server.handle_stream, log.traceback, server, stream, addr)
    if not ok then
      log.error("Error in connection callback: %s", e)
      stream:close()
    end
  end, port or 0, address)
  if not listener then
    error("TCPServer:listen: " .. err, 2)
  end
  self._listeners[#self._listeners + 1] = listener
  return listener:port()
end

-- Stops accepting; connections in progress carry on.
function TCPServer:stop()
  for i = 1, #self._listeners do self._listeners[i]:close() end
  self._listeners = {}
end

_M.TCPServer = TCPServer
return _M
