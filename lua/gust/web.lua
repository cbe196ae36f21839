-- gust.web: Application, RequestHandler, HTTPError and the built-in
-- handlers -- Tornado's web.py over the gust.core request handle.
--
-- The C core owns the wire: parsing, Content-Length or chunked encoding,
-- Server/Date/default Content-Type, the ETag of small GET bodies and HEAD.
-- This module owns routing, the handler life cycle (Tornado's _execute),
-- arguments, cookies, XSRF, compression and error pages.
--
-- Hot path: the core calls app(req, method, path, query) in a fresh
-- coroutine per request. A hello-world request allocates the handler, the
-- request table and one write buffer. No closure is created per request, and
-- request fields (headers, arguments, cookies, ...) are built on first use.

local _M = { _VERSION = "0.1.0" }

local type, tostring, tonumber, select, error = type, tostring, tonumber, select, error
local pairs, next = pairs, next
local setmetatable, getmetatable, rawget, rawset = setmetatable, getmetatable, rawget, rawset
local xpcall, pcall, require = xpcall, pcall, require
local unpack = unpack or table.unpack -- luacheck: ignore 143
local byte, char, find, format = string.byte, string.char, string.find, string.format
local gsub, lower, match, sub = string.gsub, string.lower, string.match, string.sub
local concat = table.concat
local floor, huge = math.floor, math.huge
local traceback = debug.traceback
local co_running = coroutine.running
local loaded = package.loaded
local bxor = require("bit").bxor

local core = require "gust.core"
local escape = require "gust.escape"
local httputil = require "gust.httputil"
local log = require "gust.log"
local class = require "gust.class"

local url_escape, url_unescape = escape.url_escape, escape.url_unescape
local xhtml_escape, json_encode = escape.xhtml_escape, escape.json_encode
local normalize_header_name = httputil.normalize_header_name
local HTTPHeaders = httputil.HTTPHeaders

------------------------------------------------------------------------------
-- Status codes (RFC 9110 phrases). The core has its own copy for the status
-- line; this one names error pages and checks set_status().

local RESPONSES = {
  [100] = "Continue", [101] = "Switching Protocols", [102] = "Processing",
  [103] = "Early Hints",
  [200] = "OK", [201] = "Created", [202] = "Accepted",
  [203] = "Non-Authoritative Information", [204] = "No Content",
  [205] = "Reset Content", [206] = "Partial Content", [207] = "Multi-Status",
  [208] = "Already Reported", [226] = "IM Used",
  [300] = "Multiple Choices", [301] = "Moved Permanently", [302] = "Found",
  [303] = "See Other", [304] = "Not Modified", [305] = "Use Proxy",
  [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [406] = "Not Acceptable", [407] = "Proxy Authentication Required",
  [408] = "Request Timeout", [409] = "Conflict", [410] = "Gone",
  [411] = "Length Required", [412] = "Precondition Failed",
  [413] = "Content Too Large", [414] = "URI Too Long",
  [415] = "Unsupported Media Type", [416] = "Range Not Satisfiable",
  [417] = "Expectation Failed", [418] = "I'm a Teapot",
  [421] = "Misdirected Request", [422] = "Unprocessable Content",
  [423] = "Locked", [424] = "Failed Dependency", [425] = "Too Early",
  [426] = "Upgrade Required", [428] = "Precondition Required",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [451] = "Unavailable For Legal Reasons",
  [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
  [506] = "Variant Also Negotiates", [507] = "Insufficient Storage",
  [508] = "Loop Detected", [510] = "Not Extended",
  [511] = "Network Authentication Required",
}
_M.responses = RESPONSES

-- Verbs a handler may define, in the order an Allow header lists them.
local SUPPORTED_METHODS = { "GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS" }
local VERBS = {}
for i = 1, #SUPPORTED_METHODS do
  VERBS[SUPPORTED_METHODS[i]] = lower(SUPPORTED_METHODS[i])
end
-- Methods that skip the XSRF check (Tornado: anything else is checked).
local XSRF_SAFE = { GET = true, HEAD = true, OPTIONS = true }

local function noop() end

-- Passed to initialize() when a route has no kwargs: shared, so writes to
-- it are refused rather than leaking into the next request.
local EMPTY = setmetatable({}, {
  __newindex = function() error("route kwargs are read-only", 2) end,
})

local function copy(t)
  local out = {}
  if t then for k, v in pairs(t) do out[k] = v end end
  return out
end

local function now()
  return floor(core.time())
end

------------------------------------------------------------------------------
-- HTTPError, MissingArgumentError, Finish. They are tables raised with
-- error(); the message handler below passes them through untouched and only
-- takes a traceback for anything else.

local HTTPError = { __name = "gust.web.HTTPError", _http_error = true }
HTTPError.__index = HTTPError

function HTTPError.__tostring(e)
  local s = "HTTP " .. tostring(e.status_code) .. ": "
    .. (e.reason or RESPONSES[e.status_code] or "Unknown")
  if e.log_message then s = s .. " (" .. tostring(e.log_message) .. ")" end
  return s
end

-- HTTPError(status?, log_message?, ...): extra arguments format log_message
-- (Tornado's log_message % args). log_message may also be a table
-- { log_message =, reason =, headers = }. headers are set on the error
-- response after send_error() clears the handler's own (405 uses it for
-- Allow).
local function new_http_error(mt, status, log_message, ...)
  if status == nil then status = 500 end
  if type(status) ~= "number" then
    error("bad argument #1 to 'HTTPError' (number expected, got " .. type(status) .. ")", 3)
  end
  local e = setmetatable({ status_code = status }, mt)
  if type(log_message) == "table" then
    e.log_message, e.reason, e.headers = log_message.log_message, log_message.reason,
      log_message.headers
  elseif log_message ~= nil then
    if select("#", ...) > 0 then log_message = format(log_message, ...) end
    e.log_message = tostring(log_message)
  end
  return e
end

setmetatable(HTTPError, {
  __call = function(_, status, log_message, ...)
    return new_http_error(HTTPError, status, log_message, ...)
  end,
})
_M.HTTPError = HTTPError

-- A 400 that names the missing argument; an HTTPError in every respect.
local MissingArgumentError = {
  __name = "gust.web.MissingArgumentError",
  __tostring = HTTPError.__tostring,
  _http_error = true,
}
MissingArgumentError.__index = MissingArgumentError
setmetatable(MissingArgumentError, {
  __index = HTTPError,
  __call = function(_, arg_name)
    local e = new_http_error(MissingArgumentError, 400,
                             "Missing argument " .. tostring(arg_name))
    e.arg_name = arg_name
    return e
  end,
})
_M.MissingArgumentError = MissingArgumentError

local function is_http_error(e)
  if type(e) ~= "table" then return false end
  local mt = getmetatable(e)
  return type(mt) == "table" and rawget(mt, "_http_error") == true
end
_M.is_http_error = is_http_error

-- error(web.Finish(chunk?)) ends the request like finish(chunk), without
-- an error being logged (Tornado's Finish exception).
local Finish = { __name = "gust.web.Finish" }
Finish.__index = Finish
Finish.__tostring = function() return "Finish" end
setmetatable(Finish, {
  __call = function(_, chunk) return setmetatable({ chunk = chunk }, Finish) end,
})
_M.Finish = Finish

-- xpcall message handler: the traceback must be taken here, at the error
-- site, since the stack is gone once xpcall returns (Turbo's bug). It is
-- handed over in a module variable rather than a table: xpcall returns
-- right after the handler runs, with no yield in between, so the caller
-- reads it before any other coroutine can overwrite it.
local last_traceback

local function on_error(err)
  if type(err) == "table" then
    local mt = getmetatable(err)
    if mt == Finish or (type(mt) == "table" and rawget(mt, "_http_error") == true) then
      return err
    end
  end
  local ok, msg = pcall(tostring, err)
  last_traceback = traceback(ok and msg or "(error object is not a string)", 2)
  return err
end

local function take_traceback(err)
  local tb = last_traceback
  last_traceback = nil
  if tb == nil and not is_http_error(err) then tb = tostring(err) end
  return tb
end

------------------------------------------------------------------------------
-- The request (Tornado's HTTPServerRequest). method, path and query are
-- set when it is made; everything else is built by BUILDERS the first time
-- it is read and then stored in the table, so later reads are plain hits.

local Request = { __name = "gust.web.HTTPServerRequest" }
local request_methods = {}
local BUILDERS = {}

function Request.__index(r, k)
  local build = BUILDERS[k]
  if build then
    local v = build(r)
    if v ~= nil then rawset(r, k, v) end
    return v
  end
  return request_methods[k]
end

function Request.__tostring(r)
  return format("HTTPServerRequest(protocol=%q, host=%q, method=%q, uri=%q, version=%q, remote_ip=%q)",
                r.protocol, r.host, r.method, r.uri, r.version, r.remote_ip)
end
_M.HTTPServerRequest = Request

-- A handle that is already closed answers nil, "closed"; the fallbacks keep
-- late readers (logging after a disconnect) from tripping over nil.
function BUILDERS.uri(r)
  local uri = r._req:uri()
  if uri then return uri end
  if r.query ~= "" then return r.path .. "?" .. r.query end
  return r.path
end

function BUILDERS.version(r) return r._req:version() or "HTTP/1.1" end
function BUILDERS.headers(r) return HTTPHeaders.from_list(r._req:headers() or {}) end
function BUILDERS.body(r) return r._req:body() or "" end

local function is_valid_ip(ip)
  if type(ip) ~= "string" or ip == "" or #ip > 45 then return false end
  local a, b, c, d = match(ip, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a then
    return tonumber(a) < 256 and tonumber(b) < 256 and tonumber(c) < 256 and tonumber(d) < 256
  end
  return find(ip, ":", 1, true) ~= nil and find(ip, "^[%x:.]+$") ~= nil
end
_M._is_valid_ip = is_valid_ip

local SPACE = { [9] = true, [10] = true, [11] = true, [12] = true, [13] = true, [32] = true }

local function trim(s)
  -- Most values have nothing to strip: two byte checks instead of a match.
  if not SPACE[byte(s, 1)] and not SPACE[byte(s, -1)] then return s end
  return match(s, "^%s*(.*%S)") or ""
end

-- With xheaders the proxy's view wins: the rightmost X-Forwarded-For entry
-- that is not a trusted downstream proxy, then X-Real-Ip; invalid values are
-- ignored so a client cannot inject garbage into logs (Tornado).
function BUILDERS.remote_ip(r)
  local ip = r._req:remote_ip() or ""
  local settings = r._app.settings
  if not settings.xheaders then return ip end
  local h = r.headers
  local cand = ip
  local xff = h["X-Forwarded-For"]
  if xff then
    local trusted = settings.trusted_downstream
    local parts = {}
    for p in xff:gmatch("[^,]+") do parts[#parts + 1] = trim(p) end
    for i = #parts, 1, -1 do
      cand = parts[i]
      local skip = false
      if trusted then
        for j = 1, #trusted do
          if trusted[j] == cand then skip = true break end
        end
      end
      if not skip then break end
    end
  end
  cand = h["X-Real-Ip"] or cand
  if is_valid_ip(cand) then return cand end
  return ip
end

function BUILDERS.protocol(r)
  local proto = r._req:protocol() or "http"
  if r._app.settings.xheaders then
    local h = r.headers
    local p = h["X-Scheme"] or h["X-Forwarded-Proto"]
    if p then
      p = lower(trim(match(p, "([^,]*)$")))
      if p == "http" or p == "https" then proto = p end
    end
  end
  return proto
end

function BUILDERS.host(r) return r.headers["Host"] or "127.0.0.1" end

function BUILDERS.host_name(r)
  local host = lower(r.host)
  return match(host, "^(.+):%d+$") or host
end

function BUILDERS.query_arguments(r) return httputil.parse_qs(r.query) end

-- Fills body_arguments and files together. Returns true, or nil and the
-- parser's message for a malformed body.
local function parse_body(r)
  local args, files = {}, {}
  local ok, err = true, nil
  -- The core passes the body length, so a bodiless request never asks it
  -- for the body or the headers.
  local body = r._body_len ~= 0 and r.body or ""
  if body ~= "" then
    local ctype = r.headers["Content-Type"]
    if ctype then
      ok, err = httputil.parse_body_arguments(ctype, body, args, files)
      if not ok then args, files = {}, {} end
    end
  end
  rawset(r, "body_arguments", args)
  rawset(r, "files", files)
  return ok, err
end

-- Read lazily (a GET with a body, say), a malformed body is logged and
-- ignored, as in Tornado; _execute turns it into a 400 for other verbs.
local function lazy_body(r, k)
  local ok, err = parse_body(r)
  if not ok then log.warn("%s", err) end
  return rawget(r, k)
end
function BUILDERS.body_arguments(r) return lazy_body(r, "body_arguments") end
function BUILDERS.files(r) return lazy_body(r, "files") end

-- Without body arguments (every GET) the query's table is the answer
-- itself: nothing to merge, so nothing is copied.
function BUILDERS.arguments(r)
  local body_arguments = r.body_arguments
  if next(body_arguments) == nil then return r.query_arguments end
  local out = {}
  for name, list in pairs(r.query_arguments) do
    local l = {}
    for i = 1, #list do l[i] = list[i] end
    out[name] = l
  end
  for name, list in pairs(body_arguments) do
    local l = out[name]
    if not l then l = {}; out[name] = l end
    for i = 1, #list do l[#l + 1] = list[i] end
  end
  return out
end

function BUILDERS.cookies(r) return httputil.parse_cookie(r.headers["Cookie"]) end

function request_methods:full_url()
  return self.protocol .. "://" .. self.host .. self.uri
end

------------------------------------------------------------------------------
-- Requests in progress, for the close hook: req handle -> handler. An entry
-- goes at finish() or when the connection closes, whichever comes first.

local inflight = {}
_M._inflight = inflight

local function on_connection_close(req)
  local handler = inflight[req]
  if handler == nil then return end
  inflight[req] = nil
  local ok, err = xpcall(handler.on_connection_close, on_error, handler)
  if not ok then
    log.error("Exception in on_connection_close: %s", take_traceback(err) or tostring(err))
  end
  -- Long polling (DESIGN §4.5): a handler still waiting on a lock or a
  -- queue is woken with nil, "closed", so no dead request lingers.
  local co = rawget(handler, "_co")
  local locks = loaded["gust.locks"]
  if co and locks and locks.waiting(co) then locks.cancel(co, "closed") end
end
core.set_close_hook(on_connection_close)

------------------------------------------------------------------------------
-- RequestHandler

local RequestHandler = {
  __name = "gust.web.RequestHandler",
  SUPPORTED_METHODS = SUPPORTED_METHODS,
  -- Defaults read through the class, so a new handler needs no fields
  -- beyond the four it is created with.
  _status = 200,
  _finished = false,
  _headers_written = false,
  _auto_finish = true,
}

-- current_user is computed on first read. Lua hands a fall-through lookup
-- to the class where it misses, not to the instance, so laziness needs an
-- instance __index function; one is made per class (at extend()), never per
-- request.
local function handler_index(cls)
  return function(self, k)
    local v = cls[k]
    if v == nil and k == "current_user" then
      if rawget(self, "_current_user_done") then return nil end
      v = self:get_current_user()
      if v == nil then
        rawset(self, "_current_user_done", true)
      else
        rawset(self, "current_user", v)
      end
    end
    return v
  end
end
RequestHandler.__index = handler_index(RequestHandler)

function RequestHandler.__tostring(self)
  return "<" .. (self.__name or "RequestHandler") .. ">"
end

-- Handler:extend(proto?) -> subclass.
function RequestHandler.extend(base, proto)
  local cls = class.extend(base, proto)
  cls.__index = handler_index(cls)
  return cls
end

-- The metatable a request's handler gets. An __index function costs a call
-- on every method and default-field lookup, so a class that cannot have a
-- current_user (it keeps the default get_current_user) gets a flattened
-- copy of its class chain as a plain table; the copy's `super` keeps
-- is_instance() true. Made once per route, at its first request, so methods
-- must be defined before the app serves (as they are in practice).
local function instance_mt(cls)
  if cls.get_current_user ~= RequestHandler.get_current_user then
    return cls
  end
  local chain = {}
  local c = cls
  while c ~= nil do
    chain[#chain + 1] = c
    c = rawget(c, "super")
  end
  local mt = {}
  for i = #chain, 1, -1 do
    for k, v in pairs(chain[i]) do mt[k] = v end
  end
  mt.__index = mt
  mt.super = cls
  return mt
end

-- Hooks a subclass overrides.
RequestHandler.initialize = noop
RequestHandler.prepare = noop
RequestHandler.on_finish = noop
RequestHandler.on_connection_close = noop
RequestHandler.set_default_headers = noop
RequestHandler.get_current_user = noop

function RequestHandler:get_login_url()
  return self.settings.login_url
end

function RequestHandler:require_setting(name, feature)
  local v = self.settings[name]
  if v == nil then
    error(format("You must define the '%s' setting in your application to use %s",
                 name, feature or "this feature"), 3)
  end
  return v
end

function RequestHandler:reverse_url(name, ...)
  return self.application:reverse_url(name, ...)
end

-- Output -------------------------------------------------------------------

-- Resets status, headers and buffered body; cookies set so far stay
-- (Tornado's clear()).
function RequestHandler:clear()
  self._headers = nil
  self._write_buffer = nil
  self._status = 200
  self._reason = nil
  self:set_default_headers()
end

function RequestHandler:set_status(code, reason)
  if type(code) ~= "number" or code ~= floor(code) or code < 100 or code > 999 then
    error("bad argument #1 to 'set_status' (status code expected, got " .. tostring(code) .. ")", 2)
  end
  if reason == nil then
    if RESPONSES[code] == nil then error(format("unknown status code %d", code), 2) end
  else
    reason = tostring(reason)
    if find(reason, "[%z\r\n]") then
      error("bad argument #2 to 'set_status' (reason contains CR, LF or NUL)", 2)
    end
  end
  self._status = code
  self._reason = reason
end

function RequestHandler:get_status()
  return self._status
end

-- Header names are tokens (RFC 9110); values go on one line, so CR, LF and
-- NUL are refused rather than escaped: that is what header injection needs.
local function header_name(name, fname)
  if type(name) ~= "string" or name == "" or find(name, "[^%w!#$%%&'*+%-%.^_`|~]") then
    error(format("bad argument #1 to '%s' (invalid header name %q)", fname, tostring(name)), 3)
  end
  return normalize_header_name(name)
end

local function header_value(value, fname)
  local t = type(value)
  if t == "number" then return tostring(value) end
  if t ~= "string" then
    error(format("bad argument #2 to '%s' (string expected, got %s)", fname, t), 3)
  end
  if find(value, "[%z\r\n]") then
    error(format("bad argument #2 to '%s' (unsafe header value %q)", fname, value), 3)
  end
  return value
end

local function headers_of(self)
  local h = rawget(self, "_headers")
  if h == nil then
    h = {}
    self._headers = h
  end
  return h
end

function RequestHandler:set_header(name, value)
  name = header_name(name, "set_header")
  headers_of(self)[name] = header_value(value, "set_header")
end

function RequestHandler:add_header(name, value)
  name = header_name(name, "add_header")
  value = header_value(value, "add_header")
  local h = headers_of(self)
  local old = h[name]
  if old == nil then
    h[name] = value
  elseif type(old) == "table" then
    old[#old + 1] = value
  else
    h[name] = { old, value }
  end
end

function RequestHandler:clear_header(name)
  local h = rawget(self, "_headers")
  if h then h[header_name(name, "clear_header")] = nil end
end

-- The value of a response header set so far (first one when repeated).
function RequestHandler:get_header(name)
  local h = rawget(self, "_headers")
  local v = h and h[header_name(name, "get_header")]
  if type(v) == "table" then return v[1] end
  return v
end

function RequestHandler:write(chunk)
  if self._finished then error("Cannot write() after finish()", 2) end
  local t = type(chunk)
  if t == "table" then
    chunk = json_encode(chunk)
    self:set_header("Content-Type", "application/json; charset=UTF-8")
  elseif t == "number" then
    chunk = tostring(chunk)
  elseif t ~= "string" then
    error("bad argument #1 to 'write' (string or table expected, got " .. t .. ")", 2)
  end
  if chunk == "" then return end
  local buf = rawget(self, "_write_buffer")
  if buf == nil then
    self._write_buffer = { chunk }
  else
    buf[#buf + 1] = chunk
  end
end

-- Compression ---------------------------------------------------------------

local GZIP_MIN_LENGTH = 1024
local COMPRESSIBLE = {
  ["application/javascript"] = true, ["application/x-javascript"] = true,
  ["application/json"] = true, ["application/xml"] = true,
  ["application/atom+xml"] = true, ["application/xhtml+xml"] = true,
  ["image/svg+xml"] = true,
}

local function compressible(ctype)
  ctype = lower(match(ctype, "^%s*([^;%s]*)"))
  return sub(ctype, 1, 5) == "text/" or COMPRESSIBLE[ctype] == true
    or find(ctype, "[+/]json$") ~= nil or find(ctype, "[+/]xml$") ~= nil
end

-- Called once, with the whole body, just before the headers go out.
-- Returns the body to send. A response streamed with flush() is not
-- compressed (core.gzip is one-shot).
local function maybe_gzip(self, buf)
  local h = rawget(self, "_headers")
  local ctype = h and h["Content-Type"] or "text/html"
  if type(ctype) == "table" then ctype = ctype[1] end
  if not compressible(ctype) then return buf end
  h = headers_of(self)
  -- Caches must key on Accept-Encoding whether or not this client got
  -- gzip, as Tornado's GZipContentEncoding does.
  local vary = h["Vary"]
  if vary == nil then
    h["Vary"] = "Accept-Encoding"
  elseif type(vary) == "string" and not find(lower(vary), "accept-encoding", 1, true) then
    h["Vary"] = vary .. ", Accept-Encoding"
  end
  if h["Content-Encoding"] ~= nil then return buf end
  local ae = self.request.headers["Accept-Encoding"]
  if not ae or not find(ae, "gzip", 1, true) then return buf end
  local body = concat(buf)
  if #body < GZIP_MIN_LENGTH then return buf end
  h["Content-Encoding"] = "gzip"
  h["Content-Length"] = nil
  return core.gzip(body)
end

-- Set-Cookie headers are added when the headers go out, so set_cookie()
-- replaces a cookie of the same name set earlier in the request.
local function add_cookies(self)
  local cookies = rawget(self, "_new_cookies")
  if cookies == nil then return end
  for i = 1, #cookies do self:add_header("Set-Cookie", cookies[i][2]) end
end

-- Bookkeeping once the core has the whole response: Tornado's finish()
-- tail. on_finish runs exactly once, and an error in it is only logged.
local function finished(self, req)
  self._finished = true
  inflight[req] = nil
  local log_function = self.settings.log_function
  if log_function then
    local ok, err = pcall(log_function, self)
    if not ok then log.error("Exception in log_function: %s", tostring(err)) end
  end
  local ok, err = xpcall(self.on_finish, on_error, self)
  if not ok then log.error("Exception in on_finish: %s", take_traceback(err) or tostring(err)) end
end

-- Sends the headers (first call) and what has been written so far as a
-- chunk. Yields in the core until the socket took it. Returns true, or
-- nil, "closed" when the client has gone away.
function RequestHandler:flush()
  if self._finished then error("Cannot flush() after finish()", 2) end
  local req = self._req
  local buf = rawget(self, "_write_buffer")
  self._write_buffer = nil
  if not self._headers_written then
    self._headers_written = true
    add_cookies(self)
    return req:flush(self._status, rawget(self, "_reason"), rawget(self, "_headers"), buf or "")
  end
  -- An empty chunk would end a chunked body, so there is nothing to send.
  if buf == nil then return true end
  -- The core ignores status and headers once the head is out, but its
  -- argument check still wants a status.
  return req:flush(self._status, nil, nil, buf)
end

-- Headers that describe a body, dropped when there is none (Tornado's
-- _clear_representation_headers).
local REPRESENTATION_HEADERS = { "Content-Encoding", "Content-Language", "Content-Type" }

function RequestHandler:finish(chunk)
  if self._finished then error("finish() called twice", 2) end
  if chunk ~= nil then self:write(chunk) end
  local req = self._req
  local buf = rawget(self, "_write_buffer")
  self._write_buffer = nil
  local ok, err
  if not self._headers_written then
    self._headers_written = true
    local status = self._status
    if status == 204 or status == 304 or status < 200 then
      buf = nil
      local h = rawget(self, "_headers")
      if h and status == 304 then
        for i = 1, #REPRESENTATION_HEADERS do h[REPRESENTATION_HEADERS[i]] = nil end
      end
    elseif buf and self.settings.compress_response then
      buf = maybe_gzip(self, buf)
    end
    add_cookies(self)
    ok, err = req:finish(status, rawget(self, "_reason"), rawget(self, "_headers"), buf)
  else
    ok, err = req:finish(self._status, nil, nil, buf)
  end
  finished(self, req)
  return ok, err
end

-- Ends the response with bytes [offset, offset + length) of a file, sent by
-- the core without passing through Lua (StaticFileHandler).
function RequestHandler:_finish_with_file(path, offset, length)
  if self._finished then error("finish() called twice", 2) end
  if self._headers_written then error("Cannot send a file after headers have been written", 2) end
  local req = self._req
  self._headers_written = true
  self._write_buffer = nil
  add_cookies(self)
  local ok, err = req:send_file(self._status, rawget(self, "_reason"), rawget(self, "_headers"),
                                path, offset, length)
  if not ok and err ~= "closed" then
    -- Nothing went out: the file vanished or became unreadable after it
    -- was checked. The error path answers instead.
    self._headers_written = false
    if find(tostring(err), "No such file", 1, true) then
      error(HTTPError(404, "%s", tostring(err)), 0)
    end
    error("cannot send file: " .. tostring(err), 2)
  end
  finished(self, req)
  return ok, err
end

function RequestHandler:redirect(url, permanent, status)
  if self._headers_written then error("Cannot redirect after headers have been written", 2) end
  if status == nil then
    status = permanent and 301 or 302
  elseif type(status) ~= "number" or status < 300 or status > 399 then
    error("bad argument #3 to 'redirect' (3xx status expected, got " .. tostring(status) .. ")", 2)
  end
  self:set_status(status)
  self:set_header("Location", url)
  self:finish()
end

-- Errors ----------------------------------------------------------------------

-- write_error(status, err, traceback): err is what was raised (an HTTPError
-- or any other value), traceback a string for errors that are not
-- HTTPErrors. The default page is Tornado's; with settings.serve_traceback
-- (on with debug) the traceback is sent as text instead.
function RequestHandler:write_error(status, _, tb)
  if tb and self.settings.serve_traceback then
    self:set_header("Content-Type", "text/plain; charset=UTF-8")
    self:finish(tb)
    return
  end
  local reason = xhtml_escape(rawget(self, "_reason") or RESPONSES[status] or "Unknown")
  self:finish(format("<html><title>%d: %s</title><body>%d: %s</body></html>",
                     status, reason, status, reason))
end

function RequestHandler:send_error(status, err, tb)
  status = status or 500
  if self._headers_written then
    -- Part of the response is out: ending it cleanly would let the client
    -- take a truncated body for a whole one, so the connection is cut.
    log.error("Cannot send error response after headers written; closing the connection")
    if not self._finished then
      local req = self._req
      pcall(req.abort, req)
      finished(self, req)
    end
    return
  end
  self:clear()
  local reason
  if is_http_error(err) then reason = err.reason end
  if reason == nil and RESPONSES[status] == nil then reason = "Unknown" end
  self:set_status(status, reason)
  if is_http_error(err) and err.headers then
    for k, v in pairs(err.headers) do self:set_header(k, v) end
  end
  local ok, e = xpcall(self.write_error, on_error, self, status, err, tb)
  if not ok then
    log.error("Uncaught exception in write_error: %s", take_traceback(e) or tostring(e))
  end
  if not self._finished then self:finish() end
end

function RequestHandler:_request_summary()
  local r = self.request
  return tostring(r.method) .. " " .. tostring(r.uri) .. " (" .. tostring(r.remote_ip) .. ")"
end

function RequestHandler:log_exception(err, tb)
  if is_http_error(err) then
    if err.log_message then
      log.warn("%d %s: %s", err.status_code, self:_request_summary(), err.log_message)
    end
  else
    log.error("Uncaught exception %s\n%s", self:_request_summary(), tb or tostring(err))
  end
end

-- Ends a request whose error handling itself failed, so the client gets an
-- answer and on_finish still runs.
local function force_finish(self)
  if self._finished then return end
  local req = self._req
  if not self._headers_written then
    self._headers_written = true
    pcall(req.finish, req, 500, nil, nil, nil)
  else
    pcall(req.finish, req, self._status, nil, nil, nil)
  end
  finished(self, req)
end

local function handle_request_exception(self, err, tb)
  if getmetatable(err) == Finish then
    if not self._finished then
      local ok, e = xpcall(self.finish, on_error, self, err.chunk)
      if not ok then
        log.error("Exception in finish: %s", take_traceback(e) or tostring(e))
        force_finish(self)
      end
    end
    return
  end
  local ok, e = pcall(self.log_exception, self, err, tb)
  if not ok then log.error("Exception in log_exception: %s", tostring(e)) end
  if self._finished then return end
  local status = is_http_error(err) and err.status_code or 500
  ok, e = xpcall(self.send_error, on_error, self, status, err, tb)
  if not ok then
    log.error("Exception in exception handler: %s", take_traceback(e) or tostring(e))
    force_finish(self)
  end
end

-- The request life cycle ----------------------------------------------------

local function method_not_allowed(self)
  local allow = {}
  local supported = self.SUPPORTED_METHODS
  for i = 1, #supported do
    local m = supported[i]
    if self[lower(m)] ~= nil then allow[#allow + 1] = m end
  end
  error(HTTPError(405, { headers = { Allow = concat(allow, ", ") } }), 0)
end

-- Tornado's _execute, run under xpcall: initialize -> method check -> body
-- arguments (400) -> XSRF (403) -> prepare -> verb -> finish unless the verb
-- is asynchronous. ... are the decoded route captures.
local function execute(self, kwargs, method, ...)
  self:set_default_headers()
  self:initialize(kwargs)
  local verb
  local supported = self.SUPPORTED_METHODS
  if supported == SUPPORTED_METHODS then
    verb = VERBS[method]
  else
    for i = 1, #supported do
      if supported[i] == method then verb = lower(method) break end
    end
  end
  local fn = verb and self[verb]
  if fn == nil then method_not_allowed(self) end
  -- GET and HEAD bodies are parsed only if someone reads them, so a plain
  -- GET never touches the request headers.
  if method ~= "GET" and method ~= "HEAD" then
    local ok, err = parse_body(self.request)
    if not ok then error(HTTPError(400, err), 0) end
  end
  if not XSRF_SAFE[method] and self.settings.xsrf_cookies then
    self:check_xsrf_cookie()
  end
  self:prepare()
  if self._finished then return end
  fn(self, ...)
  if self._auto_finish and not self._finished then self:finish() end
end

-- Runs the request; the Application calls this on a fresh handler.
-- WebSocketHandler and friends may override it.
function RequestHandler:_execute(kwargs, method, ...)
  local ok, err = xpcall(execute, on_error, self, kwargs, method, ...)
  if not ok then handle_request_exception(self, err, take_traceback(err)) end
end

-- Arguments -------------------------------------------------------------------

local CONTROL_CHARS = "[%z\1-\8\14-\31]"

-- Tornado: control characters become spaces, and the value is stripped
-- unless strip is false.
local function clean(v, strip)
  if find(v, CONTROL_CHARS) then v = gsub(v, CONTROL_CHARS, " ") end
  if strip ~= false then v = trim(v) end
  return v
end

local function get_one(source, name, has_default, default, strip)
  local list = source[name]
  if list ~= nil and #list > 0 then return clean(list[#list], strip) end
  if not has_default then error(MissingArgumentError(name), 0) end
  return default
end

local function get_all(source, name, strip)
  local list = source[name]
  local out = {}
  if list then
    for i = 1, #list do out[i] = clean(list[i], strip) end
  end
  return out
end

-- get_argument(name, default?, strip?): the last value. Without a default
-- (not even an explicit nil) a missing argument is a 400.
function RequestHandler:get_argument(name, ...)
  return get_one(self.request.arguments, name, select("#", ...) > 0, ...)
end

function RequestHandler:get_arguments(name, strip)
  return get_all(self.request.arguments, name, strip)
end

function RequestHandler:get_query_argument(name, ...)
  return get_one(self.request.query_arguments, name, select("#", ...) > 0, ...)
end

function RequestHandler:get_query_arguments(name, strip)
  return get_all(self.request.query_arguments, name, strip)
end

function RequestHandler:get_body_argument(name, ...)
  return get_one(self.request.body_arguments, name, select("#", ...) > 0, ...)
end

function RequestHandler:get_body_arguments(name, strip)
  return get_all(self.request.body_arguments, name, strip)
end

-- Cookies ---------------------------------------------------------------------

function RequestHandler:get_cookie(name, default)
  local v = self.request.cookies[name]
  if v == nil then return default end
  return v
end

-- opts: expires_days, expires, max_age, path ("/"), domain, secure,
-- httponly, samesite (httputil.format_cookie checks name and value).
function RequestHandler:set_cookie(name, value, opts)
  if self._headers_written then error("Cannot set_cookie() after headers have been written", 2) end
  if type(value) ~= "string" then value = tostring(value) end
  local s = httputil.format_cookie(name, value, opts)
  local cookies = rawget(self, "_new_cookies")
  if cookies == nil then
    cookies = {}
    self._new_cookies = cookies
  end
  for i = 1, #cookies do
    if cookies[i][1] == name then
      cookies[i][2] = s
      return
    end
  end
  cookies[#cookies + 1] = { name, s }
end

-- Expires in the past and Max-Age=0; path and domain must match the ones
-- the cookie was set with.
function RequestHandler:clear_cookie(name, opts)
  local o = copy(opts)
  o.expires_days = nil
  o.expires = now() - 365 * 86400
  o.max_age = 0
  self:set_cookie(name, "", o)
end

function RequestHandler:clear_all_cookies(opts)
  for name in pairs(self.request.cookies) do self:clear_cookie(name, opts) end
end

function RequestHandler:create_signed_value(name, value)
  local secret = self:require_setting("cookie_secret", "secure cookies")
  return httputil.create_signed_value(secret, name, tostring(value), core.hmac_sha256, now())
end

-- opts as set_cookie; expires_days defaults to 30.
function RequestHandler:set_secure_cookie(name, value, opts)
  if opts == nil or (opts.expires_days == nil and opts.expires == nil and opts.max_age == nil) then
    opts = copy(opts)
    opts.expires_days = 30
  end
  self:set_cookie(name, self:create_signed_value(name, value), opts)
end

-- The value if the cookie (or `value`, when given) carries a valid
-- signature for `name` that is at most max_age_days (31) old, else nil.
function RequestHandler:get_secure_cookie(name, value, max_age_days)
  local secret = self:require_setting("cookie_secret", "secure cookies")
  if value == nil then value = self:get_cookie(name) end
  if value == nil then return nil end
  return httputil.decode_signed_value(secret, name, value, max_age_days or 31,
                                      core.hmac_sha256, now())
end

-- XSRF ------------------------------------------------------------------------
-- Tornado's version-2 tokens: "2|<mask hex>|<masked token hex>|<timestamp>".
-- The 16-byte token is masked with 4 fresh random bytes each time it is
-- rendered, so it never appears the same twice in a page (BREACH).

local function xor_mask(mask, data)
  local out = {}
  for i = 1, #data do
    out[i] = char(bxor(byte(data, i), byte(mask, (i - 1) % 4 + 1)))
  end
  return concat(out)
end

local HEX_PAIR = {}
for b = 0, 255 do
  local c = char(b)
  HEX_PAIR[format("%02x", b)], HEX_PAIR[format("%02X", b)] = c, c
end

local function hex_decode(s)
  if #s % 2 == 1 or find(s, "%X") then return nil end
  return (gsub(s, "%x%x", HEX_PAIR))
end

-- -> version, token, timestamp; nil for anything unreadable.
local function decode_xsrf_token(s)
  if type(s) ~= "string" then return nil end
  if sub(s, 1, 2) == "2|" then
    local mask_hex, masked_hex, ts = match(s, "^2|(%x+)|(%x*)|(%d+)$")
    if not mask_hex then return nil end
    local mask, masked = hex_decode(mask_hex), hex_decode(masked_hex)
    if not mask or #mask ~= 4 or not masked then return nil end
    return 2, xor_mask(mask, masked), tonumber(ts)
  elseif find(s, "^%d+|") then
    return nil -- a version this code does not know
  end
  -- Version 1: the bare token, hex-encoded or as is.
  return 1, hex_decode(s) or s, now()
end

-- The unmasked token from the _xsrf cookie, or a new random one.
function RequestHandler:_get_raw_xsrf_token()
  local raw = rawget(self, "_raw_xsrf_token")
  if raw == nil then
    local version, token, timestamp
    local cookie = self:get_cookie(self.settings.xsrf_cookie_name or "_xsrf")
    if cookie then version, token, timestamp = decode_xsrf_token(cookie) end
    if token == nil then
      version, token, timestamp = nil, core.random_bytes(16), now()
    end
    raw = { version, token, timestamp }
    self._raw_xsrf_token = raw
  end
  return raw[1], raw[2], raw[3]
end

-- The token to embed in forms; sets the _xsrf cookie when the request had
-- none.
function RequestHandler:xsrf_token()
  local t = rawget(self, "_xsrf_token")
  if t then return t end
  local version, token, timestamp = self:_get_raw_xsrf_token()
  local mask = core.random_bytes(4)
  t = "2|" .. core.hex(mask) .. "|" .. core.hex(xor_mask(mask, token)) .. "|" .. tostring(timestamp)
  if version == nil then
    local opts = copy(self.settings.xsrf_cookie_kwargs)
    if opts.expires_days == nil and opts.expires == nil and self.current_user then
      opts.expires_days = 30
    end
    self:set_cookie(self.settings.xsrf_cookie_name or "_xsrf", t, opts)
  end
  self._xsrf_token = t
  return t
end

function RequestHandler:xsrf_form_html()
  return '<input type="hidden" name="_xsrf" value="' .. xhtml_escape(self:xsrf_token()) .. '"/>'
end

function RequestHandler:check_xsrf_cookie()
  local token = self:get_argument("_xsrf", nil)
  if not token then
    local h = self.request.headers
    token = h["X-Xsrftoken"] or h["X-Csrftoken"]
  end
  if not token then error(HTTPError(403, "'_xsrf' argument missing from POST"), 0) end
  local _, got = decode_xsrf_token(token)
  local _, expected = self:_get_raw_xsrf_token()
  if not got then error(HTTPError(403, "'_xsrf' argument has invalid format"), 0) end
  if not httputil.constant_time_compare(got, expected) then
    error(HTTPError(403, "XSRF cookie does not match POST argument"), 0)
  end
end

-- Static URLs and templates -----------------------------------------------------

function RequestHandler:static_url(path, include_host)
  self:require_setting("static_path", "static_url")
  local cls = self.settings.static_handler_class or _M.StaticFileHandler
  local url = cls:make_static_url(self.settings, path)
  if include_host then
    url = self.request.protocol .. "://" .. self.request.host .. url
  end
  return url
end

local template_loaders = {}

local function template_module()
  local ok, template = pcall(require, "gust.template")
  if not ok then
    error("render() needs the gust.template module, which could not be loaded: "
          .. tostring(template), 3)
  end
  return template
end

function RequestHandler:create_template_loader(template_path)
  local template = template_module()
  local settings = self.settings
  return template.Loader(template_path, {
    autoescape = settings.autoescape,
    whitespace = settings.template_whitespace,
  })
end

-- What every template sees besides the caller's vars. The functions are
-- made per render, never on the plain request path.
function RequestHandler:get_template_namespace()
  return {
    handler = self,
    request = self.request,
    current_user = self.current_user,
    settings = self.settings,
    static_url = function(path) return self:static_url(path) end,
    xsrf_form_html = function() return self:xsrf_form_html() end,
    reverse_url = function(name, ...) return self:reverse_url(name, ...) end,
  }
end

function RequestHandler:render_string(template_name, vars)
  template_module()
  local path = self.settings.template_path or "."
  local loader = template_loaders[path]
  if loader == nil then
    loader = self:create_template_loader(path)
    template_loaders[path] = loader
  elseif self.settings.compiled_template_cache == false and loader.reset then
    loader:reset()
  end
  local t = loader:load(template_name)
  local ns = self:get_template_namespace()
  if vars then for k, v in pairs(vars) do ns[k] = v end end
  return t:generate(ns)
end

function RequestHandler:render(template_name, vars)
  if self._finished then error("Cannot render() after finish()", 2) end
  return self:finish(self:render_string(template_name, vars))
end

-- ETag check against If-None-Match (weak comparison, "*" matches), for
-- handlers that set their own Etag.
function RequestHandler:check_etag_header(etag)
  etag = etag or self:get_header("Etag")
  local inm = self.request.headers["If-None-Match"]
  if not etag or not inm then return false end
  if find(inm, "^%s*%*") then return true end
  etag = match(etag, '^W/(.*)$') or etag
  for candidate in inm:gmatch('"[^"]*"') do
    if candidate == etag then return true end
  end
  return false
end

_M.RequestHandler = RequestHandler

------------------------------------------------------------------------------
-- Decorators. Each returns one wrapper, made when the class is defined.

-- The verb does not finish the response by returning; the handler stays
-- open until self:finish() is called, from any coroutine or callback.
function _M.asynchronous(method)
  if type(method) ~= "function" then
    error("bad argument #1 to 'asynchronous' (function expected, got " .. type(method) .. ")", 2)
  end
  return function(self, ...)
    self._auto_finish = false
    return method(self, ...)
  end
end

-- Without a current_user, GET/HEAD go to settings.login_url?next=<uri>
-- when it is set; anything else is a 403.
function _M.authenticated(method)
  if type(method) ~= "function" then
    error("bad argument #1 to 'authenticated' (function expected, got " .. type(method) .. ")", 2)
  end
  return function(self, ...)
    if not self.current_user then
      local m = self.request.method
      local url = self:get_login_url()
      if url and (m == "GET" or m == "HEAD") then
        if not find(url, "?", 1, true) then
          local next_url
          if find(url, "^%a[%w+.-]*:") then
            next_url = self.request:full_url()
          else
            next_url = self.request.uri
          end
          url = url .. "?next=" .. url_escape(next_url)
        end
        self:redirect(url)
        return
      end
      error(HTTPError(403), 0)
    end
    return method(self, ...)
  end
end

------------------------------------------------------------------------------
-- Built-in handlers

-- Answers every request with status_code (404 by default): the handler for
-- unmatched paths. It defines every verb so that the method check passes
-- and prepare() gives the real answer.
local ErrorHandler = RequestHandler:extend()
ErrorHandler.__name = "gust.web.ErrorHandler"

function ErrorHandler:initialize(kwargs)
  self._error_status = kwargs.status_code or 404
end

function ErrorHandler:prepare()
  error(HTTPError(self._error_status), 0)
end

-- No XSRF check: a POST to a missing page is a 404, not a 403.
ErrorHandler.check_xsrf_cookie = noop
for i = 1, #SUPPORTED_METHODS do ErrorHandler[VERBS[SUPPORTED_METHODS[i]]] = noop end
_M.ErrorHandler = ErrorHandler

-- {url=, permanent=true}: "{0}", "{1}", ... in url are the route captures;
-- the request's query string is carried over.
local RedirectHandler = RequestHandler:extend()
RedirectHandler.__name = "gust.web.RedirectHandler"

function RedirectHandler:initialize(kwargs)
  if type(kwargs.url) ~= "string" then
    error("RedirectHandler needs a 'url' string in its route kwargs", 2)
  end
  self._url = kwargs.url
  self._permanent = kwargs.permanent ~= false
end

function RedirectHandler:get(...)
  local to = self._url
  local n = select("#", ...)
  if n > 0 and find(to, "{", 1, true) then
    local args = {}
    for i = 1, n do args[tostring(i - 1)] = tostring((select(i, ...))) end
    to = gsub(to, "{(%d+)}", args)
  end
  local query = self.request.query
  if query ~= "" then
    to = to .. (find(to, "?", 1, true) and "&" or "?") .. query
  end
  self:redirect(to, self._permanent)
end
_M.RedirectHandler = RedirectHandler

-- {fallback = container}: every request on the route goes to the
-- container, called as fallback(handler, ...captures) -- a WSAPIContainer
-- (gust.wsapi), a web_proxy.Proxy, or any function. It answers through the
-- handler (set_status, set_header, write, flush, finish); if it returns
-- without finishing, the response is finished as for any verb.
--
-- Tornado's FallbackHandler runs the container from prepare(); here the
-- class runs its own _execute, because a hosted application needs the
-- request as it came:
--   * any method goes through (PROPFIND as well as GET), never a 405;
--   * the body is not parsed (the hosted app reads it raw, and a malformed
--     form is its business, not a 400), and there is no XSRF check (the
--     hosted app has its own);
--   * initialize() and prepare() still run first, so a subclass can check
--     authentication or answer some requests itself.
-- Errors go the usual way: a logged 500 before anything was flushed; after,
-- the error is logged and the connection cut (send_error), so a client
-- cannot take a truncated body for a whole one.
local FallbackHandler = RequestHandler:extend()
FallbackHandler.__name = "gust.web.FallbackHandler"

local function is_callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__call") ~= nil
end

function FallbackHandler:initialize(kwargs)
  local fallback = kwargs.fallback
  if not is_callable(fallback) then
    error("FallbackHandler needs a callable 'fallback' in its route kwargs, got "
          .. type(fallback), 2)
  end
  self.fallback = fallback
end

local function call_fallback(self, ...)
  return self.fallback(self, ...)
end
-- The verbs, for subclasses and callers that name them; _execute below
-- calls the fallback for every method, these included.
for i = 1, #SUPPORTED_METHODS do FallbackHandler[VERBS[SUPPORTED_METHODS[i]]] = call_fallback end

local function execute_fallback(self, kwargs, ...)
  self:set_default_headers()
  self:initialize(kwargs)
  self:prepare()
  if self._finished then return end
  self.fallback(self, ...)
  if self._auto_finish and not self._finished then self:finish() end
end

function FallbackHandler:_execute(kwargs, _, ...)
  local ok, err = xpcall(execute_fallback, on_error, self, kwargs, ...)
  if not ok then handle_request_exception(self, err, take_traceback(err)) end
end
_M.FallbackHandler = FallbackHandler

-- web.ProxyHandler ({upstream = "http://127.0.0.1:8000", ...}) is a
-- FallbackHandler whose container forwards the request to an HTTP backend.
-- It lives in web_proxy.lua, loaded on first use since it needs
-- gust.httpclient.
setmetatable(_M, {
  __index = function(t, k)
    if k == "ProxyHandler" then
      local cls = require("gust.web_proxy").new(t)
      rawset(t, k, cls)
      return cls
    end
  end,
})

-- StaticFileHandler lives in its own file; it is built on RequestHandler.
_M.StaticFileHandler = require("gust.web_static").new(_M)

-- web.MetricsHandler: the server's Prometheus text (DESIGN §4.10), the same
-- numbers as --metrics PATH, summed over the workers; for apps that want
-- the page behind their own route (and, say, @authenticated).
local MetricsHandler = RequestHandler:extend()
MetricsHandler.__name = "gust.web.MetricsHandler"
function MetricsHandler:get()
  self:set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
  self:finish(core.metrics())
end
_M.MetricsHandler = MetricsHandler

------------------------------------------------------------------------------
-- Routing. A route's pattern is analysed once: anchors, the number of
-- captures, whether it is a plain string (compared with ==), and a template
-- for reverse_url.

local MAGIC = "^$()%.[]*+-?"
local MAGIC_SET = {}
for i = 1, #MAGIC do MAGIC_SET[sub(MAGIC, i, i)] = true end

-- Index just past the "[...]" set that starts at i.
local function skip_set(p, i)
  local j = i + 1
  if sub(p, j, j) == "^" then j = j + 1 end
  if sub(p, j, j) == "]" then j = j + 1 end
  while j <= #p do
    local c = sub(p, j, j)
    if c == "%" then
      j = j + 2
    elseif c == "]" then
      return j + 1
    else
      j = j + 1
    end
  end
  error("malformed pattern (missing ']')", 0)
end

-- pattern (unanchored body) -> { ncaps, literal (string|nil), parts (array
-- of strings and capture numbers, nil when not reversible), nargs }.
local function analyse(body)
  local ncaps, depth, nargs = 0, 0, 0
  local literal, reversible = true, true
  local parts, lit = {}, {}
  local i, n = 1, #body
  while i <= n do
    local c = sub(body, i, i)
    if c == "%" then
      local d = sub(body, i + 1, i + 1)
      if d == "" then error("malformed pattern (ends with '%')", 0) end
      if find(d, "%w") then
        -- a class (%d), a back reference (%1), %b or %f
        literal = false
        if depth == 0 then reversible = false end
        if d == "b" then
          i = i + 4
        elseif d == "f" then
          if sub(body, i + 2, i + 2) ~= "[" then error("missing '[' after '%f' in pattern", 0) end
          i = skip_set(body, i + 2)
        else
          i = i + 2
        end
      else
        if depth == 0 then lit[#lit + 1] = d end
        i = i + 2
      end
    elseif c == "[" then
      literal = false
      if depth == 0 then reversible = false end
      i = skip_set(body, i)
    elseif c == "(" then
      literal = false
      ncaps = ncaps + 1
      if depth == 0 then
        nargs = nargs + 1
        if #lit > 0 then parts[#parts + 1] = concat(lit); lit = {} end
        parts[#parts + 1] = nargs
      else
        reversible = false -- nested captures cannot be filled in
      end
      depth = depth + 1
      i = i + 1
    elseif c == ")" then
      if depth == 0 then error("invalid pattern capture", 0) end
      depth = depth - 1
      i = i + 1
    elseif MAGIC_SET[c] then
      literal = false
      if depth == 0 then reversible = false end
      i = i + 1
    else
      if depth == 0 then lit[#lit + 1] = c end
      i = i + 1
    end
  end
  -- find("", regex) stops at the first mismatch, before Lua sees these.
  if depth ~= 0 then error("unfinished capture", 0) end
  if #lit > 0 then parts[#parts + 1] = concat(lit) end
  local info = { ncaps = ncaps, nargs = nargs }
  if literal then info.literal = concat(parts) end
  if reversible then info.parts = parts end
  return info
end

-- "^/a$" -> "/a": a trailing "$" is an anchor unless an odd number of "%"
-- escape it.
local function strip_anchors(pattern)
  local body = pattern
  if sub(body, 1, 1) == "^" then body = sub(body, 2) end
  if sub(body, -1) == "$" then
    local pct = #match(sub(body, 1, -2), "%%*$")
    if pct % 2 == 0 then body = sub(body, 1, -2) end
  end
  return body
end

local function escape_pattern(s)
  return (gsub(s, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

local function compile_route(route, index)
  if type(route) ~= "table" then
    error(format("route #%d: table expected, got %s", index, type(route)), 0)
  end
  local pattern, handler_class, kwargs = route[1], route[2], route[3]
  if type(pattern) ~= "string" then
    error(format("route #%d: pattern string expected, got %s", index, type(pattern)), 0)
  end
  if type(handler_class) ~= "table" or handler_class._execute == nil then
    error(format("route #%d (%s): a RequestHandler class expected", index, pattern), 0)
  end
  if kwargs ~= nil and type(kwargs) ~= "table" then
    error(format("route #%d (%s): kwargs table expected, got %s", index, pattern, type(kwargs)), 0)
  end
  local body = strip_anchors(pattern)
  local regex = "^" .. body .. "$"
  -- Lua reports a malformed pattern only when it is used; find it now.
  local ok, info = pcall(find, "", regex)
  if ok then ok, info = pcall(analyse, body) end
  if not ok then
    error(format("route #%d: bad pattern %q: %s", index, pattern, tostring(info)), 0)
  end
  info.index = index
  info.pattern = pattern
  info.regex = regex
  info.handler_class = handler_class
  info.kwargs = kwargs or EMPTY
  info.name = route.name
  return info
end

------------------------------------------------------------------------------
-- Application

local Application = { __name = "gust.web.Application" }
Application.__index = Application

local DEFAULT_SETTINGS = {
  debug = false,
  xsrf_cookies = false,
  static_url_prefix = "/static/",
  compress_response = false,
  xheaders = false,
  max_body_size = 100 * 1024 * 1024,
  max_header_size = 64 * 1024,
  idle_connection_timeout = 60,
  header_timeout = 10,
  websocket_max_message_size = 10 * 1024 * 1024,
  websocket_compression = false,
}

function Application.new(cls, routes, settings)
  if routes ~= nil and type(routes) ~= "table" then
    error("bad argument #1 to 'Application' (table of routes expected, got " .. type(routes) .. ")", 3)
  end
  if settings ~= nil and type(settings) ~= "table" then
    error("bad argument #2 to 'Application' (settings table expected, got " .. type(settings) .. ")", 3)
  end
  settings = copy(settings)
  for k, v in pairs(DEFAULT_SETTINGS) do
    if settings[k] == nil then settings[k] = v end
  end
  if settings.gzip ~= nil and settings.compress_response == false then
    settings.compress_response = settings.gzip -- Tornado's old name
  end
  -- As Tornado: debug means tracebacks in error pages and no caches.
  if settings.debug then
    if settings.serve_traceback == nil then settings.serve_traceback = true end
    if settings.compiled_template_cache == nil then settings.compiled_template_cache = false end
    if settings.static_hash_cache == nil then settings.static_hash_cache = false end
  end

  local self = setmetatable({
    settings = settings,
    named_handlers = {},
    _routes = {},
    _literals = {}, -- plain path -> spec (the first such route wins)
    _patterns = {}, -- specs with magic characters, in route order
  }, cls)

  local list = {}
  if settings.static_path then
    -- First, as in Tornado, so an app's catch-all cannot shadow it.
    list[1] = { escape_pattern(settings.static_url_prefix) .. "(.*)",
                settings.static_handler_class or _M.StaticFileHandler,
                copy(settings.static_handler_args) }
    list[1][3].path = settings.static_path
  end
  for i = 1, #(routes or EMPTY) do list[#list + 1] = routes[i] end
  for i = 1, #list do
    local ok, err = pcall(self._add_route, self, list[i])
    if not ok then error(tostring(err), 3) end
  end

  self._default_spec = {
    handler_class = settings.default_handler_class or ErrorHandler,
    kwargs = settings.default_handler_args
      or (settings.default_handler_class == nil and { status_code = 404 } or EMPTY),
    ncaps = 0,
  }
  return self
end

setmetatable(Application, {
  __call = function(cls, routes, settings) return cls:new(routes, settings) end,
})

function Application:_add_route(route)
  local routes = self._routes
  local spec = compile_route(route, #routes + 1)
  routes[#routes + 1] = spec
  if spec.literal then
    if self._literals[spec.literal] == nil then self._literals[spec.literal] = spec end
  else
    self._patterns[#self._patterns + 1] = spec
  end
  if spec.name ~= nil then
    if self.named_handlers[spec.name] then
      log.warn("Multiple handlers named %s; replacing previous value", tostring(spec.name))
    end
    self.named_handlers[spec.name] = spec
  end
end

-- Appends routes after the existing ones.
function Application:add_handlers(routes)
  for i = 1, #routes do self:_add_route(routes[i]) end
end

function Application:reverse_url(name, ...)
  local spec = self.named_handlers[name]
  if spec == nil then error(format("%s not found in named urls", tostring(name)), 2) end
  local parts = spec.parts
  if parts == nil then
    error(format("cannot reverse url pattern %q", spec.pattern), 2)
  end
  local n = select("#", ...)
  if n ~= spec.nargs then
    error(format("reverse_url(%s): %d argument(s) expected, got %d", tostring(name), spec.nargs, n), 2)
  end
  if n == 0 then return concat(parts) end
  local out = {}
  for i = 1, #parts do
    local p = parts[i]
    if type(p) == "number" then
      out[i] = url_escape(tostring((select(p, ...))), false)
    else
      out[i] = p
    end
  end
  return concat(out)
end

function Application:listen(port, address)
  local listener, err = core.listen(self, port, address, self.settings)
  if not listener then
    error(format("cannot listen on %s port %s: %s", address or "the default address",
                 tostring(port), tostring(err)), 2)
  end
  return listener
end

-- Captures are URL-decoded (a "+" stays a "+": this is a path).
local function decode(cap)
  if type(cap) == "string" and find(cap, "%", 1, true) then
    return url_unescape(cap, false)
  end
  return cap
end

local function run(app, spec, req, method, path, query, body_len, ...)
  local request = setmetatable({ _req = req, _app = app, method = method,
                                 path = path, query = query or "",
                                 _body_len = body_len }, Request)
  local mt = spec.mt
  if mt == nil then
    mt = instance_mt(spec.handler_class)
    spec.mt = mt
  end
  local handler = setmetatable({ application = app, settings = app.settings,
                                 request = request, _req = req, _co = co_running() }, mt)
  inflight[req] = handler
  return handler:_execute(spec.kwargs, method, ...)
end

-- Two or more captures: decoded into a table only on this rarer path.
local function run_captures(app, spec, req, method, path, query, body_len, first, ...)
  if first == nil then return false end
  local caps = { first, ... }
  for i = 1, spec.ncaps do caps[i] = decode(caps[i]) end
  run(app, spec, req, method, path, query, body_len, unpack(caps, 1, spec.ncaps))
  return true
end

-- What the core calls, in a fresh coroutine, for every request.
function Application:__call(req, method, path, query, body_len)
  local lit = self._literals[path]
  local limit = lit and lit.index or huge
  local patterns = self._patterns
  for i = 1, #patterns do
    local spec = patterns[i]
    -- An earlier plain route wins over later patterns.
    if spec.index > limit then break end
    local ncaps = spec.ncaps
    if ncaps == 0 then
      if find(path, spec.regex) then return run(self, spec, req, method, path, query, body_len) end
    elseif ncaps == 1 then
      local cap = match(path, spec.regex)
      if cap ~= nil then return run(self, spec, req, method, path, query, body_len, decode(cap)) end
    elseif run_captures(self, spec, req, method, path, query, body_len, match(path, spec.regex)) then
      return
    end
  end
  if lit then return run(self, lit, req, method, path, query, body_len) end
  return run(self, self._default_spec, req, method, path, query, body_len)
end

_M.Application = Application

-- url(pattern, handler, kwargs?, name?): Tornado's spelling of a route.
function _M.url(pattern, handler_class, kwargs, name)
  return { pattern, handler_class, kwargs, name = name }
end

return _M
