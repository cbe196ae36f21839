-- gust.wsapi: WSAPIContainer runs a WSAPI application (Lua's WSGI, from the
-- Kepler project) behind gust, as Tornado's WSGIContainer runs a WSGI app:
--
--   local wsapi = require "gust.wsapi"
--   local container = wsapi.WSAPIContainer(legacy.run)     -- or the module
--   web.Application({
--     {"/", Native},
--     {".*", web.FallbackHandler, {fallback = container}},
--   })
--
-- A WSAPI application is function(wsapi_env) -> status, headers, body:
--   status   a number (200) or a CGI status string ("404 Not Found");
--   headers  a table name -> string, or name -> list of strings (Set-Cookie);
--            a "Status" entry is ignored, Content-Length and
--            Transfer-Encoding are the core's business (framing is ours);
--   body     an iterator (a function, or a coroutine.wrap'ed one) returning
--            chunks until nil, a table of strings, a string, or nil.
--
-- wsapi_env holds the RFC 3875 metavariables -- REQUEST_METHOD, SCRIPT_NAME,
-- PATH_INFO (URL-decoded, "/" when empty), QUERY_STRING, SERVER_NAME,
-- SERVER_PORT, SERVER_PROTOCOL, SERVER_SOFTWARE, GATEWAY_INTERFACE,
-- REMOTE_ADDR, CONTENT_TYPE, CONTENT_LENGTH, HTTPS ("on" over TLS) and
-- HTTP_<NAME> per request header (repeats joined with ", ", Cookie with
-- "; ") -- plus APP_PATH (the application's directory), REQUEST_URI (the raw
-- target), `input` (input:read(n) over the request body, as a file: n bytes,
-- "*l"/"*L" a line, "*a" the rest; read() with no argument the rest, nil at
-- the end) and `error` (error:write(...) logs at error level). As the spec
-- asks, a metavariable that is not set reads as "".
--
-- Headers whose names contain "_" are not passed (HTTP_X_A could otherwise
-- come from "X-A" or "X_A": Apache and nginx drop them too), nor "Proxy"
-- (HTTP_PROXY is the httpoxy hole).
--
-- The application and its iterator run in the request's coroutine, so they
-- may call gust's yielding APIs (httpclient fetch, sleep). A coroutine.wrap
-- iterator runs in a coroutine of its own and must not (the yield would end
-- up in the wrapper, as a chunk).
--
-- Output: a body that fits in `buffer_size` bytes (64 KiB by default) goes
-- out at finish with a Content-Length; past that, what has been written is
-- flushed (chunked encoding) every time the buffer fills, so a large body
-- streams at the client's pace without being held in memory. buffer_size = 0
-- flushes every chunk. An error before anything was flushed is a logged 500;
-- after, it is logged and the response ends where it was (see
-- web.FallbackHandler).

local _M = { _VERSION = "0.1.0" }

local type, tostring, tonumber, pairs, error, select = type, tostring, tonumber, pairs, error, select
local setmetatable, getmetatable, rawget = setmetatable, getmetatable, rawget
local find, format, gsub, lower, match, sub, upper = string.find, string.format,
  string.gsub, string.lower, string.match, string.sub, string.upper
local byte = string.byte
local concat = table.concat
local getinfo = debug.getinfo

local core = require "gust.core"
local escape = require "gust.escape"
local log = require "gust.log"
local web = require "gust.web"

local url_unescape = escape.url_unescape
local RESPONSES = web.responses

local SERVER_SOFTWARE = "gust/" .. tostring(core.VERSION)
local DEFAULT_BUFFER_SIZE = 64 * 1024
local SLASH = byte("/")

------------------------------------------------------------------------------
-- wsapi_env.input: the request body, read like a file.

local Input = { __name = "gust.wsapi.Input" }
Input.__index = Input

function Input.__tostring(self)
  return format("<gust.wsapi.Input %d/%d>", self._pos - 1, self.length)
end

local function read_line(self, keep)
  local body, pos = self._body, self._pos
  if pos > #body then return nil end
  local nl = find(body, "\n", pos, true)
  if nl == nil then
    self._pos = #body + 1
    return sub(body, pos)
  end
  self._pos = nl + 1
  return sub(body, pos, keep and nl or nl - 1)
end

-- input:read(n | "*a" | "*l" | "*L" | nil)
function Input:read(n)
  local body, pos = self._body, self._pos
  local len = #body
  local t = type(n)
  if n == nil then
    -- WSAPI's connectors: the whole (rest of the) input, nil once read.
    if pos > len then return nil end
    self._pos = len + 1
    return pos == 1 and body or sub(body, pos)
  elseif t == "number" then
    if n < 0 or n ~= n then error("bad argument #1 to 'read' (non-negative number expected)", 2) end
    if pos > len then return nil end
    if n == 0 then return "" end
    local stop = pos + n - 1
    if stop > len then stop = len end
    self._pos = stop + 1
    return sub(body, pos, stop)
  elseif t == "string" then
    local fmt = match(n, "^%*?([alL])")
    if fmt == "a" then
      self._pos = len + 1
      return pos > len and "" or sub(body, pos)
    elseif fmt == "l" then
      return read_line(self, false)
    elseif fmt == "L" then
      return read_line(self, true)
    end
  end
  error("bad argument #1 to 'read' (invalid format " .. tostring(n) .. ")", 2)
end

local function next_line(self) return read_line(self, false) end

-- input:lines() -> iterator over the remaining lines (without newlines).
function Input:lines()
  return next_line, self
end

------------------------------------------------------------------------------
-- wsapi_env.error: one shared stream; each write is one log line (control
-- bytes escaped, so a line cannot be split in two).

local ErrorStream = { __name = "gust.wsapi.ErrorStream" }
ErrorStream.__index = ErrorStream

function ErrorStream:write(...)
  local n = select("#", ...)
  local parts = { ... }
  for i = 1, n do parts[i] = tostring(parts[i]) end
  local s = gsub(concat(parts, "", 1, n), "[\r\n]+$", "")
  if s ~= "" then log.error("wsapi: %s", log.escape(s)) end
  return self
end

function ErrorStream.flush() return true end
function ErrorStream.close() return true end

local ERROR_STREAM = setmetatable({}, ErrorStream)

------------------------------------------------------------------------------
-- The environment.

-- An undefined metavariable reads as "" (the WSAPI manual); anything else
-- that is missing stays nil.
local ENV_MT = {
  __name = "gust.wsapi.env",
  __index = function(_, k)
    if type(k) == "string" and find(k, "^[%u_][%u%d_]*$") then return "" end
    return nil
  end,
}

-- "x-forwarded-for" -> "HTTP_X_FORWARDED_FOR", cached up to a bound so a
-- client cannot grow the cache without limit.
local CACHE_MAX = 1000
local http_keys, http_keys_n = {}, 0
local function http_key(name)
  local k = http_keys[name]
  if k then return k end
  k = "HTTP_" .. upper(gsub(name, "-", "_"))
  if http_keys_n < CACHE_MAX then
    http_keys[name], http_keys_n = k, http_keys_n + 1
  end
  return k
end

-- Request headers the environment does not carry as HTTP_*: the two CGI
-- has its own variables for, and Proxy (httpoxy).
local NOT_HTTP = { ["content-type"] = true, ["content-length"] = true, proxy = true }

local WSAPIContainer = { __name = "gust.wsapi.WSAPIContainer" }
WSAPIContainer.__index = WSAPIContainer

function WSAPIContainer.__tostring(self)
  return format("<gust.wsapi.WSAPIContainer %s>", tostring(self.app))
end

-- Builds the wsapi_env of the handler's request.
function WSAPIContainer:environ(handler)
  local r = handler.request
  local path = r.path
  local script_name, path_info = self.script_name, path
  if script_name ~= "" then
    local n = #script_name
    if sub(path, 1, n) == script_name and (#path == n or byte(path, n + 1) == SLASH) then
      path_info = sub(path, n + 1)
    else
      script_name = ""
    end
  end
  if find(path_info, "%", 1, true) then path_info = url_unescape(path_info, false) end
  if path_info == "" then path_info = "/" end

  local protocol = r.protocol
  local host = r.host
  local server_name, port = match(host, "^(.-):(%d+)$")
  if not server_name then
    server_name, port = host, protocol == "https" and "443" or "80"
  end
  local body = r.body

  local env = {
    REQUEST_METHOD = r.method,
    SCRIPT_NAME = script_name,
    PATH_INFO = path_info,
    QUERY_STRING = r.query,
    REQUEST_URI = r.uri,
    SERVER_NAME = server_name,
    SERVER_PORT = port,
    SERVER_PROTOCOL = r.version,
    SERVER_SOFTWARE = SERVER_SOFTWARE,
    GATEWAY_INTERFACE = "CGI/1.1",
    REMOTE_ADDR = r.remote_ip,
    APP_PATH = self.app_path,
    input = setmetatable({ _body = body, _pos = 1, length = #body }, Input),
    error = ERROR_STREAM,
  }
  if protocol == "https" then env.HTTPS = "on" end
  if #body > 0 then env.CONTENT_LENGTH = tostring(#body) end

  local flat = handler._req:headers() or {}
  for i = 1, #flat - 1, 2 do
    local name, value = flat[i], flat[i + 1]
    if name == "content-type" then
      env.CONTENT_TYPE = value
    elseif name == "content-length" then
      -- The body as decoded (a chunked request has no length header).
      env.CONTENT_LENGTH = tostring(#body)
    elseif not NOT_HTTP[name] and not find(name, "_", 1, true) then
      local key = http_key(name)
      local old = env[key]
      if old == nil then
        env[key] = value
      else
        env[key] = old .. (name == "cookie" and "; " or ", ") .. value
      end
    end
  end

  local extra = self.env
  if extra then
    for k, v in pairs(extra) do
      if env[k] == nil then env[k] = v end
    end
  end
  return setmetatable(env, ENV_MT)
end

------------------------------------------------------------------------------
-- The answer.

local function bad_result(what, v)
  error(format("WSAPI application returned an invalid %s: %s", what, tostring(v)), 0)
end

-- 200 | "200" | "404 Not Found" -> code, reason?
local function parse_status(status)
  local code, reason
  local t = type(status)
  if t == "number" then
    code = status
  elseif t == "string" then
    local c, r = match(status, "^%s*(%d%d%d)%s*(.-)%s*$")
    code = c and tonumber(c)
    if r ~= "" then reason = r end
  end
  if code == nil or code % 1 ~= 0 or code < 100 or code > 999 then bad_result("status", status) end
  if reason == nil and RESPONSES[code] == nil then reason = "Unknown" end
  return code, reason
end

local function set_headers(handler, headers)
  if headers == nil then return end
  if type(headers) ~= "table" then bad_result("headers table", headers) end
  for name, value in pairs(headers) do
    if type(name) ~= "string" then bad_result("header name", name) end
    if lower(name) ~= "status" then
      if type(value) == "table" then
        for i = 1, #value do
          local v = tostring(value[i])
          if i == 1 then handler:set_header(name, v) else handler:add_header(name, v) end
        end
      else
        handler:set_header(name, tostring(value))
      end
    end
  end
end

local function is_callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end

-- Pulls the iterator dry, flushing each time `limit` bytes are buffered.
-- Returns early when the client has gone away.
local function stream_body(handler, iter, limit)
  local buffered = 0
  while true do
    local chunk = iter()
    if not chunk then return end
    local t = type(chunk)
    if t == "number" then
      chunk = tostring(chunk)
    elseif t ~= "string" then
      bad_result("body chunk", t)
    end
    if chunk ~= "" then
      handler:write(chunk)
      buffered = buffered + #chunk
      if buffered >= limit then
        buffered = 0
        if not handler:flush() then return end
      end
    end
  end
end

local function send_body(self, handler, body)
  local t = type(body)
  if t == "nil" then
    return
  elseif t == "string" then
    handler:write(body)
  elseif is_callable(body) then
    stream_body(handler, body, self.buffer_size)
  elseif t == "table" then
    for i = 1, #body do
      local chunk = body[i]
      if type(chunk) ~= "string" and type(chunk) ~= "number" then bad_result("body part", chunk) end
      handler:write(tostring(chunk))
    end
  else
    bad_result("body", body)
  end
end

-- Runs the application for the handler's request and answers through the
-- handler. Errors are raised, for the handler to turn into a 500.
function WSAPIContainer:serve(handler)
  local env = self:environ(handler)
  local status, headers, body = self.app(env)
  local code, reason = parse_status(status)
  handler:set_status(code, reason)
  set_headers(handler, headers)
  send_body(self, handler, body)
end

-- container(handler): what web.FallbackHandler calls.
function WSAPIContainer.__call(self, handler)
  return self:serve(handler)
end

-- The directory of the file a Lua function was defined in, or "".
local function app_dir(fn)
  if type(fn) ~= "function" then return "" end
  local info = getinfo(fn, "S")
  local src = info and info.source or ""
  if sub(src, 1, 1) ~= "@" then return "" end
  return match(src, "^@(.*)/[^/]*$") or "."
end

-- WSAPIContainer(app, opts?) -> container. app is a WSAPI function, a
-- module table with a run function (the WSAPI convention), or a callable.
-- opts: script_name (the route's prefix: SCRIPT_NAME, and cut from
-- PATH_INFO), app_path (APP_PATH; default: the app function's directory),
-- buffer_size (bytes buffered before a flush; 64 KiB), env (extra fields
-- for every wsapi_env).
function WSAPIContainer.new(app, opts)
  local run = app
  if type(app) == "table" and not is_callable(app) then run = app.run end
  if not is_callable(run) then
    error("bad argument #1 to 'WSAPIContainer' (WSAPI application function or module expected, got "
          .. type(app) .. ")", 3)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'WSAPIContainer' (table expected, got " .. type(opts) .. ")", 3)
  end
  opts = opts or {}
  local script_name = opts.script_name or ""
  if type(script_name) ~= "string" or (script_name ~= "" and
                                       (sub(script_name, 1, 1) ~= "/" or sub(script_name, -1) == "/")) then
    error("bad option 'script_name' (\"\" or a path like \"/app\" expected)", 3)
  end
  local buffer_size = opts.buffer_size or DEFAULT_BUFFER_SIZE
  if type(buffer_size) ~= "number" or buffer_size < 0 then
    error("bad option 'buffer_size' (non-negative number expected)", 3)
  end
  if opts.env ~= nil and type(opts.env) ~= "table" then
    error("bad option 'env' (table expected)", 3)
  end
  return setmetatable({
    app = run,
    script_name = script_name,
    app_path = opts.app_path or app_dir(run),
    buffer_size = buffer_size,
    env = opts.env,
  }, WSAPIContainer)
end

setmetatable(WSAPIContainer, {
  __call = function(_, app, opts) return WSAPIContainer.new(app, opts) end,
})
_M.WSAPIContainer = WSAPIContainer
_M.Input = Input

return _M
