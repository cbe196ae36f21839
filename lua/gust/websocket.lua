-- gust.websocket: Tornado's WebSocketHandler and websocket_connect over the
-- C core's "gust.websocket" connections (src/lua_ws.c, src/ws_frame.c).
--
--   local Echo = websocket.WebSocketHandler:extend()
--   function Echo:open(room) end                     -- route captures
--   function Echo:on_message(msg, is_binary) self:write_message(msg, is_binary) end
--   function Echo:on_close() end                      -- self.close_code, self.close_reason
--
--   local conn, err = websocket.connect("ws://127.0.0.1:8888/ws", {subprotocols = {"chat"}})
--   conn:write_message("hi"); local msg, is_binary = conn:read_message()  -- nil on close
--   conn:close(1000, "bye")
--
-- The wire is C's: framing, masking, UTF-8 and size checks, ping/pong, the
-- close handshake and permessage-deflate. This module owns the opening
-- handshake's policy (version, key, Upgrade/Connection, origin, subprotocol,
-- compression) and the handler's life: after the 101, the request's own task
-- runs open(), then on_message/on_pong for each arrival in order, then
-- on_close(). A slow on_message delays the next message; it never reorders
-- them.
--
-- Settings read (Application settings): websocket_max_message_size (10 MiB;
-- bigger -> close 1009), websocket_ping_interval, websocket_ping_timeout
-- (default: the interval; no pong in time -> close 1011),
-- websocket_max_buffer (4 MiB of unsent output -> close 1008),
-- websocket_close_timeout (3 s to wait for the peer's close; a drain waits as long),
-- websocket_compression (permessage-deflate, RFC 7692).
local core = require "gust.core"
local log = require "gust.log"
local escape = require "gust.escape"
local httputil = require "gust.httputil"
local errors = require "gust.web.errors"
local handler = require "gust.web.handler"

local type, tostring, tonumber, error = type, tostring, tonumber, error
local pairs, setmetatable, rawget = pairs, setmetatable, rawget
local xpcall = xpcall
local find, match, lower, gsub, format, sub = string.find, string.match, string.lower,
  string.gsub, string.format, string.sub
local gmatch = string.gmatch
local concat = table.concat

local sha1, b64encode, b64decode = core.sha1, core.b64encode, core.b64decode
local random_bytes = core.random_bytes
local json_encode = escape.json_encode
local HTTPError = errors.HTTPError

local _M = { _VERSION = "0.1.0" }

local GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
local MIB = 1024 * 1024

local function noop() end

-- Sec-WebSocket-Accept for a key (RFC 6455 4.2.2).
local function accept_key(key)
  return b64encode(sha1(key .. GUID))
end
_M.accept_key = accept_key

-- true when the comma-separated header value has `token` (case-insensitive).
local function has_token(value, token)
  if value == nil then return false end
  for t in gmatch(value, "[^,]+") do
    if lower(match(t, "^%s*(.-)%s*$")) == token then return true end
  end
  return false
end

-- A Sec-WebSocket-Key must be the base64 of 16 bytes (RFC 6455 4.1).
local function valid_key(key)
  if type(key) ~= "string" or not find(key, "^[%w+/]+==$") or #key ~= 24 then
    return false
  end
  local raw = b64decode(key)
  return raw ~= nil and #raw == 16
end

local function split_list(values)
  local out = {}
  for i = 1, #values do
    for t in gmatch(values[i], "[^,]+") do
      t = match(t, "^%s*(.-)%s*$")
      if t ~= "" then out[#out + 1] = t end
    end
  end
  return out
end

-- close(code, reason) arguments: a code an endpoint may send, a reason of
-- at most 123 bytes of UTF-8 (the core checks the UTF-8).
local function check_close_args(code, reason)
  if code ~= nil then
    if type(code) ~= "number" or code % 1 ~= 0
       or not ((code >= 1000 and code <= 1003) or (code >= 1007 and code <= 1011)
               or (code >= 3000 and code <= 4999)) then
      error("bad argument #1 to 'close' (close code must be 1000-1003, 1007-1011 or 3000-4999, got "
            .. tostring(code) .. ")", 3)
    end
  end
  if reason ~= nil and (type(reason) ~= "string" or #reason > 123) then
    error("bad argument #2 to 'close' (a reason of at most 123 bytes expected)", 3)
  end
end

-- Runs a handler hook; an error in it is logged and closes the connection
-- with 1011, as Tornado does.
local function run_callback(self, name, fn, ...)
  local ok, err = xpcall(fn, log.traceback, self, ...)
  if not ok then
    log.error("Uncaught exception in %s %s: %s", tostring(name), self:_request_summary(),
              tostring(err))
    local ws = rawget(self, "ws_connection")
    if ws then ws:close(1011, "internal error") end
  end
  return ok
end

------------------------------------------------------------------------------
-- WebSocketHandler

local WebSocketHandler = handler.RequestHandler:extend()
WebSocketHandler.__name = "gust.websocket.WebSocketHandler"
_M.WebSocketHandler = WebSocketHandler

-- Hooks a subclass overrides.
WebSocketHandler.open = noop
WebSocketHandler.on_message = noop
WebSocketHandler.on_close = noop
WebSocketHandler.on_pong = noop
WebSocketHandler.on_ping = noop

-- Same-origin by default: the Origin's host[:port] must be the Host header.
-- Requests without an Origin (non-browser clients) are let through.
function WebSocketHandler:check_origin(origin)
  local host = match(origin, "^%a[%w+.-]*://([^/?#]*)")
  if not host then return false end
  return lower(host) == lower(self.request.headers["Host"] or "")
end

-- Picks one of the client's subprotocols, or nil for none.
function WebSocketHandler:select_subprotocol(subprotocols) -- luacheck: ignore 212
  return nil
end

-- nil: no compression; a table (maybe empty) enables permessage-deflate with
-- compression_level, mem_level, server_no_context_takeover,
-- client_no_context_takeover, server_max_window_bits, client_max_window_bits.
function WebSocketHandler:get_compression_options()
  if self.settings.websocket_compression then return {} end
  return nil
end

-- The handshake's 101 response.
local function response_head(self, key, subprotocol, extensions)
  local lines = {
    "HTTP/1.1 101 Switching Protocols\r\n",
    "Upgrade: websocket\r\n",
    "Connection: Upgrade\r\n",
    "Sec-WebSocket-Accept: ", accept_key(key), "\r\n",
    "Server: gust/", core.VERSION, "\r\n",
  }
  if subprotocol then lines[#lines + 1] = "Sec-WebSocket-Protocol: " .. subprotocol .. "\r\n" end
  if extensions then lines[#lines + 1] = "Sec-WebSocket-Extensions: " .. extensions .. "\r\n" end
  -- What prepare()/open-time code set: headers and cookies (as Tornado,
  -- which sends them on the 101).
  local h = self:_outgoing_headers()
  if h then
    for name, v in pairs(h) do
      local ln = lower(name)
      if ln ~= "content-type" and ln ~= "content-length" and ln ~= "transfer-encoding"
         and ln ~= "connection" and ln ~= "upgrade" then
        if type(v) ~= "table" then v = { v } end
        for i = 1, #v do lines[#lines + 1] = name .. ": " .. tostring(v[i]) .. "\r\n" end
      end
    end
  end
  lines[#lines + 1] = "\r\n"
  return concat(lines)
end

-- The handshake checks (RFC 6455 4.2.1); raises HTTPError on a bad request.
local function check_handshake(self)
  local h = self.request.headers
  if not has_token(h["Upgrade"], "websocket") then
    error(HTTPError(400, { log_message = 'Can "Upgrade" only to "WebSocket"' }), 0)
  end
  if not has_token(h["Connection"], "upgrade") then
    error(HTTPError(400, { log_message = '"Connection" must be "Upgrade"' }), 0)
  end
  local version = h["Sec-WebSocket-Version"]
  if version == nil or match(version, "^%s*(.-)%s*$") ~= "13" then
    error(HTTPError(426, { log_message = "Unsupported WebSocket version " .. tostring(version),
                           headers = { ["Sec-WebSocket-Version"] = "13" } }), 0)
  end
  local key = h["Sec-WebSocket-Key"]
  key = key and match(key, "^%s*(.-)%s*$")
  if not valid_key(key) then
    error(HTTPError(400, { log_message = "Missing or invalid Sec-WebSocket-Key" }), 0)
  end
  local origin = h["Origin"] or h["Sec-WebSocket-Origin"]
  if origin ~= nil and not self:check_origin(origin) then
    error(HTTPError(403, { log_message = "Cross origin websockets not allowed" }), 0)
  end
  return key
end

-- The GET that upgrades; then this task is the connection's until it ends.
function WebSocketHandler:get(...)
  local key = check_handshake(self)
  local h = self.request.headers
  local subprotocol
  local offered = split_list(h:get_list("Sec-WebSocket-Protocol"))
  if #offered > 0 then
    subprotocol = self:select_subprotocol(offered)
    if subprotocol ~= nil then
      local known = false
      for i = 1, #offered do if offered[i] == subprotocol then known = true end end
      if not known then
        error(format("select_subprotocol returned %q, which the client did not offer",
                     tostring(subprotocol)), 0)
      end
    end
  end
  local extensions
  local copts = self:get_compression_options()
  local offer = h["Sec-WebSocket-Extensions"]
  if copts and offer then extensions = core.ws_negotiate(offer, copts) end

  local head = response_head(self, key, subprotocol, extensions)
  -- Fields read from the handle must be read while it is open: logs name
  -- the peer long after the HTTP request is gone.
  local _ = self.request.remote_ip
  -- detach() hands over the socket (with its TLS session on HTTPS) and the
  -- bytes read past the request, such as a client's first frame; the HTTP
  -- part is then over, and nothing may answer this request again.
  local stream, err = self:detach()
  if not stream then
    -- A client that left during the handshake is no news.
    local level = err == "closed" and log.debug or log.warn
    level("websocket upgrade %s: %s", self:_request_summary(), tostring(err))
    return
  end
  stream:write(head)

  -- A handler class may override any of these with a field of the same
  -- name without the prefix (Echo.max_message_size = 1024).
  local settings = self.settings
  local interval = self.ping_interval or settings.websocket_ping_interval
  local ws
  ws, err = core.websocket(stream, {
    max_message_size = self.max_message_size or settings.websocket_max_message_size
                       or 10 * MIB,
    max_buffer = self.max_buffer or settings.websocket_max_buffer or 4 * MIB,
    ping_interval = interval,
    ping_timeout = self.ping_timeout or settings.websocket_ping_timeout or interval,
    close_timeout = self.close_timeout or settings.websocket_close_timeout,
    extensions = extensions,
    compression_level = copts and copts.compression_level,
    mem_level = copts and copts.mem_level,
    deliver_pongs = true,
    deliver_pings = self.on_ping ~= noop,
  })
  if not ws then
    log.error("websocket %s: %s", self:_request_summary(), tostring(err))
    stream:close()
    return
  end
  self.ws_connection = ws
  self.selected_subprotocol = subprotocol

  run_callback(self, "open", self.open, ...)
  local receive = ws.receive
  while true do
    local data, kind, reason = receive(ws)
    if data == nil then
      self.close_code, self.close_reason = kind, reason
      break
    end
    if kind == "text" then
      run_callback(self, "on_message", self.on_message, data, false)
    elseif kind == "binary" then
      run_callback(self, "on_message", self.on_message, data, true)
    elseif kind == "pong" then
      run_callback(self, "on_pong", self.on_pong, data)
    else
      run_callback(self, "on_ping", self.on_ping, data)
    end
  end
  run_callback(self, "on_close", self.on_close)
end

-- write_message's argument as it goes out: a table as JSON text. Raises at
-- the caller of write_message for anything else.
local function outgoing(message, binary)
  local t = type(message)
  if t == "table" then return json_encode(message), false end
  if t ~= "string" then
    error("bad argument #1 to 'write_message' (string or table expected, got " .. t .. ")", 3)
  end
  return message, binary
end

-- write_message(string | table, binary?) -> true | nil, "closed". A table
-- is sent as JSON text. Called from the connection's own task it yields
-- while the client is behind (the C high mark); from any other task (a
-- broadcast) it never waits, and a client too far behind is closed with
-- 1008 instead.
function WebSocketHandler:write_message(message, binary)
  message, binary = outgoing(message, binary)
  local ws = rawget(self, "ws_connection")
  if ws == nil then return nil, "closed" end
  return ws:write_message(message, binary, "owner")
end

-- ping(data?) -> true | nil, "closed"; the answer arrives at on_pong.
function WebSocketHandler:ping(data)
  if data ~= nil and type(data) ~= "string" then
    error("bad argument #1 to 'ping' (string expected, got " .. type(data) .. ")", 2)
  end
  local ws = rawget(self, "ws_connection")
  if ws == nil then return nil, "closed" end
  return ws:ping(data or "")
end

-- close(code?, reason?): starts the close handshake (1000 by default);
-- on_close follows once the client answers or the close timeout passes.
function WebSocketHandler:close(code, reason)
  check_close_args(code, reason)
  local ws = rawget(self, "ws_connection")
  if ws == nil then return end
  ws:close(code, reason)
end

-- true once the connection is closing or closed.
function WebSocketHandler:closed()
  local ws = rawget(self, "ws_connection")
  return ws == nil or ws:closed()
end

------------------------------------------------------------------------------
-- The client (Tornado's websocket_connect)

local WebSocketClientConnection = { __name = "gust.websocket.WebSocketClientConnection" }
WebSocketClientConnection.__index = WebSocketClientConnection
_M.WebSocketClientConnection = WebSocketClientConnection

function WebSocketClientConnection.__tostring(self)
  return "<WebSocketClientConnection " .. tostring(self.url) .. ">"
end

-- read_message() -> msg, is_binary; nil once the connection has closed
-- (then close_code and close_reason are set).
function WebSocketClientConnection:read_message()
  local ws = self.ws_connection
  while true do
    local data, kind, reason = ws:receive()
    if data == nil then
      self.close_code, self.close_reason = kind, reason
      return nil
    end
    if kind == "text" then return data, false end
    if kind == "binary" then return data, true end
    -- pongs and pings are handled by the core
  end
end

function WebSocketClientConnection:write_message(message, binary)
  message, binary = outgoing(message, binary)
  return self.ws_connection:write_message(message, binary)
end

function WebSocketClientConnection:ping(data)
  return self.ws_connection:ping(data or "")
end

-- close(code?, reason?): starts the close handshake; read_message() then
-- returns nil once the server has answered.
function WebSocketClientConnection:close(code, reason)
  check_close_args(code, reason)
  self.ws_connection:close(code, reason)
end

function WebSocketClientConnection:closed()
  return self.ws_connection:closed()
end

-- ws://host[:port]/path?query -> tls, host, port, target, host header
local function parse_url(url)
  local scheme, rest = match(url, "^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "invalid url: " .. url end
  scheme = lower(scheme)
  local tls
  if scheme == "ws" or scheme == "http" then
    tls = false
  elseif scheme == "wss" or scheme == "https" then
    tls = true
  else
    return nil, "unsupported scheme: " .. scheme
  end
  local authority, target = match(rest, "^([^/?#]*)([^#]*)")
  if target == "" then target = "/" elseif sub(target, 1, 1) == "?" then target = "/" .. target end
  authority = gsub(authority, "^.*@", "") -- no credentials on the wire
  local host, port = match(authority, "^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = match(authority, "^([^:]+):?(%d*)$") end
  if not host or host == "" then return nil, "invalid url: " .. url end
  local default = tls and 443 or 80
  port = tonumber(port) or default
  local host_header = find(host, ":", 1, true) and "[" .. host .. "]" or host
  if port ~= default then host_header = host_header .. ":" .. port end
  return tls, host, port, target, host_header
end

local CONNECT_OPTS = {
  headers = "table", subprotocols = "table", connect_timeout = "number",
  request_timeout = "number", compression = true, max_message_size = "number",
  ping_interval = "number", ping_timeout = "number", validate_cert = "boolean",
  ca_certs = "string", close_timeout = "number",
}

local function check_opts(opts)
  for k, v in pairs(opts) do
    local want = CONNECT_OPTS[k]
    if want == nil then
      error("bad argument #2 to 'connect' (unknown option '" .. tostring(k) .. "')", 3)
    end
    if want ~= true and type(v) ~= want then
      error(format("bad argument #2 to 'connect' (option '%s': %s expected, got %s)",
                   k, want, type(v)), 3)
    end
  end
end

-- The server's answer: status, and its headers (nil, err when malformed).
local function parse_response(head)
  local code, rest = match(head, "^HTTP/1%.[01] (%d%d%d)[^\r\n]*\r\n(.*)$")
  if not code then return nil, "malformed handshake response" end
  local headers = httputil.HTTPHeaders.new()
  for line in gmatch(rest, "([^\r\n]+)\r\n") do
    local name, value = match(line, "^([^:%s]+):%s*(.-)%s*$")
    if not name then return nil, "malformed handshake response" end
    headers:add(name, value)
  end
  return tonumber(code), headers
end

-- connect(url, opts?) -> conn | nil, err (yields). opts: headers,
-- subprotocols, connect_timeout (20), request_timeout (handshake, 20),
-- compression (true or the options of get_compression_options),
-- max_message_size, ping_interval, ping_timeout, close_timeout,
-- validate_cert, ca_certs. A refused upgrade is nil, "websocket handshake
-- failed: HTTP <code>", <code>.
function _M.connect(url, opts)
  if type(url) ~= "string" then
    error("bad argument #1 to 'connect' (url string expected, got " .. type(url) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'connect' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  check_opts(opts)
  local tls, host, port, target, host_header = parse_url(url)
  if tls == nil then return nil, host end

  local key = b64encode(random_bytes(16))
  local lines = {
    "GET ", target, " HTTP/1.1\r\n",
    "Host: ", host_header, "\r\n",
    "Upgrade: websocket\r\n",
    "Connection: Upgrade\r\n",
    "Sec-WebSocket-Key: ", key, "\r\n",
    "Sec-WebSocket-Version: 13\r\n",
  }
  local protos = opts.subprotocols
  if protos and #protos > 0 then
    for i = 1, #protos do
      if type(protos[i]) ~= "string" or not find(protos[i], "^[%w!#$%%&'*+%-.^_`|~]+$") then
        error("bad argument #2 to 'connect' (invalid subprotocol " .. tostring(protos[i]) .. ")", 2)
      end
    end
    lines[#lines + 1] = "Sec-WebSocket-Protocol: " .. concat(protos, ", ") .. "\r\n"
  end
  local copts = opts.compression
  if copts then
    lines[#lines + 1] = "Sec-WebSocket-Extensions: "
      .. core.ws_offer(type(copts) == "table" and copts or nil) .. "\r\n"
  end
  if opts.headers then
    for name, value in pairs(opts.headers) do
      if type(name) ~= "string" or not find(name, "^[%w!#$%%&'*+%-.^_`|~]+$")
         or find(tostring(value), "[%z\r\n]") then
        error("bad argument #2 to 'connect' (invalid header " .. tostring(name) .. ")", 2)
      end
      lines[#lines + 1] = name .. ": " .. tostring(value) .. "\r\n"
    end
  end
  lines[#lines + 1] = "\r\n"

  local stream, err = core.ws_connect(host, port, {
    timeout = opts.connect_timeout or 20, tls = tls,
    validate_cert = opts.validate_cert, ca_certs = opts.ca_certs,
  })
  if not stream then return nil, err end

  local timed_out = false
  local timer = core.call_later(opts.request_timeout or 20, function()
    timed_out = true
    stream:close()
  end)
  local head
  head, err = stream:write(concat(lines))
  if head then head, err = stream:read_until("\r\n\r\n", 65536) end
  timer:cancel()
  if not head then
    stream:close()
    return nil, timed_out and "timeout" or ("websocket handshake failed: " .. tostring(err))
  end
  local code, headers = parse_response(head)
  if not code then
    stream:close()
    return nil, headers
  end
  if code ~= 101 then
    stream:close()
    return nil, "websocket handshake failed: HTTP " .. code, code
  end
  local problem
  if not has_token(headers["Upgrade"], "websocket") then
    problem = "no Upgrade: websocket"
  elseif not has_token(headers["Connection"], "upgrade") then
    problem = "no Connection: Upgrade"
  elseif headers["Sec-WebSocket-Accept"] ~= accept_key(key) then
    problem = "wrong Sec-WebSocket-Accept"
  end
  local subprotocol = headers["Sec-WebSocket-Protocol"]
  if not problem and subprotocol then
    local offered = false
    for i = 1, #(protos or {}) do if protos[i] == subprotocol then offered = true end end
    if not offered then problem = "server chose a subprotocol that was not offered" end
  end
  local extensions = headers["Sec-WebSocket-Extensions"]
  if not problem and extensions and not copts then
    problem = "server sent an extension that was not offered"
  end
  if problem then
    stream:close()
    return nil, "websocket handshake failed: " .. problem
  end
  local ws
  ws, err = core.websocket(stream, {
    client = true,
    extensions = extensions,
    max_message_size = opts.max_message_size or 10 * MIB,
    ping_interval = opts.ping_interval,
    ping_timeout = opts.ping_timeout,
    close_timeout = opts.close_timeout,
    compression_level = type(copts) == "table" and copts.compression_level or nil,
    mem_level = type(copts) == "table" and copts.mem_level or nil,
  })
  if not ws then
    stream:close()
    return nil, "websocket handshake failed: " .. tostring(err)
  end
  return setmetatable({
    url = url,
    ws_connection = ws,
    selected_subprotocol = subprotocol,
    headers = headers,
  }, WebSocketClientConnection)
end

-- Tornado's spelling.
_M.websocket_connect = _M.connect

return _M
