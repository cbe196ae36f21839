-- A test double for gust.core (see /work/contract.md), so the Lua framework
-- can be specified without the C core.
--
-- require "fake_core" installs package.loaded["gust.core"] (and a
-- gust.log that writes through core.log when the real one is not there
-- yet), and returns helpers:
--   fake.request(opts)            -> a "gust.request" stand-in that records
--                                    what finish/flush/send_file received
--   fake.fetch(app, method, uri, opts) -> runs app(req, method, path, query)
--                                    in a coroutine as the core does; -> req
--   fake.close(req)               -> what the core does when the client goes
--   fake.logs, fake.clear_logs(), fake.find_log(level, text)
-- Hashes are deterministic stand-ins, not SHA: tests only need "same input,
-- same output; different input, different output".

local bit = require "bit"
local band, bxor, rshift = bit.band, bit.bxor, bit.rshift
local byte, char, format, lower = string.byte, string.char, string.format, string.lower
local concat = table.concat

local fake = { logs = {}, clock = 1700000000, listeners = {} }
local core = { VERSION = "0.1.0" }
fake.core = core

-- The reason phrases the real core exports (src/core/http_response.c).
core.responses = {
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

function core.now() return fake.clock end
function core.time() return fake.clock end

function core.log(level, msg)
  fake.logs[#fake.logs + 1] = { level = level, msg = msg }
end
function core.log_level() return "debug" end

function fake.clear_logs()
  for i = #fake.logs, 1, -1 do fake.logs[i] = nil end
end

-- The first log line at `level` containing `text` (plain), or nil.
function fake.find_log(level, text)
  for _, entry in ipairs(fake.logs) do
    if entry.level == level and (text == nil or entry.msg:find(text, 1, true)) then
      return entry
    end
  end
  return nil
end

function core.listen(handler, port, address, opts)
  if port == 1 then return nil, "permission denied" end
  local listener = { handler = handler, port_ = port, address = address, opts = opts }
  function listener.port(l) return l.port_ end
  function listener.close(l) l.closed_ = true end
  fake.listeners[#fake.listeners + 1] = listener
  return listener
end

function core.set_close_hook(fn, adopt)
  fake.close_hook = fn
  fake.adopt_hook = adopt
end

-- h * 16777619 mod 2^32 in halves: a full product passes 2^53, where
-- LuaJIT's bit operations stop being exact (and differ once JIT-compiled).
local function mul32(h)
  local lo, hi = band(h, 0xffff), rshift(h, 16)
  return band(lo * 16777619 + band(hi * 16777619, 0xffff) * 65536, 0xffffffff)
end

-- FNV-1a over the input, stretched to n bytes by re-seeding per byte.
local function digest(s, n)
  local h = band(2166136261, 0xffffffff)
  for i = 1, #s do
    h = mul32(bxor(h, byte(s, i)))
  end
  local out = {}
  for i = 1, n do
    h = mul32(bxor(h, i * 40503))
    out[i] = char(band(rshift(h, 8), 255))
  end
  return concat(out)
end

function core.hmac_sha256(key, msg) return digest(key .. "\0" .. msg, 32) end
function core.sha1(s) return digest(s, 20) end

function core.hex(s)
  return (s:gsub(".", function(c) return format("%02x", byte(c)) end))
end

local rnd = 0
function core.random_bytes(n)
  rnd = rnd + 1
  return digest("random" .. rnd, n)
end

function core.b64encode(s) return require("gust.httputil")._b64encode(s) end
function core.b64decode(s) return require("gust.httputil")._b64decode(s) end

-- Not gzip: a marker the specs can recognise.
function core.gzip(s) return "GZIP(" .. s .. ")" end

function core.sleep() return coroutine.yield("sleep") end
function core.spawn(fn, ...) return coroutine.wrap(fn)(...) end

package.loaded["gust.core"] = core

-- gust.log is written by someone else; until it exists, a minimal one with
-- the same surface (string.format semantics) that logs through core.log.
local function module_exists(name)
  if package.preload[name] then return true end
  local path = name:gsub("%.", "/")
  for template in package.path:gmatch("[^;]+") do
    local f = io.open((template:gsub("%?", path)), "r")
    if f then f:close() return true end
  end
  return false
end

if not package.loaded["gust.log"] and not module_exists("gust.log") then
  local log = {}
  for _, level in ipairs({ "error", "warn", "info", "debug" }) do
    log[level] = function(fmt, ...)
      core.log(level, select("#", ...) > 0 and format(fmt, ...) or tostring(fmt))
    end
  end
  package.loaded["gust.log"] = log
end

------------------------------------------------------------------------------
-- The request handle

local Req = {}
Req.__index = Req
Req.__name = "gust.request"

local function join(body)
  if body == nil then return nil end
  if type(body) == "table" then return concat(body) end
  return body
end

-- opts: uri ("/"), headers (map or array of {name, value}), body, version,
-- remote_ip, protocol, yield_on_flush.
function fake.request(opts)
  opts = opts or {}
  local flat = {}
  local headers = opts.headers or {}
  if headers[1] then
    for _, pair in ipairs(headers) do
      flat[#flat + 1] = lower(pair[1])
      flat[#flat + 1] = pair[2]
    end
  else
    local names = {}
    for k in pairs(headers) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do
      flat[#flat + 1] = lower(k)
      flat[#flat + 1] = headers[k]
    end
  end
  return setmetatable({
    _uri = opts.uri or "/",
    _headers = flat,
    _body = opts.body or "",
    _version = opts.version or "HTTP/1.1",
    _remote_ip = opts.remote_ip or "127.0.0.1",
    _protocol = opts.protocol or "http",
    _closed = false,
    yield_on_flush = opts.yield_on_flush,
    calls = {},          -- every method call, by name, in order
    flushes = {},        -- { status, reason, headers, body } per flush
    finish_count = 0,
  }, Req)
end

local function note(self, name)
  self.calls[#self.calls + 1] = name
end

function Req:headers()
  note(self, "headers")
  if self._closed then return nil, "closed" end
  local copy = {}
  for i, v in ipairs(self._headers) do copy[i] = v end
  return copy
end

function Req:body()
  note(self, "body")
  if self._closed then return nil, "closed" end
  return self._body
end

function Req:uri()
  note(self, "uri")
  if self._closed then return nil, "closed" end
  return self._uri
end

function Req:version() note(self, "version") return self._version end
function Req:remote_ip() note(self, "remote_ip") return self._remote_ip end
function Req:protocol() note(self, "protocol") return self._protocol end
function Req:closed() return self._closed end

-- The response as the client would see it, roughly: status, reason,
-- headers (the table Lua passed), body (joined).
-- Like the real core, a status is required even where it is ignored.
local function check_status(status, fname)
  if type(status) ~= "number" then
    error("bad argument #1 to '" .. fname .. "' (number expected, got " .. type(status) .. ")", 3)
  end
end

function Req:finish(status, reason, headers, body)
  note(self, "finish")
  check_status(status, "finish")
  self.finish_count = self.finish_count + 1
  if self._closed or self.response then return nil, "closed" end
  if self.flushes[1] then
    local first = self.flushes[1]
    local parts = {}
    for _, f in ipairs(self.flushes) do parts[#parts + 1] = f.body or "" end
    parts[#parts + 1] = join(body) or ""
    self.response = { status = first.status, reason = first.reason,
                      headers = first.headers or {}, body = concat(parts),
                      chunked = true, last_chunk = join(body) }
  else
    self.response = { status = status, reason = reason, headers = headers or {},
                      body = join(body) or "", raw_body = body }
  end
  return true
end

function Req:flush(status, reason, headers, body)
  note(self, "flush")
  check_status(status, "flush")
  if self._closed or self.response then return nil, "closed" end
  self.flushes[#self.flushes + 1] = { status = status, reason = reason,
                                      headers = headers, body = join(body) }
  if self.yield_on_flush then coroutine.yield("flush") end
  return true
end

-- The connection is cut: what was flushed is all the client got.
function Req:abort()
  note(self, "abort")
  self.aborted = true
  self._closed = true
end

-- The connection is handed over (a WebSocket): the handle is over, and a
-- stand-in stream records what is written to it.
function Req:detach()
  note(self, "detach")
  if self._closed or self.response then return nil, "closed" end
  self._closed = true
  local stream = { written = {} }
  function stream.write(st, data) st.written[#st.written + 1] = data return true end
  self.stream = stream
  return stream
end

function Req:send_file(status, reason, headers, path, offset, length)
  note(self, "send_file")
  check_status(status, "send_file")
  self.finish_count = self.finish_count + 1
  if self._closed or self.response then return nil, "closed" end
  local f = io.open(path, "rb")
  if not f then return nil, path .. ": No such file or directory" end
  f:close()
  self.response = { status = status, reason = reason, headers = headers or {},
                    body = "", file = { path = path, offset = offset, length = length } }
  return true
end

-- Case-insensitive look-up of a response header (value or array).
function Req:header(name)
  local h = self.response and self.response.headers or {}
  for k, v in pairs(h) do
    if lower(k) == lower(name) then return v end
  end
  return nil
end

function Req:status() return self.response and self.response.status end
function Req:body_text() return self.response and self.response.body end

------------------------------------------------------------------------------
-- Driving an application

-- Runs app as the core would: one coroutine per request, path and query
-- split raw. If the handler yields (a flush with yield_on_flush, say),
-- req.co is left suspended for the test to resume.
function fake.fetch(app, method, uri, opts)
  opts = opts or {}
  opts.uri = uri
  local req = fake.request(opts)
  local path, query = uri:match("^([^?]*)%??(.*)$")
  -- The core calls a callable table through its __call; coroutine.create
  -- wants a function.
  local co = coroutine.create(function(...) return app(...) end)
  req.co = co
  local ok, err = coroutine.resume(co, req, method, path, query)
  if not ok then error("the application raised (the core would 500): " .. tostring(err), 2) end
  -- As the core does when the first run ends with the request still open.
  if fake.adopt_hook and not req.response and not req._closed then
    fake.adopt_hook(req, coroutine.status(co) == "suspended" and co or nil)
  end
  return req
end

-- The client went away: the core calls the close hook (in its own
-- coroutine) for a request that has not finished.
function fake.close(req)
  req._closed = true
  if fake.close_hook and not req.response then
    local co = coroutine.create(fake.close_hook)
    local ok, err = coroutine.resume(co, req)
    if not ok then error(err, 2) end
  end
end

-- "a=1; b=2" from the Set-Cookie headers of a response, for the next
-- request's Cookie header.
function fake.cookies_from(req)
  local set = req:header("Set-Cookie")
  if set == nil then return "" end
  if type(set) == "string" then set = { set } end
  local out = {}
  for _, c in ipairs(set) do out[#out + 1] = c:match("^([^;]*)") end
  return concat(out, "; ")
end

return fake
