-- gust.httpclient: Tornado's AsyncHTTPClient. The wire is C's (connections
-- on the loop, async DNS, TLS, llhttp, gzip, the keep-alive pool); this
-- module owns the policy: URLs, default headers, redirects, max_clients and
-- the two calling styles.
--
--   local httpclient = require "gust.httpclient"
--   local client = httpclient.AsyncHTTPClient()
--   local resp, err = client:fetch("http://127.0.0.1:8888/", {method = "POST", body = "x"})
--   client:fetch(url, opts, function(resp, err) ... end)     -- callback style
--
-- fetch() in a task yields and returns resp, or nil and a transport error:
-- "connection refused", "timeout while connecting", "timeout", "timeout in
-- request queue", "dns: <host>: <reason>", "tls: certificate verify failed:
-- <reason>", "malformed response: <reason>", "body larger than
-- max_body_size", "too many redirects", "connection closed", ...
--
-- An HTTP error status is not a transport error: as Tornado's fetch with
-- raise_error=False, a final status >= 400 still returns resp, with
-- resp.error set to an HTTPClientError ({code, message, response}) and
-- resp:rethrow() to raise it. resp.error is nil for 1xx-3xx.
--
-- AsyncHTTPClient() with no argument returns one shared client (Tornado's
-- pseudo-singleton); with options it makes a new one. Options: max_clients
-- (10: more fetches wait in FIFO order), defaults (request fields applied
-- where a request leaves them nil), idle_timeout (60 s for pooled
-- connections). The connection pool itself is shared by all clients.
local core = require "gust.core"
local escape = require "gust.escape"
local httputil = require "gust.httputil"
local locks = require "gust.locks"

local type, pairs, error, tostring, tonumber = type, pairs, error, tostring, tonumber
local setmetatable, getmetatable, pcall = setmetatable, getmetatable, pcall
local running = coroutine.running
local find, match, sub, lower, upper, format = string.find, string.match, string.sub,
  string.lower, string.upper, string.format
local gsub = string.gsub
local concat = table.concat
local min = math.min

local http_fetch, spawn, now, b64encode = core.http_fetch, core.spawn, core.now, core.b64encode
local url_unescape = escape.url_unescape
local from_list = httputil.HTTPHeaders.from_list
local normalize_header_name = httputil.normalize_header_name
local Semaphore = locks.Semaphore

local _M = { _VERSION = "0.1.0" }

local USER_AGENT = "gust/" .. core.VERSION
local MIB = 1024 * 1024

local REQUEST_DEFAULTS = {
  method = "GET", connect_timeout = 20, request_timeout = 20,
  follow_redirects = true, max_redirects = 5, validate_cert = true,
  decompress_response = true, max_body_size = 100 * MIB,
  max_header_size = 64 * 1024, allow_nonstandard_methods = false,
}

local REQUEST_FIELDS = {
  url = "string", method = "string", headers = "table", body = "string",
  connect_timeout = "number", request_timeout = "number",
  follow_redirects = "boolean", max_redirects = "number", validate_cert = "boolean",
  ca_certs = "string", decompress_response = "boolean", max_body_size = "number",
  max_header_size = "number", streaming_callback = "function",
  header_callback = "function", auth_username = "string", auth_password = "string",
  auth_mode = "string", user_agent = "string", allow_nonstandard_methods = "boolean",
}

------------------------------------------------------------------------------
-- HTTPRequest

local HTTPRequest = { __name = "gust.httpclient.HTTPRequest" }
HTTPRequest.__index = HTTPRequest

function HTTPRequest.__tostring(self)
  return format("<HTTPRequest %s %s>", tostring(self.method), tostring(self.url))
end

-- Checks the fields; `level` points the error at the caller's caller.
local function check_request(r, level)
  for k, v in pairs(r) do
    local want = REQUEST_FIELDS[k]
    if want and type(v) ~= want then
      error(format("bad request field '%s' (%s expected, got %s)", k, want, type(v)), level)
    end
  end
  if type(r.url) ~= "string" then
    error("bad argument #1 (url string expected, got " .. type(r.url) .. ")", level)
  end
  local method = r.method
  if method and not find(method, "^[%w!#$%%&'*+%-.^_`|~]+$") then
    error("bad request field 'method' (not an HTTP token: " .. method .. ")", level)
  end
  if method and not r.allow_nonstandard_methods and r.body ~= nil
     and (method == "GET" or method == "HEAD") then
    error("body must be nil for a " .. method .. " request", level)
  end
  if r.auth_mode and r.auth_mode ~= "basic" then
    error("unsupported auth_mode: " .. r.auth_mode .. " (only \"basic\")", level)
  end
  local headers = r.headers
  if headers then
    local it, state, first = pairs(headers)
    if getmetatable(headers) and headers.pairs then it, state, first = headers:pairs() end
    for name, value in it, state, first do
      if type(name) ~= "string" or not find(name, "^[%w!#$%%&'*+%-.^_`|~]+$") then
        error("invalid header name: " .. tostring(name), level)
      end
      local values = type(value) == "table" and value or { value }
      for i = 1, #values do
        local v = values[i]
        if type(v) == "number" then v = tostring(v) end
        if type(v) ~= "string" or find(v, "[\r\n%z]") then
          error("invalid value for header " .. name .. " (a string without CR or LF expected)", level)
        end
      end
    end
  end
end

-- HTTPRequest(url, opts?) -> request; opts are the fields above. Fields it
-- leaves nil take the client's defaults, then REQUEST_DEFAULTS, at fetch.
function _M.HTTPRequest(url, opts)
  local r = {}
  if opts ~= nil then
    if type(opts) ~= "table" then
      error("bad argument #2 to 'HTTPRequest' (table expected, got " .. type(opts) .. ")", 2)
    end
    for k, v in pairs(opts) do r[k] = v end
  end
  r.url = url
  if r.method then r.method = upper(r.method) end
  check_request(r, 3)
  return setmetatable(r, HTTPRequest)
end
_M.HTTPRequestClass = HTTPRequest

------------------------------------------------------------------------------
-- HTTPResponse and HTTPClientError

local HTTPClientError = { __name = "gust.httpclient.HTTPClientError" }
HTTPClientError.__index = HTTPClientError

function HTTPClientError.__tostring(e)
  return format("HTTP %d: %s", e.code, e.message)
end
_M.HTTPClientError = HTTPClientError

local HTTPResponse = { __name = "gust.httpclient.HTTPResponse" }
HTTPResponse.__index = HTTPResponse

function HTTPResponse.__tostring(r)
  return format("<HTTPResponse %d %s %s>", r.code, r.reason, r.effective_url)
end

-- resp:rethrow(): raises resp.error when there is one.
function HTTPResponse:rethrow()
  if self.error then error(self.error, 2) end
end
_M.HTTPResponse = HTTPResponse

------------------------------------------------------------------------------
-- URLs

local url_cache, url_cache_n = {}, 0
local URL_CACHE_MAX = 256
local DEFAULT_PORT = { http = 80, https = 443 }

-- parse_url(url) -> parts | nil, err. Parts: scheme, tls, host, port,
-- target (path and query), host_header, userinfo, origin.
local function parse_url(url)
  local u = url_cache[url]
  if u then return u end
  local scheme, rest = match(url, "^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "invalid url: " .. url end
  scheme = lower(scheme)
  local dport = DEFAULT_PORT[scheme]
  if not dport then return nil, "unsupported url scheme: " .. scheme end
  rest = gsub(rest, "#.*$", "")
  local authority, target = match(rest, "^([^/?]*)(.*)$")
  if target == "" then target = "/" elseif sub(target, 1, 1) == "?" then target = "/" .. target end
  if find(target, "[%s%c]") then return nil, "invalid url: " .. url end
  local userinfo
  local at = match(authority, "^.*()@")
  if at then
    userinfo = sub(authority, 1, at - 1)
    authority = sub(authority, at + 1)
  end
  local host, port
  if sub(authority, 1, 1) == "[" then
    host, port = match(authority, "^%[([%x:.]+)%]:?(%d*)$")
  else
    host, port = match(authority, "^([^:]+):?(%d*)$")
  end
  if not host or host == "" then return nil, "invalid url: " .. url end
  port = port ~= "" and tonumber(port) or dport
  if port < 1 or port > 65535 then return nil, "invalid url: " .. url end
  local hosthdr = find(host, ":", 1, true) and ("[" .. host .. "]") or host
  if port ~= dport then hosthdr = hosthdr .. ":" .. port end
  u = {
    scheme = scheme, tls = scheme == "https", host = lower(host), port = port,
    target = target, host_header = hosthdr, userinfo = userinfo,
    origin = scheme .. "://" .. hosthdr,
  }
  if url_cache_n >= URL_CACHE_MAX then url_cache, url_cache_n = {}, 0 end
  url_cache[url], url_cache_n = u, url_cache_n + 1
  return u
end
_M._parse_url = parse_url

-- Resolves a Location against the URL it came from (RFC 3986 §5.2, with
-- dot segments removed from relative paths).
local function urljoin(base, loc)
  if match(loc, "^%a[%w+.-]*:") then return loc end
  local u = parse_url(base)
  if sub(loc, 1, 2) == "//" then return u.scheme .. ":" .. loc end
  if sub(loc, 1, 1) == "/" then return u.origin .. loc end
  local path = match(u.target, "^[^?]*")
  if loc == "" then return u.origin .. u.target end
  if sub(loc, 1, 1) == "?" then return u.origin .. path .. loc end
  local dir = match(path, "^(.*/)") or "/"
  local segs, out = dir .. loc, {}
  local query = match(segs, "(%?.*)$") or ""
  segs = gsub(segs, "%?.*$", "")
  for seg in (segs .. "/"):gmatch("([^/]*)/") do
    if seg == ".." then
      if #out > 1 then out[#out] = nil end
    elseif seg ~= "." then
      out[#out + 1] = seg
    end
  end
  local joined = concat(out, "/")
  if sub(segs, -1) == "/" or match(segs, "/%.%.?$") then joined = joined .. "/" end
  if sub(joined, 1, 1) ~= "/" then joined = "/" .. joined end
  return u.origin .. gsub(joined, "//+", "/") .. query
end
_M._urljoin = urljoin

------------------------------------------------------------------------------
-- One exchange

local REDIRECT = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }
local BODY_METHODS = { POST = true, PUT = true, PATCH = true }

-- The header list for the wire: ours first, the caller's after; a header
-- the caller sets replaces ours. `drop_body_headers` on a redirect to GET.
local function wire_headers(req, u, method, body, drop_body_headers, same_origin)
  local flat, n = {}, 0
  local given = {}
  local headers = req.headers
  if headers then
    local it, state, first = pairs(headers)
    if getmetatable(headers) and headers.pairs then it, state, first = headers:pairs() end
    for name, value in it, state, first do
      local l = lower(name)
      if not (drop_body_headers and (l == "content-length" or l == "content-type"
                                     or l == "transfer-encoding"))
         and not (l == "authorization" and not same_origin) then
        given[l] = true
        if type(value) == "table" then
          for i = 1, #value do
            flat[n + 1], flat[n + 2], n = name, tostring(value[i]), n + 2
          end
        else
          flat[n + 1], flat[n + 2], n = name, tostring(value), n + 2
        end
      end
    end
  end
  local mine, m = {}, 0
  if not given.host then mine[1], mine[2], m = "Host", u.host_header, 2 end
  if not given["user-agent"] then
    mine[m + 1], mine[m + 2], m = "User-Agent", req.user_agent or USER_AGENT, m + 2
  end
  if req.decompress_response and not given["accept-encoding"] then
    mine[m + 1], mine[m + 2], m = "Accept-Encoding", "gzip", m + 2
  end
  local user, pass = req.auth_username, req.auth_password
  if user == nil and u.userinfo then
    user, pass = match(u.userinfo, "^([^:]*):?(.*)$")
    user, pass = url_unescape(user), url_unescape(pass)
  end
  if user ~= nil and same_origin and not given.authorization then
    mine[m + 1], mine[m + 2], m = "Authorization",
      "Basic " .. b64encode(user .. ":" .. (pass or "")), m + 2
  end
  if (body ~= nil or BODY_METHODS[method]) and not given["content-length"]
     and not given["transfer-encoding"] then
    mine[m + 1], mine[m + 2], m = "Content-Length", tostring(body and #body or 0), m + 2
  end
  for i = 1, n do mine[m + i] = flat[i] end
  return mine
end

-- Tornado's header_callback protocol: the status line, each header line,
-- then an empty line, every one with its CRLF.
local function call_header_callback(cb, code, reason, flat)
  cb(format("HTTP/1.1 %d %s\r\n", code, reason))
  for i = 1, #flat - 1, 2 do
    cb(normalize_header_name(flat[i]) .. ": " .. flat[i + 1] .. "\r\n")
  end
  cb("\r\n")
end

-- Runs a user callback; on error the exchange is abandoned first.
local function guarded(h, cb, ...)
  local ok, err = pcall(cb, ...)
  if not ok then
    h:close()
    error(err, 0)
  end
end

-- -> code, reason, flat, body | nil, err
local function exchange(self, req, u, method, body, follow, flat_headers)
  local h, err = http_fetch(req, method, body, u.tls, u.host, u.port, u.target,
                            flat_headers, self.idle_timeout)
  if not h then return nil, err end
  local hcb, scb = req.header_callback, req.streaming_callback
  local code, reason, flat, redirecting
  while true do
    local kind, a, b, c, d = h:next()
    if kind == "done" then
      return a, b, c or flat, d
    elseif kind == "chunk" then
      if not redirecting then guarded(h, scb, a) end
    elseif kind == "headers" then
      code, reason, flat = a, b, c
      redirecting = follow and REDIRECT[code]
      if redirecting then
        redirecting = false
        for i = 1, #flat - 1, 2 do
          if flat[i] == "location" then redirecting = true break end
        end
      end
      if hcb and not redirecting then guarded(h, call_header_callback, hcb, code, reason, flat) end
    else
      return nil, a
    end
  end
end

local function location_of(flat)
  local loc
  for i = 1, #flat - 1, 2 do
    if flat[i] == "location" then loc = flat[i + 1] end
  end
  return loc
end

-- Follows redirects; -> resp | nil, err
local function run(self, req, start)
  local url, method, body = req.url, req.method, req.body
  local follow = req.follow_redirects
  local first = parse_url(url)
  local redirects, drop_body_headers = 0, false
  while true do
    local u, err = parse_url(url)
    if not u then return nil, err end
    local same_origin = u.origin == first.origin
    local code, reason, flat, rbody = exchange(self, req, u, method, body, follow,
      wire_headers(req, u, method, body, drop_body_headers, same_origin))
    if not code then return nil, reason end
    local loc = follow and REDIRECT[code] and location_of(flat)
    if not loc then
      local resp = setmetatable({
        code = code, reason = reason, headers = from_list(flat), body = rbody,
        effective_url = url, request_time = now() - start, request = req,
      }, HTTPResponse)
      if code >= 400 then
        resp.error = setmetatable({ code = code, message = reason, response = resp },
                                  HTTPClientError)
      end
      return resp
    end
    if redirects >= req.max_redirects then return nil, "too many redirects" end
    redirects = redirects + 1
    url = urljoin(url, loc)
    -- RFC 9110 §15.4: 303 turns any method but HEAD into GET; for 301
    -- and 302, user agents turn POST into GET; 307 and 308 keep both.
    if (code == 303 and method ~= "HEAD") or ((code == 301 or code == 302) and method == "POST") then
      method, body, drop_body_headers = "GET", nil, true
    end
  end
end

------------------------------------------------------------------------------
-- AsyncHTTPClient

local AsyncHTTPClient = { __name = "gust.httpclient.AsyncHTTPClient" }
AsyncHTTPClient.__index = AsyncHTTPClient

function AsyncHTTPClient.__tostring(self)
  return format("<AsyncHTTPClient max_clients=%d active=%d>", self.max_clients,
                self.max_clients - self._sem:value())
end

local shared

local function new_client(opts)
  opts = opts or {}
  local max_clients = opts.max_clients or 10
  if type(max_clients) ~= "number" or max_clients < 1 or max_clients % 1 ~= 0 then
    error("bad option 'max_clients' (integer >= 1 expected)", 3)
  end
  local defaults = {}
  for k, v in pairs(REQUEST_DEFAULTS) do defaults[k] = v end
  if opts.defaults then
    for k, v in pairs(opts.defaults) do defaults[k] = v end
  end
  for _, k in pairs({ "max_body_size", "max_header_size" }) do
    if opts[k] then defaults[k] = opts[k] end
  end
  return setmetatable({
    max_clients = max_clients, defaults = defaults,
    idle_timeout = opts.idle_timeout or 60,
    _sem = Semaphore(max_clients),
  }, AsyncHTTPClient)
end

setmetatable(AsyncHTTPClient, {
  __call = function(_, opts)
    if opts == nil or opts.force_instance == false then
      if not shared then shared = new_client(opts) end
      return shared
    end
    return new_client(opts)
  end,
})
_M.AsyncHTTPClient = AsyncHTTPClient

-- Makes the request this fetch runs: the caller's fields, then the
-- client's defaults.
local function prepare(self, request, opts)
  local req = {}
  if type(request) == "string" then
    if opts ~= nil and type(opts) ~= "table" then
      error("bad argument #2 to 'fetch' (table expected, got " .. type(opts) .. ")", 3)
    end
    if opts then for k, v in pairs(opts) do req[k] = v end end
    req.url = request
  elseif getmetatable(request) == HTTPRequest then
    if opts ~= nil then error("fetch: options cannot be combined with an HTTPRequest", 3) end
    for k, v in pairs(request) do req[k] = v end
  else
    error("bad argument #1 to 'fetch' (url or HTTPRequest expected, got " .. type(request) .. ")", 3)
  end
  for k, v in pairs(self.defaults) do
    if req[k] == nil then req[k] = v end
  end
  req.method = upper(req.method)
  check_request(req, 4)
  return setmetatable(req, HTTPRequest)
end

local function fetch_now(self, req)
  local start = now()
  local ok, err = self._sem:acquire(min(req.connect_timeout, req.request_timeout))
  if not ok then
    return nil, err == "timeout" and "timeout in request queue" or err
  end
  local pok, resp, ferr = pcall(run, self, req, start)
  self._sem:release()
  if not pok then error(resp, 0) end
  return resp, ferr
end

local function fetch_task(self, req, callback)
  return callback(fetch_now(self, req))
end

-- client:fetch(url | HTTPRequest, opts?, callback?) -> resp | nil, err
-- With a callback it returns at once and callback(resp, err) runs in a
-- task of its own; without, it must run in a task, and yields.
function AsyncHTTPClient:fetch(request, opts, callback)
  if type(opts) == "function" and callback == nil then opts, callback = nil, opts end
  if callback ~= nil and type(callback) ~= "function" then
    error("bad argument #3 to 'fetch' (function expected, got " .. type(callback) .. ")", 2)
  end
  local req = prepare(self, request, opts)
  if callback then
    spawn(fetch_task, self, req, callback)
    return nil
  end
  local co, main = running()
  if co == nil or main then
    error("fetch() without a callback must be called from a task (it yields)", 2)
  end
  return fetch_now(self, req)
end

-- Closes idle pooled connections (they are shared by every client).
function AsyncHTTPClient.close(_)
  core.http_close_idle()
end

-- _M.fetch(url, opts?, callback?): the shared client's fetch.
function _M.fetch(request, opts, callback)
  return AsyncHTTPClient():fetch(request, opts, callback)
end

return _M
