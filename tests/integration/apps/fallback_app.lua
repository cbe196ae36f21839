-- For test_fallback.py: a WSAPI application behind web.FallbackHandler next
-- to native handlers, and web.ProxyHandler routes to the test's Python
-- upstream ($UPSTREAM) and to a closed port ($DEAD_UPSTREAM).
--
--   /native                   native handler
--   /legacy/...               the WSAPI app with SCRIPT_NAME = /legacy
--   /proxy/...                ProxyHandler to $UPSTREAM, URI unchanged
--   /slowproxy/...            the same with request_timeout = 0.5
--   /dead/...                 ProxyHandler to $DEAD_UPSTREAM
--   everything else           the WSAPI app, SCRIPT_NAME = ""
--
-- WSAPI routes (PATH_INFO): /env (JSON of the CGI variables), /echo (the
-- body read with input:read in pieces), /form (a urlencoded form),
-- /stream?n=N&size=S&delay=D (N chunks of S bytes from a coroutine, D
-- seconds apart), /status (string status, header lists), /boom (raises),
-- /boom-late (raises after 1 MiB went out), /log (env.error).
local cjson = require "cjson"
local core = require "gust.core"
local web = require "gust.web"
local wsapi = require "gust.wsapi"

local function qs(env, name, default)
  local v = env.QUERY_STRING:match("[?&]?" .. name .. "=([^&]*)")
  return v or default
end

local legacy = {}

function legacy.run(env)
  local path = env.PATH_INFO
  if path == "/env" then
    local out = {}
    for _, k in ipairs({ "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING",
                         "REQUEST_URI", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
                         "SERVER_SOFTWARE", "GATEWAY_INTERFACE", "REMOTE_ADDR",
                         "CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_HOST", "HTTP_X_CUSTOM",
                         "HTTP_ACCEPT", "HTTP_COOKIE", "HTTP_X_TWICE", "HTTP_X_UNDER",
                         "HTTPS", "APP_PATH", "UNDEFINED_THING" }) do
      out[k] = env[k]
    end
    return 200, { ["Content-Type"] = "application/json" }, { cjson.encode(out) }
  elseif path == "/echo" then
    local parts = {}
    while true do
      local piece = env.input:read(4)
      if not piece then break end
      parts[#parts + 1] = piece
    end
    return 200, { ["Content-Type"] = "application/octet-stream",
                  ["X-Pieces"] = tostring(#parts) }, { table.concat(parts) }
  elseif path == "/form" then
    local body = env.input:read() or ""
    local fields = {}
    for k, v in body:gmatch("([^&=]+)=([^&]*)") do
      fields[k] = v:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    end
    return "201 Created", { ["Content-Type"] = "application/json" }, { cjson.encode(fields) }
  elseif path == "/stream" then
    local n, size = tonumber(qs(env, "n", "10")), tonumber(qs(env, "size", "1024"))
    local delay = tonumber(qs(env, "delay", "0"))
    local i = 0
    return 200, { ["Content-Type"] = "text/plain" }, function()
      i = i + 1
      if i > n then return nil end
      if delay > 0 and i > 1 then core.sleep(delay) end
      return string.rep(string.char(96 + (i - 1) % 26 + 1), size)
    end
  elseif path == "/status" then
    return "418 I Am Legacy", { ["Set-Cookie"] = { "a=1", "b=2" }, ["X-Legacy"] = "yes" },
           coroutine.wrap(function() coroutine.yield("short ") coroutine.yield("and stout") end)
  elseif path == "/boom" then
    error("legacy exploded on purpose")
  elseif path == "/boom-late" then
    local i = 0
    return 200, {}, function()
      i = i + 1
      if i > 16 then error("legacy exploded mid-stream") end
      return string.rep("x", 65536)
    end
  elseif path == "/log" then
    env.error:write("legacy wrote to env.error")
    return 200, { ["Content-Type"] = "text/plain" }, { "logged" }
  end
  return "404 Not Found", { ["Content-Type"] = "text/plain" }, { "legacy: no " .. path }
end

local Native = web.RequestHandler:extend()
function Native:get() self:write({ native = true, path = self.request.path }) end
function Native:post() self:write({ native = true, body = self.request.body }) end

local upstream = os.getenv("UPSTREAM") or "http://127.0.0.1:9"
local dead = os.getenv("DEAD_UPSTREAM") or "http://127.0.0.1:9"

return web.Application({
  { "/native", Native },
  { "/legacy/?.*", web.FallbackHandler,
    { fallback = wsapi.WSAPIContainer(legacy, { script_name = "/legacy" }) } },
  { "/proxy/.*", web.ProxyHandler, { upstream = upstream } },
  { "/slowproxy/.*", web.ProxyHandler, { upstream = upstream, request_timeout = 0.5 } },
  { "/dead/.*", web.ProxyHandler, { upstream = dead, connect_timeout = 2 } },
  { ".*", web.FallbackHandler, { fallback = wsapi.WSAPIContainer(legacy) } },
})
