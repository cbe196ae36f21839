-- gust.web.request: the request a handler serves (Tornado's
-- HTTPServerRequest, self.request), over the core's "gust.request" handle.
--
-- method, path and query are set when it is made; everything else
-- (headers, arguments, files, cookies, remote_ip, ...) is built by BUILDERS
-- the first time it is read and then stored in the table, so later reads
-- are plain hits and a hello-world request builds none of it.
--
-- A request is over when its response is finished, when its client goes
-- away first, or, when its handler took the connection over (detach, for a
-- WebSocket), once that handler is done with it (gust.web.handler tells it,
-- finished()); then its on_close listeners run, once.

local _M = { _VERSION = "0.1.0" }

local type, tostring, tonumber, select, error = type, tostring, tonumber, select, error
local pairs, next, xpcall = pairs, next, xpcall
local setmetatable, rawget, rawset = setmetatable, rawget, rawset
local unpack = unpack or table.unpack -- luacheck: ignore 143
local byte, find, format, lower, match = string.byte, string.find, string.format,
  string.lower, string.match

local ffi = require "ffi"
local httputil = require "gust.httputil"
local log = require "gust.log"

local HTTPHeaders = httputil.HTTPHeaders

local Request = { __name = "gust.web.HTTPServerRequest" }
local request_methods = {}
local BUILDERS = {}

-- The field k of r built by build, and kept (unless nil).
local function built(r, k, build)
  local v = build(r)
  if v ~= nil then rawset(r, k, v) end
  return v
end

function Request.__index(r, k)
  local build = BUILDERS[k]
  if build then return built(r, k, build) end
  return request_methods[k]
end

-- field(r, k): r[k] for a builder that needs another field. Not through
-- Request.__index: a metamethod that re-enters itself is recursion to
-- LuaJIT, which then compiles the request's path as separate traces.
local function field(r, k)
  local v = rawget(r, k)
  if v == nil then v = built(r, k, BUILDERS[k]) end
  return v
end

function Request.__tostring(r)
  return format("HTTPServerRequest(protocol=%q, host=%q, method=%q, uri=%q, version=%q, remote_ip=%q)",
                r.protocol, r.host, r.method, r.uri, r.version, r.remote_ip)
end
_M.HTTPServerRequest = Request

------------------------------------------------------------------------------
-- Fields built on first read

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

-- Whether the request has a body, through the FFI: a Lua C function (a
-- bodiless GET's req:body()) would end the request's trace. Absent when
-- gust's C core is not this process (the specs' fake core, plain luajit).
pcall(ffi.cdef, "int gust_lua_has_body(void *h);")
local has_body
do
  local ok, fn = pcall(function() return ffi.C.gust_lua_has_body end)
  if ok then has_body = fn end
end

local function bodiless(r)
  local req = r._req
  return has_body ~= nil and type(req) == "userdata" and has_body(req) == 0
end

-- Fills body_arguments and files together. Returns true, or nil and the
-- parser's message for a malformed body.
local function parse_body(r)
  local args, files = {}, {}
  local ok, err = true, nil
  local body = bodiless(r) and "" or r.body
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
  if not ok then log.warn("%s", log.escape(err)) end
  return rawget(r, k)
end
function BUILDERS.body_arguments(r) return lazy_body(r, "body_arguments") end
function BUILDERS.files(r) return lazy_body(r, "files") end

-- Without body arguments (every GET) the query's table is the answer
-- itself: nothing to merge, so nothing is copied (and a bodiless request
-- does not even make its empty body_arguments and files).
function BUILDERS.arguments(r)
  if rawget(r, "body_arguments") == nil and bodiless(r) then
    return field(r, "query_arguments")
  end
  local body_arguments = field(r, "body_arguments")
  if next(body_arguments) == nil then return field(r, "query_arguments") end
  local out = {}
  for name, list in pairs(field(r, "query_arguments")) do
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
-- The end of a request: its on_close listeners.
--
-- The listeners added with on_close() run when the request is over, for
-- whatever reason (its handler says when: gust.web.handler), in the order
-- they were added, each under xpcall.

local function call_listener(fn, ...)
  local ok, err = xpcall(fn, log.traceback, ...)
  if not ok then log.error("Exception in on_close callback: %s", tostring(err)) end
end

-- finished(r): the request is over; its listeners run, once.
local function finished(r)
  if r._over then return end
  r._over = true
  local listeners = rawget(r, "_listeners")
  if listeners then
    r._listeners = nil
    for i = 1, #listeners do
      local l = listeners[i]
      call_listener(l[1], unpack(l, 3, l[2] + 2))
    end
  end
end
_M.finished = finished

-- request:on_close(fn, ...): fn(...) runs once when the request is over:
-- its response finished, or its client gone first (then
-- request.connection_closed is true), or, for a connection its handler took
-- over (a WebSocket), when the handler's method returns (the session is
-- over). Added when the request is already over, fn runs at once. An error
-- in fn is logged.
function request_methods:on_close(fn, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'on_close' (function expected, got " .. type(fn) .. ")", 2)
  end
  if self._over then
    call_listener(fn, ...)
    return
  end
  local listeners = rawget(self, "_listeners")
  if listeners == nil then
    listeners = {}
    self._listeners = listeners
  end
  listeners[#listeners + 1] = { fn, select("#", ...), ... }
end

-- new(app, req, method, path, query) -> the request of the core handle req,
-- until finished().
function _M.new(app, req, method, path, query)
  return setmetatable({ _req = req, _app = app, method = method, path = path,
                        query = query or "", _over = false }, Request)
end

-- detach(request) -> stream | nil, err: the core hands over the request's
-- connection (with its TLS session and the bytes read past the request)
-- and stops reporting on it.
function _M.detach(r)
  return r._req:detach()
end

_M.parse_body = parse_body
_M.trim = trim

return _M
