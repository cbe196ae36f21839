-- gust.web.handler: RequestHandler, Tornado's handler life cycle over the
-- request (gust.web.request) and the core's handle: output (status,
-- headers, write, flush, finish, compression), errors and error pages,
-- arguments, and taking the connection over (detach). Cookies and XSRF
-- (gust.web.security) and templates (gust.web.render) are mixed in.
--
-- Hot path: serve() runs for every request. A hello-world request
-- allocates the handler table alone: self.request is made when first read
-- (LAZY), a single write() is kept as a string (a buffer table only from
-- the second), no closure is made per request, and a handler gets its
-- class chain flattened into one metatable per route (instance_mt).

local _M = { _VERSION = "0.1.0" }

local type, tostring, select, error = type, tostring, select, error
local pairs, setmetatable, getmetatable, rawget, rawset = pairs, setmetatable, getmetatable,
  rawget, rawset
local xpcall, pcall, require = xpcall, pcall, require
local find, format, gsub, lower, match, sub = string.find, string.format, string.gsub,
  string.lower, string.match, string.sub
local concat = table.concat
local ffi = require "ffi"
local floor = math.floor
local loaded = package.loaded

local core = require "gust.core"
local class = require "gust.class"
local escape = require "gust.escape"
local httputil = require "gust.httputil"
local add_value = httputil._add_value
local log = require "gust.log"
local errors = require "gust.web.errors"
local request = require "gust.web.request"
local render = require "gust.web.render"
local security = require "gust.web.security"

local xhtml_escape, json_encode = escape.xhtml_escape, escape.json_encode
local normalize_header_name = httputil.normalize_header_name
local RESPONSES = errors.responses
local HTTPError, MissingArgumentError, Finish = errors.HTTPError, errors.MissingArgumentError,
  errors.Finish
local is_http_error, on_error, take_traceback = errors.is_http_error, errors.on_error,
  errors.take_traceback
local new_request, request_finished = request.new, request.finished
local parse_body, trim = request.parse_body, request.trim
local add_cookie_headers = security.add_cookie_headers
local log_escape = log.escape

-- Verbs a handler may define, in the order an Allow header lists them.
local SUPPORTED_METHODS = { "GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS" }
local VERBS = {}
for i = 1, #SUPPORTED_METHODS do
  VERBS[SUPPORTED_METHODS[i]] = lower(SUPPORTED_METHODS[i])
end
_M.SUPPORTED_METHODS, _M.VERBS = SUPPORTED_METHODS, VERBS
-- Methods that skip the XSRF check (Tornado: anything else is checked).
local XSRF_SAFE = { GET = true, HEAD = true, OPTIONS = true }

local function noop() end

local RequestHandler = {
  __name = "gust.web.RequestHandler",
  SUPPORTED_METHODS = SUPPORTED_METHODS,
  -- Defaults read through the class, so a new handler needs no fields
  -- beyond the ones new() gives it.
  _status = 200,
  _finished = false,
  _headers_written = false,
  _write_buffer = false, -- a string, then a table from the second write()
  _auto_finish = true,
}

-- Fields made on first read (LAZY[name](handler, cls) returns the value,
-- cls the table the handler's methods come from): current_user and
-- request. Lua hands a fall-through lookup to the class where it misses,
-- not to the instance, so laziness needs an instance __index function; one
-- is made per class (at extend()) and per route, never per request. The
-- makers look up what they need in cls, not through the handler: an
-- __index that re-enters itself is recursion to LuaJIT, which then
-- compiles the request's path as separate traces.
local LAZY = {}

function LAZY.current_user(self, cls)
  if rawget(self, "_current_user_done") then return nil end
  local v = cls.get_current_user(self)
  if v == nil then
    rawset(self, "_current_user_done", true)
  else
    rawset(self, "current_user", v)
  end
  return v
end

local function handler_index(cls)
  return function(self, k)
    local v = cls[k]
    if v == nil then
      local make = LAZY[k]
      if make ~= nil then return make(self, cls) end
    end
    return v
  end
end
RequestHandler.__index = handler_index(RequestHandler)

-- The end of a request -----------------------------------------------------------
--
-- A request is over when its response is finished, when its client goes
-- away first, or, for a handler that took its connection over (detach),
-- when the verb that did so returns. The core's close hook reports a client
-- gone by core handle, so the handlers it can report are kept here by
-- handle: those still open after the run that made them, which the core's
-- adopt hook names. Most requests are over within that run and never enter
-- the table (a new key per request is a call into LuaJIT's table code).

local inflight = {}
local current -- the handler made last: the one the run in progress made

local function over(self)
  return rawget(self, "_over") or (self._finished and not rawget(self, "_detached"))
end

-- The request is over: it leaves the table, and its on_close listeners run,
-- once (if it was made: nobody could add any otherwise).
local function request_over(self)
  if rawget(self, "_adopted") then inflight[rawget(self, "_req")] = nil end
  local r = rawget(self, "request")
  if r then request_finished(r) end
end

-- self.request is made on first read: a handler that never reads it (most
-- GETs) allocates none.
function LAZY.request(self, cls)
  local r = new_request(cls.application, rawget(self, "_req"), self._method, self._path,
                        self._query)
  rawset(self, "request", r)
  if over(self) then
    if rawget(self, "_gone") then r.connection_closed = true end
    request_finished(r)
  end
  return r
end

-- The client went away before the response was finished: the handler's
-- on_connection_close runs, and a handler still waiting on a lock or a
-- queue (long polling, DESIGN §4.5) is woken with nil, "closed", so no dead
-- request lingers; then the request is over.
local function client_left(req)
  local self = inflight[req]
  if self == nil or over(self) then return end
  self._over, self._gone = true, true
  local r = rawget(self, "request")
  if r then r.connection_closed = true end
  local ok, err = xpcall(self.on_connection_close, on_error, self)
  if not ok then
    log.error("Exception in on_connection_close: %s", take_traceback(err) or tostring(err))
  end
  local co = rawget(self, "_co")
  local locks = loaded["gust.locks"]
  if co and locks and locks.waiting(co) then locks.cancel(co, "closed") end
  request_over(self)
end

-- The run that made the handler of req ended and the core can still report
-- the request; co is the coroutine of that run if it is suspended (one that
-- returned goes back to the core's pool, to run other requests).
local function adopt(req, co)
  local self = current
  if self ~= nil and rawget(self, "_req") == req and not over(self) then
    inflight[req] = self
    self._adopted = true
    self._co = co
  end
end
core.set_close_hook(client_left, adopt)

function RequestHandler.__tostring(self)
  return "<" .. (self.__name or "RequestHandler") .. ">"
end

-- Handler:extend(proto?) -> subclass.
function RequestHandler.extend(base, proto)
  local cls = class.extend(base, proto)
  cls.__index = handler_index(cls)
  return cls
end

-- The metatable a route's handlers get: a flattened copy of the class chain
-- (the copy's `super` keeps is_instance() true) that also holds the
-- route's application and settings, so a new handler table needs only the
-- fields of its request. Made once per route, at its first request, so
-- methods must be defined before the app serves (as they are in practice).
local function instance_mt(cls, app)
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
  mt.super = cls
  mt.application = app
  mt.settings = app.settings
  mt.__index = handler_index(mt)
  return mt
end

-- Hooks a subclass overrides.
RequestHandler.initialize = noop
RequestHandler.prepare = noop
RequestHandler.on_finish = noop
RequestHandler.on_connection_close = noop
RequestHandler.set_default_headers = noop
RequestHandler.get_current_user = noop

-- Cookies, signed cookies and XSRF; templates.
for name, fn in pairs(security.methods) do RequestHandler[name] = fn end
for name, fn in pairs(render.methods) do RequestHandler[name] = fn end

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
  self._write_buffer = false
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
  add_value(headers_of(self), name, value)
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
  -- One chunk (most responses) is kept as it is: a table only from the
  -- second on. The core takes either.
  local buf = self._write_buffer
  if not buf then
    self._write_buffer = chunk
  elseif type(buf) == "string" then
    self._write_buffer = { buf, chunk }
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
  local body = type(buf) == "string" and buf or concat(buf)
  if #body < GZIP_MIN_LENGTH then return buf end
  h["Content-Encoding"] = "gzip"
  h["Content-Length"] = nil
  return core.gzip(body)
end

-- Bookkeeping once the core has the whole response: Tornado's finish()
-- tail. on_finish runs exactly once, and an error in it is only logged.
local function finished(self)
  self._finished = true
  request_over(self)
  local log_function = self.settings.log_function
  if log_function then
    local ok, err = pcall(log_function, self)
    if not ok then log.error("Exception in log_function: %s", tostring(err)) end
  end
  local on_finish = self.on_finish
  if on_finish == noop then return end -- the default: nothing to protect
  local ok, err = xpcall(on_finish, on_error, self)
  if not ok then log.error("Exception in on_finish: %s", take_traceback(err) or tostring(err)) end
end

-- Sends the headers (first call) and what has been written so far as a
-- chunk. Yields in the core until the socket took it. Returns true, or
-- nil, "closed" when the client has gone away.
function RequestHandler:flush()
  if self._finished then error("Cannot flush() after finish()", 2) end
  local req = self._req
  local buf = self._write_buffer
  self._write_buffer = false
  if not self._headers_written then
    self._headers_written = true
    add_cookie_headers(self)
    return req:flush(self._status, rawget(self, "_reason"), rawget(self, "_headers"), buf or "")
  end
  -- An empty chunk would end a chunked body, so there is nothing to send.
  if not buf then return true end
  -- The core ignores status and headers once the head is out, but its
  -- argument check still wants a status.
  return req:flush(self._status, nil, nil, buf)
end

-- req:finish(status, nil, nil, body) through the FFI, for a response with
-- no reason phrase or headers of its own and at most one body string (most
-- of them): LuaJIT compiles this call into the request's trace, where the
-- Lua C function req:finish ends it. Absent when gust's C core is not this
-- process (the specs' fake core, plain luajit): req:finish then.
pcall(ffi.cdef, "int gust_lua_finish_plain(void *h, int status, const char *body, size_t len);")
local finish_plain
do
  local ok, fn = pcall(function() return ffi.C.gust_lua_finish_plain end)
  if ok then finish_plain = fn end
end

-- Headers that describe a body, dropped when there is none (Tornado's
-- _clear_representation_headers).
local REPRESENTATION_HEADERS = { "Content-Encoding", "Content-Language", "Content-Type" }

function RequestHandler:finish(chunk)
  if self._finished then error("finish() called twice", 2) end
  if chunk ~= nil then self:write(chunk) end
  local req = self._req
  local buf = self._write_buffer or nil
  self._write_buffer = false
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
    add_cookie_headers(self)
    local reason, headers = rawget(self, "_reason"), rawget(self, "_headers")
    local rc = -1
    if finish_plain and reason == nil and headers == nil and type(req) == "userdata"
       and (buf == nil or type(buf) == "string") then
      rc = finish_plain(req, status, buf, buf and #buf or 0)
    end
    if rc == 1 then
      ok = true
    elseif rc == 0 then
      ok, err = nil, "closed"
    else
      ok, err = req:finish(status, reason, headers, buf)
    end
  else
    ok, err = req:finish(self._status, nil, nil, buf)
  end
  finished(self)
  return ok, err
end

-- Ends the response with bytes [offset, offset + length) of a file, sent by
-- the core without passing through Lua (StaticFileHandler).
function RequestHandler:_finish_with_file(path, offset, length)
  if self._finished then error("finish() called twice", 2) end
  if self._headers_written then error("Cannot send a file after headers have been written", 2) end
  local req = self._req
  self._headers_written = true
  self._write_buffer = false
  add_cookie_headers(self)
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
  finished(self)
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

-- The headers set so far, Set-Cookie ones included, as a response head
-- would carry them now (nil when there are none): for a handler that
-- writes its own head on a connection it takes over (a WebSocket's 101).
function RequestHandler:_outgoing_headers()
  add_cookie_headers(self)
  self._new_cookies = nil
  return rawget(self, "_headers")
end

-- Takes the connection over (Tornado's detach()), for protocols that
-- start with an HTTP handshake (WebSocket): the HTTP exchange ends here,
-- with no response (the caller writes its own on the stream) and no
-- on_finish. The request lasts as long as the verb that detached: its
-- on_close listeners run once that returns. Returns the core's stream
-- (with the TLS session and any bytes read past the request), or nil and
-- an error ("closed" when the client left).
function RequestHandler:detach()
  if self._finished then error("Cannot detach() after finish()", 2) end
  if self._headers_written then error("Cannot detach() after headers have been written", 2) end
  local stream, err = request.detach(self.request)
  if not stream then return nil, err end
  self._headers_written = true
  self._finished = true
  self._auto_finish = false
  self._detached = true
  return stream
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
      finished(self)
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

-- "GET /uri (1.2.3.4)" for log lines, escaped (gust.log.escape): the URI
-- is the client's.
function RequestHandler:_request_summary()
  local r = self.request
  return log_escape(tostring(r.method) .. " " .. tostring(r.uri) .. " (" .. tostring(r.remote_ip)
                    .. ")")
end

-- An HTTPError's log_message often quotes the request (a path, an argument
-- name), so it is escaped too; a traceback keeps its lines.
function RequestHandler:log_exception(err, tb)
  if is_http_error(err) then
    if err.log_message then
      log.warn("%d %s: %s", err.status_code, self:_request_summary(), log_escape(err.log_message))
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
  finished(self)
end

-- Tornado's _handle_request_exception.
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
-- is asynchronous. begin() is all of it up to the verb: it returns the
-- verb's function, or nil when prepare() finished the request. The route's
-- decoded captures go to the verb: execute passes any number, execute0 and
-- execute1 none and one (most routes), without varargs, which LuaJIT does
-- not compile on this path.
local function begin(self, kwargs, method)
  -- Hooks left at their default are not called (this runs for every
  -- request, and most classes define none of them).
  local hook = self.set_default_headers
  if hook ~= noop then hook(self) end
  hook = self.initialize
  if hook ~= noop then hook(self, kwargs) end
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
  hook = self.prepare
  if hook ~= noop then
    hook(self)
    if self._finished then return nil end
  end
  return fn
end

local function execute(self, kwargs, method, ...)
  local fn = begin(self, kwargs, method)
  if fn == nil then return end
  fn(self, ...)
  if self._auto_finish and not self._finished then self:finish() end
end

local function execute0(self, kwargs, method)
  local fn = begin(self, kwargs, method)
  if fn == nil then return end
  fn(self)
  if self._auto_finish and not self._finished then self:finish() end
end

local function execute1(self, kwargs, method, cap)
  local fn = begin(self, kwargs, method)
  if fn == nil then return end
  fn(self, cap)
  if self._auto_finish and not self._finished then self:finish() end
end

-- fn(self, ...) with the request's error handling: an error raised in it
-- ends the request (an error page, or a cut connection once headers went
-- out) and is logged. For handlers with a life cycle of their own
-- (FallbackHandler). A request whose connection was taken over (detach)
-- is over once fn has returned.
local function run_protected(self, fn, ...)
  local ok, err = xpcall(fn, on_error, self, ...)
  if not ok then handle_request_exception(self, err, take_traceback(err)) end
  if rawget(self, "_detached") then
    self._over = true
    request_over(self)
  end
end
_M.run_protected = run_protected

-- Runs the request; the Application calls this on a fresh handler.
-- Subclasses with a life cycle of their own override it. (run_protected,
-- inlined on this path of every request.)
function RequestHandler:_execute(kwargs, method, ...)
  local ok, err = xpcall(execute, on_error, self, kwargs, method, ...)
  if not ok then handle_request_exception(self, err, take_traceback(err)) end
  if rawget(self, "_detached") then
    self._over = true
    request_over(self)
  end
end

-- Arguments -------------------------------------------------------------------

local CONTROL_CHARS = "[%z\1-\8\14-\31]"

-- Whether v has one of CONTROL_CHARS, through strcspn: an FFI call is
-- compiled into the request's trace, where find() with a pattern would
-- leave it (about a thousand instructions per get_argument). strcspn
-- stops at the first byte of the set or at a NUL, and NUL is one too.
pcall(ffi.cdef, "size_t strcspn(const char *s, const char *reject);")
local strcspn = ffi.C.strcspn
local CONTROL_SET = "\1\2\3\4\5\6\7\8\14\15\16\17\18\19\20\21\22\23\24\25\26\27\28\29\30\31"

-- Tornado: control characters become spaces, and the value is stripped
-- unless strip is false.
local function clean(v, strip)
  if strcspn(v, CONTROL_SET) ~= #v then v = gsub(v, CONTROL_CHARS, " ") end
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


-- Static URLs ---------------------------------------------------------------------

function RequestHandler:static_url(path, include_host)
  self:require_setting("static_path", "static_url")
  local cls = self.settings.static_handler_class
    or require("gust.web.static").StaticFileHandler
  local url = cls:make_static_url(self.settings, path)
  if include_host then
    url = self.request.protocol .. "://" .. self.request.host .. url
  end
  return url
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

-- Decorator: the verb does not finish the response by returning; the handler stays
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

------------------------------------------------------------------------------
-- Making handlers

-- A handler of the route's class (spec) for the core's handle req.
local function new_handler(app, req, method, path, query, spec)
  local mt = spec.mt
  if mt == nil then
    mt = instance_mt(spec.handler_class, app)
    spec.mt = mt
  end
  -- The fields the life cycle sets, set here (a store to a key the table
  -- does not have yet is a call into LuaJIT's table code), with room for
  -- request.
  local handler = setmetatable({ _req = req, _method = method, _path = path, _query = query,
                                 _finished = false, _headers_written = false,
                                 _write_buffer = false }, mt)
  current = handler
  return handler
end

-- serve(app, req, method, path, query, spec, ...): what the
-- Application does with each request. A handler of the route's class
-- (spec, as the router found it) and its request, for the core's handle
-- req, run with the route's captures in the current coroutine.
function _M.serve(app, req, method, path, query, spec, ...)
  local handler = new_handler(app, req, method, path, query, spec)
  return handler:_execute(spec.kwargs, method, ...)
end

local default_execute = RequestHandler._execute

-- serve1(app, req, method, path, query, spec, ncaps, cap): serve()
-- for a route of no capture (ncaps 0) or one (cap), the common case, with
-- no varargs on the way and RequestHandler:_execute inlined for the
-- classes that keep it.
function _M.serve1(app, req, method, path, query, spec, ncaps, cap)
  local handler = new_handler(app, req, method, path, query, spec)
  local exec = handler._execute
  if exec ~= default_execute then
    if ncaps == 0 then return exec(handler, spec.kwargs, method) end
    return exec(handler, spec.kwargs, method, cap)
  end
  local ok, err
  if ncaps == 0 then
    ok, err = xpcall(execute0, on_error, handler, spec.kwargs, method)
  else
    ok, err = xpcall(execute1, on_error, handler, spec.kwargs, method, cap)
  end
  if not ok then handle_request_exception(handler, err, take_traceback(err)) end
  if rawget(handler, "_detached") then
    handler._over = true
    request_over(handler)
  end
end

return _M
