-- gust.web.proxy: web.ProxyHandler, a reverse proxy to an HTTP backend
-- (DESIGN §4.6), e.g. a Django app under gunicorn next to gust handlers:
--
--   {"/api/.*", web.ProxyHandler, {upstream = "http://127.0.0.1:8000"}}
--
-- gust.web loads it the first time web.ProxyHandler is read (it needs
-- gust.httpclient). ProxyHandler is a web.FallbackHandler whose container
-- is a Proxy, so it forwards every method, leaves the body unparsed and
-- skips the XSRF check.
--
-- The request goes upstream with its URI unchanged (after the upstream's
-- own path, if it has one: "http://b:8000/app" sends /x to /app/x), its
-- headers minus the hop-by-hop ones (Connection and the headers it names,
-- Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade) and Expect,
-- plus X-Forwarded-For (the peer's address appended to the one the request
-- had), X-Forwarded-Proto and X-Forwarded-Host, and its body. Host is kept
-- unless preserve_host = false.
--
-- The answer comes back as it is: status and reason, headers minus the
-- hop-by-hop ones, and the body chunk by chunk as the client receives it
-- (write + flush, so a slow client slows the upstream read rather than
-- filling memory). Redirects are not followed and the body is not
-- decompressed (Content-Encoding passes through). The core owns framing:
-- a streamed body goes out chunked, one that came in a single read keeps
-- its Content-Length, and HEAD keeps the upstream's.
--
-- Upstream unreachable (refused, DNS, TLS, malformed answer) -> 502;
-- timeout -> 504. Both are logged at warn level with the upstream's error.
-- A failure once part of the answer went out is logged at error level and
-- the answer ends there (see web.FallbackHandler: cutting the connection
-- instead needs a core req:abort()).
--
-- The request body is read whole by the core before the handler runs
-- (max_body_size bounds it); it is forwarded in one piece.
--
-- Options (route kwargs): upstream (required), preserve_host (true),
-- connect_timeout (10 s), request_timeout (60 s, for the whole exchange),
-- max_clients (100 concurrent upstream requests per route; more queue),
-- validate_cert (true), ca_certs, max_body_size (of the answer; no limit).

local _M = { _VERSION = "0.1.0" }

local type, tostring, tonumber, error, xpcall = type, tostring, tonumber, error, xpcall
local setmetatable = setmetatable
local find, format, gmatch, lower, match, sub = string.find, string.format, string.gmatch,
  string.lower, string.match, string.sub
local traceback = debug.traceback

local httpclient = require "gust.httpclient"
local httputil = require "gust.httputil"
local errors = require "gust.web.errors"
local handlers = require "gust.web.handlers"

local normalize_header_name = httputil.normalize_header_name
local RESPONSES = errors.responses

-- RFC 9110 §7.6.1: connection-specific headers, never forwarded.
local HOP_BY_HOP = {
  connection = true, ["keep-alive"] = true, te = true, trailer = true,
  ["transfer-encoding"] = true, upgrade = true,
}
-- Request headers replaced rather than passed: the client computes
-- Content-Length from the body, the core already answered Expect, and the
-- X-Forwarded-* ones are rebuilt.
local REQUEST_REPLACED = {
  ["content-length"] = true, expect = true, host = true,
  ["x-forwarded-for"] = true, ["x-forwarded-proto"] = true, ["x-forwarded-host"] = true,
}

-- Lower-case names listed in the Connection headers of a flat list
-- ({name1, value1, ...}, names lower-case), or nil.
local function connection_tokens(flat)
  local out
  for i = 1, #flat - 1, 2 do
    if flat[i] == "connection" then
      for tok in gmatch(flat[i + 1], "[^,%s]+") do
        out = out or {}
        out[lower(tok)] = true
      end
    end
  end
  return out
end

local function hop_by_hop(name, named)
  return HOP_BY_HOP[name] or sub(name, 1, 6) == "proxy-" or (named ~= nil and named[name])
end

local add = httputil._add_value

------------------------------------------------------------------------------
-- Proxy: the container. proxy(handler) forwards the handler's request.

local Proxy = { __name = "gust.web.proxy.Proxy" }
Proxy.__index = Proxy

function Proxy.__tostring(self)
  return "<gust.web.proxy.Proxy " .. self.upstream .. ">"
end

-- The headers to send upstream.
function Proxy:request_headers(handler)
  local r = handler.request
  local flat = handler._req:headers() or {}
  local named = connection_tokens(flat)
  local out = {}
  local xff, xfh, host
  for i = 1, #flat - 1, 2 do
    local name, value = flat[i], flat[i + 1]
    if name == "x-forwarded-for" then
      xff = xff and (xff .. ", " .. value) or value
    elseif name == "x-forwarded-host" then
      xfh = xfh or value
    elseif name == "host" then
      host = value
    elseif not REQUEST_REPLACED[name] and not hop_by_hop(name, named) then
      add(out, normalize_header_name(name), value)
    end
  end
  -- The peer's own address, whatever xheaders makes of remote_ip.
  local peer = handler._req:remote_ip() or r.remote_ip
  out["X-Forwarded-For"] = xff and (xff .. ", " .. peer) or peer
  out["X-Forwarded-Proto"] = r.protocol
  -- A forwarded host is believed only where the app trusts X- headers.
  if not (xfh and handler.settings.xheaders) then xfh = host end
  if xfh then out["X-Forwarded-Host"] = xfh end
  if host and self.preserve_host then out.Host = host end
  return out
end

-- Raised from the streaming callback when the client has gone: it makes
-- the client drop the upstream exchange.
local CLIENT_GONE = setmetatable({}, { __tostring = function() return "client gone" end })

-- Sets status and headers on the handler once the upstream's header
-- section is complete (the client's header_callback protocol: status line,
-- header lines, empty line).
local function apply_head(state)
  local handler = state.handler
  local code, reason = state.code, state.reason
  if reason == "" then reason = nil end
  if reason == nil and RESPONSES[code] == nil then reason = "Unknown" end
  handler:set_status(code, reason)
  local lines = state.lines
  local named
  for i = 1, #lines - 1, 2 do
    if lower(lines[i]) == "connection" then
      named = named or {}
      for tok in gmatch(lines[i + 1], "[^,%s]+") do named[lower(tok)] = true end
    end
  end
  local seen = {}
  for i = 1, #lines - 1, 2 do
    local name, value = lines[i], lines[i + 1]
    local lname = lower(name)
    if lname == "content-length" then state.length = tonumber(value) end
    if not hop_by_hop(lname, named) then
      if seen[name] then
        handler:add_header(name, value)
      else
        seen[name] = true
        handler:set_header(name, value)
      end
    end
  end
end

local function on_header_line(state, line)
  if state.code == nil then
    local code, reason = match(line, "^HTTP/%d%.%d (%d%d%d) ?([^\r\n]*)")
    state.code, state.reason = tonumber(code), reason
    if state.code == nil then error("unexpected status line from upstream: " .. line, 0) end
  elseif line == "\r\n" then
    apply_head(state)
  else
    local name, value = match(line, "^([^:]+):%s*(.-)%s*$")
    if name then
      local lines = state.lines
      lines[#lines + 1], lines[#lines + 2] = name, value
    end
  end
end

-- Each chunk goes to the client as it arrives; the last one of a body of
-- known length stays buffered for finish(), so an answer that arrives in
-- one piece keeps its Content-Length instead of turning chunked.
local function on_chunk(state, chunk)
  local handler = state.handler
  handler:write(chunk)
  local received = state.received + #chunk
  state.received = received
  local length = state.length
  if length and received >= length then return end
  if not handler:flush() then error(CLIENT_GONE, 0) end
end

local function keep_sentinel(e)
  if e == CLIENT_GONE then return e end
  return traceback(tostring(e), 2)
end

local function request_target(r)
  local uri = r.uri
  if sub(uri, 1, 1) == "/" then return uri end
  -- An absolute-form or odd target: the path and query the core parsed.
  if r.query ~= "" then return r.path .. "?" .. r.query end
  return r.path
end

function Proxy:forward(handler)
  local r = handler.request
  local url = self.base .. request_target(r)
  local body = r.body
  if body == "" then body = nil end
  local state = { handler = handler, lines = {}, received = 0 }
  local client = self.client
  local ok, resp, err = xpcall(client.fetch, keep_sentinel, client, url, {
    method = r.method,
    headers = self:request_headers(handler),
    body = body,
    allow_nonstandard_methods = true,
    follow_redirects = false,
    decompress_response = false,
    connect_timeout = self.connect_timeout,
    request_timeout = self.request_timeout,
    validate_cert = self.validate_cert,
    ca_certs = self.ca_certs,
    max_body_size = self.max_body_size,
    header_callback = function(line) on_header_line(state, line) end,
    streaming_callback = function(chunk) on_chunk(state, chunk) end,
  })
  if not ok then
    if resp == CLIENT_GONE then return end -- nothing left to answer
    error(resp, 0)
  end
  if resp then return end -- relayed; the handler finishes the response
  if handler._headers_written then
    -- Part of the answer is out: logged, and the answer ends here.
    error(format("upstream %s failed mid-response: %s", url, tostring(err)), 0)
  end
  local status = find(tostring(err), "timeout", 1, true) and 504 or 502
  error(errors.HTTPError(status, "upstream %s: %s", url, tostring(err)), 0)
end

Proxy.__call = Proxy.forward

local function check_number(opts, name, default, level)
  local v = opts[name]
  if v == nil then return default end
  if type(v) ~= "number" or v <= 0 then
    error(format("bad option '%s' (positive number expected, got %s)", name, tostring(v)), level)
  end
  return v
end

-- Proxy(opts) -> proxy; opts as the ProxyHandler's route kwargs.
local function new_proxy(opts, level)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'Proxy' (options table expected, got " .. type(opts) .. ")", level)
  end
  local upstream = opts.upstream
  if type(upstream) ~= "string" then
    error("ProxyHandler needs an 'upstream' URL (\"http://host:port\") in its route kwargs", level)
  end
  local u, err = httpclient._parse_url(upstream)
  if not u then error("bad option 'upstream' (" .. err .. ")", level) end
  if find(u.target, "?", 1, true) then
    error("bad option 'upstream' (no query string expected: " .. upstream .. ")", level)
  end
  local prefix = match(u.target, "^(.-)/*$")
  local max_clients = check_number(opts, "max_clients", 100, level + 1)
  return setmetatable({
    upstream = upstream,
    base = u.origin .. prefix,
    preserve_host = opts.preserve_host ~= false,
    connect_timeout = check_number(opts, "connect_timeout", 10, level + 1),
    request_timeout = check_number(opts, "request_timeout", 60, level + 1),
    validate_cert = opts.validate_cert ~= false,
    ca_certs = opts.ca_certs,
    max_body_size = check_number(opts, "max_body_size", 2 ^ 50, level + 1),
    client = httpclient.AsyncHTTPClient({ force_instance = true, max_clients = max_clients }),
  }, Proxy)
end

function _M.Proxy(opts)
  return new_proxy(opts, 3)
end
_M.ProxyClass = Proxy

-- ProxyHandler: one Proxy (and one client, so one max_clients bound) per
-- route, made at its first request.
local ProxyHandler = handlers.FallbackHandler:extend()
ProxyHandler.__name = "gust.web.ProxyHandler"
local by_route = setmetatable({}, { __mode = "k" })
function ProxyHandler:initialize(kwargs)
  local proxy = by_route[kwargs]
  if proxy == nil then
    proxy = new_proxy(kwargs, 4)
    by_route[kwargs] = proxy
  end
  self.fallback = proxy
end
_M.ProxyHandler = ProxyHandler

return _M
