-- gust.wsapi (WSAPIContainer behind web.FallbackHandler) and web.ProxyHandler
-- against the real core, in-process: testing.serve + gust.httpclient.
--
--   busted --lua=luajit tests/lua/wsapi_spec.lua
local cjson = require "cjson"
local core = require "gust.core"
local httpclient = require "gust.httpclient"
local log = require "gust.log"
local netutil = require "gust.netutil"
local testing = require "gust.testing"
local web = require "gust.web"
local wsapi = require "gust.wsapi"

local AsyncHTTPClient = httpclient.AsyncHTTPClient

-- Log lines at error/warn level while fn runs -> list of strings.
local function capture_logs(fn)
  local lines = {}
  local saved_error, saved_warn = log.error, log.warn
  local function keep(fmt, ...)
    lines[#lines + 1] = select("#", ...) > 0 and fmt:format(...) or tostring(fmt)
  end
  log.error, log.warn = keep, keep
  local ok, err = pcall(fn)
  log.error, log.warn = saved_error, saved_warn
  if not ok then error(err, 0) end
  return lines
end

local function find_line(lines, text)
  for _, l in ipairs(lines) do
    if l:find(text, 1, true) then return l end
  end
end

------------------------------------------------------------------------------
-- A WSAPI application, written as WSAPI apps are: no gust in sight (except
-- /sleepy, which shows that the app runs in the request's coroutine).

local legacy = {}

local function text(status, s, extra)
  local headers = { ["Content-Type"] = "text/plain" }
  for k, v in pairs(extra or {}) do headers[k] = v end
  return status, headers, coroutine.wrap(function() coroutine.yield(s) end)
end

local ENV_KEYS = {
  "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_URI",
  "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE",
  "GATEWAY_INTERFACE", "REMOTE_ADDR", "CONTENT_TYPE", "CONTENT_LENGTH",
  "HTTP_HOST", "HTTP_X_CUSTOM", "HTTP_COOKIE", "HTTP_X_MULTI", "HTTP_X_UNDER_SCORE",
  "HTTP_PROXY", "HTTPS", "APP_PATH", "NOT_A_VARIABLE",
}

function legacy.run(env)
  local p = env.PATH_INFO
  if p == "/env" then
    local out = {}
    for _, k in ipairs(ENV_KEYS) do out[k] = env[k] end
    out.input_type = type(env.input)
    out.error_type = type(env.error)
    out.lowercase_missing = env.not_there == nil
    return 200, { ["Content-Type"] = "application/json" }, { cjson.encode(out) }
  elseif p == "/read" then
    local pieces = {}
    local first = env.input:read(3)
    local rest = env.input:read()
    pieces[#pieces + 1] = first or "<nil>"
    pieces[#pieces + 1] = rest or "<nil>"
    pieces[#pieces + 1] = env.input:read() == nil and "eof" or "more"
    pieces[#pieces + 1] = env.input:read(1) == nil and "eof" or "more"
    pieces[#pieces + 1] = env.input:read("*a") == "" and "empty" or "?"
    return 200, { ["Content-Type"] = "text/plain" }, { table.concat(pieces, "|") }
  elseif p == "/lines" then
    local out = {}
    for line in env.input:lines() do out[#out + 1] = "[" .. line .. "]" end
    return 200, {}, { table.concat(out) }
  elseif p == "/form" then
    local body = env.input:read(tonumber(env.CONTENT_LENGTH) or 0) or ""
    local name = body:match("name=([^&]*)") or "?"
    return text(201, env.REQUEST_METHOD .. " name=" .. name)
  elseif p == "/status-string" then
    return text("404 Nowhere To Be Found", "missing")
  elseif p == "/status-unknown" then
    return text(299, "odd")
  elseif p == "/cookies" then
    return 200, { ["Set-Cookie"] = { "a=1", "b=2" }, ["X-Num"] = 42, Status = "500" }, { "two cookies" }
  elseif p == "/string-body" then
    return 200, {}, "a plain string"
  elseif p == "/no-body" then
    return 204, {}, nil
  elseif p == "/function-body" then
    local i = 0
    return 200, {}, function()
      i = i + 1
      if i <= 3 then return "part" .. i .. ";" end
    end
  elseif p == "/big" then
    local n = tonumber(env.QUERY_STRING:match("n=(%d+)")) or 64
    local chunk = ("0123456789abcdef"):rep(1024) -- 16 KiB
    local i = 0
    return 200, { ["Content-Type"] = "application/octet-stream" }, function()
      i = i + 1
      if i <= n then return chunk end
    end
  elseif p == "/boom" then
    error("legacy app exploded")
  elseif p == "/boom-iter" then
    return 200, {}, function() error("iterator exploded") end
  elseif p == "/boom-late" then
    local i = 0
    local chunk = ("x"):rep(16384)
    return 200, {}, function()
      i = i + 1
      if i > 10 then error("iterator exploded late") end
      return chunk
    end
  elseif p == "/bad-status" then
    return "teapot", {}, {}
  elseif p == "/inject" then
    return 200, { ["X-Bad"] = "a\r\nSet-Cookie: evil=1" }, { "no" }
  elseif p == "/log" then
    env.error:write("something ", "went ", "wrong\n")
    return text(200, "logged")
  elseif p == "/sleepy" then
    core.sleep(0.05)
    return text(200, "slept")
  end
  return text(404, "legacy 404 for " .. p)
end

local Native = web.RequestHandler:extend()
function Native:get() self:write("native " .. self.request.path) end

local container = wsapi.WSAPIContainer(legacy)
local prefixed = wsapi.WSAPIContainer(legacy.run, { script_name = "/legacy", env = { EXTRA = "x" } })
local streaming = wsapi.WSAPIContainer(legacy, { buffer_size = 0, script_name = "/each" })

local app = web.Application({
  { "/native", Native },
  { "/legacy/?.*", web.FallbackHandler, { fallback = prefixed } },
  { "/each/.*", web.FallbackHandler, { fallback = streaming } },
  { ".*", web.FallbackHandler, { fallback = container } },
}, { xsrf_cookies = true, cookie_secret = "s" })

local base, listener

local function fetch(path, opts)
  return AsyncHTTPClient():fetch(base .. path, opts)
end

describe("gust.wsapi", function()
  setup(function() base, listener = testing.serve(app) end)
  teardown(function() listener:close() end)

  it("fills wsapi_env with the CGI variables and the request headers", function()
    testing.run(function()
      local r = assert(fetch("/env?a=1&b=%20x", {
        headers = { ["X-Custom"] = "yes", Cookie = "c=1", ["X-Multi"] = { "1", "2" },
                    ["X_Under_Score"] = "dropped", Proxy = "http://evil" },
      }))
      assert.equal(200, r.code)
      assert.equal("application/json", r.headers["Content-Type"])
      local env = cjson.decode(r.body)
      assert.equal("GET", env.REQUEST_METHOD)
      assert.equal("", env.SCRIPT_NAME)
      assert.equal("/env", env.PATH_INFO)
      assert.equal("a=1&b=%20x", env.QUERY_STRING)
      assert.equal("/env?a=1&b=%20x", env.REQUEST_URI)
      assert.equal("127.0.0.1", env.SERVER_NAME)
      assert.equal(base:match(":(%d+)$"), env.SERVER_PORT)
      assert.equal("HTTP/1.1", env.SERVER_PROTOCOL)
      assert.equal("gust/" .. core.VERSION, env.SERVER_SOFTWARE)
      assert.equal("CGI/1.1", env.GATEWAY_INTERFACE)
      assert.equal("127.0.0.1", env.REMOTE_ADDR)
      assert.equal(base:match("//(.*)"), env.HTTP_HOST)
      assert.equal("yes", env.HTTP_X_CUSTOM)
      assert.equal("c=1", env.HTTP_COOKIE)
      assert.equal("1, 2", env.HTTP_X_MULTI)
      assert.equal("", env.HTTP_X_UNDER_SCORE) -- names with "_" are not passed
      assert.equal("", env.HTTP_PROXY)         -- httpoxy
      assert.equal("", env.CONTENT_TYPE)       -- undefined metavariables read as ""
      assert.equal("", env.CONTENT_LENGTH)
      assert.equal("", env.HTTPS)
      assert.equal("", env.NOT_A_VARIABLE)
      assert.is_true(env.lowercase_missing)
      assert.equal("table", env.input_type)
      assert.equal("table", env.error_type)
      assert.truthy(env.APP_PATH:find("tests/lua", 1, true), env.APP_PATH)
    end)
  end)

  it("cuts SCRIPT_NAME from PATH_INFO, decodes PATH_INFO, and adds opts.env", function()
    testing.run(function()
      local env = cjson.decode(assert(fetch("/legacy/env")).body)
      assert.equal("/legacy", env.SCRIPT_NAME)
      assert.equal("/env", env.PATH_INFO)
      -- /legacy alone: PATH_INFO is "/", never empty
      local r = assert(fetch("/legacy"))
      assert.equal("legacy 404 for /", r.body)
      r = assert(fetch("/legacy/a%20b%2Fc"))
      assert.equal("legacy 404 for /a b/c", r.body)
      -- a path that only starts like the prefix is not under it
      r = assert(fetch("/legacyx"))
      assert.equal("legacy 404 for /legacyx", r.body)
    end)
  end)

  it("gives POST bodies through input:read(n), read() and lines()", function()
    testing.run(function()
      local r = assert(fetch("/read", { method = "POST", body = "abcdefgh",
                                        headers = { ["Content-Type"] = "text/plain" } }))
      assert.equal("abc|defgh|eof|eof|empty", r.body)
      r = assert(fetch("/lines", { method = "PUT", body = "one\ntwo\r\nthree" }))
      assert.equal("[one][two\r][three]", r.body)
      r = assert(fetch("/form", { method = "POST", body = "name=gust&x=1",
                                  headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } }))
      assert.equal(201, r.code)
      assert.equal("POST name=gust", r.body)
      local env = cjson.decode(assert(fetch("/env", {
        method = "POST", body = "12345", headers = { ["Content-Type"] = "application/x-thing" },
      })).body)
      assert.equal("5", env.CONTENT_LENGTH)
      assert.equal("application/x-thing", env.CONTENT_TYPE)
      assert.equal("POST", env.REQUEST_METHOD)
    end)
  end)

  it("takes string and numeric statuses, header lists, and drops a Status header", function()
    testing.run(function()
      local r = assert(fetch("/status-string"))
      assert.equal(404, r.code)
      assert.equal("Nowhere To Be Found", r.reason)
      assert.equal("missing", r.body)
      r = assert(fetch("/status-unknown"))
      assert.equal(299, r.code)
      r = assert(fetch("/cookies"))
      assert.equal(200, r.code)
      assert.same({ "a=1", "b=2" }, r.headers:get_list("Set-Cookie"))
      assert.equal("42", r.headers["X-Num"])
      assert.is_nil(r.headers["Status"])
    end)
  end)

  it("accepts every kind of body: table, coroutine, function, string, none", function()
    testing.run(function()
      assert.equal("two cookies", assert(fetch("/cookies")).body)
      assert.equal("missing", assert(fetch("/status-string")).body)
      assert.equal("part1;part2;part3;", assert(fetch("/function-body")).body)
      assert.equal("a plain string", assert(fetch("/string-body")).body)
      local r = assert(fetch("/no-body"))
      assert.equal(204, r.code)
      assert.equal("", r.body)
    end)
  end)

  it("answers small bodies with a Content-Length and streams large ones chunked", function()
    testing.run(function()
      local r = assert(fetch("/function-body"))
      assert.equal("18", r.headers["Content-Length"])
      local chunks, bytes = 0, 0
      r = assert(fetch("/big?n=64", { streaming_callback = function(c)
        chunks = chunks + 1
        bytes = bytes + #c
      end }))
      assert.equal(200, r.code)
      assert.equal(64 * 16384, bytes)
      assert.is_true(chunks > 1)
      assert.is_nil(r.headers["Content-Length"])
      assert.equal("chunked", r.headers["Transfer-Encoding"])
      -- buffer_size = 0 flushes every chunk, even small bodies
      r = assert(fetch("/each/function-body"))
      assert.equal("part1;part2;part3;", r.body)
      assert.equal("chunked", r.headers["Transfer-Encoding"])
    end)
  end)

  it("streams with the whole body never in Lua memory at once", function()
    testing.run(function()
      collectgarbage()
      local before = collectgarbage("count")
      local peak = before
      local bytes = 0
      local r = assert(fetch("/big?n=640", { streaming_callback = function(c) -- 10 MiB
        bytes = bytes + #c
        local now = collectgarbage("count")
        if now > peak then peak = now end
      end }))
      assert.equal(200, r.code)
      assert.equal(640 * 16384, bytes)
      assert.is_true(peak - before < 8 * 1024, ("grew by %d KiB"):format(peak - before))
    end, 20)
  end)

  it("turns application errors into logged 500s", function()
    local lines = capture_logs(function()
      testing.run(function()
        for _, path in ipairs({ "/boom", "/boom-iter", "/bad-status", "/inject" }) do
          local r = assert(fetch(path))
          assert.equal(500, r.code, path)
          assert.is_nil(r.body:find("exploded", 1, true)) -- no traceback without debug
          assert.is_nil(r.headers["Set-Cookie"])
        end
      end)
    end)
    assert.truthy(find_line(lines, "legacy app exploded"))
    assert.truthy(find_line(lines, "iterator exploded"))
    assert.truthy(find_line(lines, "invalid status: teapot"))
    assert.truthy(find_line(lines, "unsafe header value"))
  end)

  it("logs an error after the body has started and cuts the connection", function()
    local lines = capture_logs(function()
      testing.run(function()
        -- The client sees a truncated response, never a complete-looking one.
        local r, err = fetch("/boom-late")
        assert.is_nil(r)
        assert.equal("connection closed before the response was complete", err)
        -- and the server is fine afterwards
        assert.equal("native /native", assert(fetch("/native")).body)
      end)
    end)
    assert.truthy(find_line(lines, "iterator exploded late"))
    assert.truthy(find_line(lines, "Cannot send error response after headers written"))
  end)

  it("serves native routes next to the fallback and hands it every verb", function()
    testing.run(function()
      assert.equal("native /native", assert(fetch("/native")).body)
      -- The fallback is not 405 for unusual verbs, not 403 for XSRF, not
      -- 400 for a body it cannot parse: the legacy app decides.
      local env = cjson.decode(assert(fetch("/env", { method = "PROPFIND" })).body)
      assert.equal("PROPFIND", env.REQUEST_METHOD)
      local r = assert(fetch("/read", {
        method = "POST", body = "--x\r\nbroken",
        headers = { ["Content-Type"] = "multipart/form-data; boundary=zzz" },
      }))
      assert.equal(200, r.code)
      assert.equal("--x|\r\nbroken|eof|eof|empty", r.body)
      r = assert(fetch("/read", { method = "HEAD" }))
      assert.equal(200, r.code)
      assert.equal("", r.body)
    end)
  end)

  it("runs initialize and prepare first, so a subclass can guard the fallback", function()
    local Guarded = web.FallbackHandler:extend()
    function Guarded:prepare()
      if self.request.path == "/env" and self.request.headers["X-Token"] ~= "t" then
        error(web.HTTPError(403), 0)
      end
    end
    local guarded = web.Application({ { ".*", Guarded, { fallback = container } } })
    testing.run(function()
      local b, l = testing.serve(guarded)
      local r = assert(AsyncHTTPClient():fetch(b .. "/env"))
      assert.equal(403, r.code)
      r = assert(AsyncHTTPClient():fetch(b .. "/env", { headers = { ["X-Token"] = "t" } }))
      assert.equal(200, r.code)
      r = assert(AsyncHTTPClient():fetch(b .. "/function-body"))
      assert.equal("part1;part2;part3;", r.body)
      l:close()
    end)
    local bad = web.Application({ { ".*", web.FallbackHandler, { fallback = "nope" } } })
    local lines = capture_logs(function()
      assert.equal(500, assert(testing.fetch(bad, "/x")).code)
    end)
    assert.truthy(find_line(lines, "callable 'fallback'"))
  end)

  it("logs env.error writes and lets the app use gust's yielding APIs", function()
    local lines = capture_logs(function()
      testing.run(function()
        assert.equal("logged", assert(fetch("/log")).body)
        assert.equal("slept", assert(fetch("/sleepy")).body)
      end)
    end)
    assert.truthy(find_line(lines, "wsapi: something went wrong"))
  end)

  it("checks its arguments", function()
    assert.has_error(function() wsapi.WSAPIContainer(42) end)
    assert.has_error(function() wsapi.WSAPIContainer({}) end)
    assert.has_error(function() wsapi.WSAPIContainer(legacy, { script_name = "x" }) end)
    assert.has_error(function() wsapi.WSAPIContainer(legacy, { script_name = "/x/" }) end)
    assert.has_error(function() wsapi.WSAPIContainer(legacy, { buffer_size = -1 }) end)
    local c = wsapi.WSAPIContainer(legacy.run, { app_path = "/srv/app" })
    assert.equal("/srv/app", c.app_path)
    assert.truthy(tostring(c):find("WSAPIContainer", 1, true))
  end)

  it("input:read behaves like a file", function()
    local input = setmetatable({ _body = "ab\ncd", _pos = 1, length = 5 }, wsapi.Input)
    assert.equal("", input:read(0))
    assert.equal("ab", input:read("*l"))
    assert.equal("cd", input:read("*L"))
    assert.is_nil(input:read("l"))
    assert.is_nil(input:read(0))
    assert.equal("", input:read("a"))
    assert.has_error(function() input:read("*x") end)
    assert.has_error(function() input:read(-1) end)
  end)
end)

------------------------------------------------------------------------------
-- web.ProxyHandler, to a gust upstream served in-process.

local Upstream = web.RequestHandler:extend()
local function echo(self)
  local h = {}
  for k, v in self.request.headers:pairs() do h[k] = v end
  self:set_header("X-Upstream", "1")
  self:set_header("Keep-Alive", "timeout=5")
  self:add_header("Set-Cookie", "u=1")
  self:add_header("Set-Cookie", "v=2")
  self:write({ method = self.request.method, uri = self.request.uri, headers = h,
               body = self.request.body })
end
for _, m in ipairs({ "get", "post", "put", "delete", "patch", "options" }) do Upstream[m] = echo end
function Upstream:head() self:set_header("Content-Length", "1234") end

local UpBig = web.RequestHandler:extend()
function UpBig:get()
  self:set_header("Content-Type", "application/octet-stream")
  for _ = 1, 32 do
    self:write(("z"):rep(32768))
    self:flush()
  end
end

local UpRedirect = web.RequestHandler:extend()
function UpRedirect:get() self:redirect("/elsewhere") end

local UpStatus = web.RequestHandler:extend()
function UpStatus:get(code)
  self:set_status(tonumber(code), code == "299" and "Fine Enough" or nil)
  if code ~= "304" and code ~= "204" then self:write("status " .. code) end
end

local UpGzip = web.RequestHandler:extend()
function UpGzip:get() self:write(("compress me "):rep(500)) end

local UpSlow = web.RequestHandler:extend()
function UpSlow:get()
  core.sleep(1)
  self:write("late")
end

local upstream_app = web.Application({
  { "/big", UpBig },
  { "/redirect", UpRedirect },
  { "/status/(%d+)", UpStatus },
  { "/gzip", UpGzip },
  { "/slow", UpSlow },
  { "/.*", Upstream },
}, { compress_response = true })

local function free_port()
  local socks = assert(netutil.bind_sockets(0, "127.0.0.1"))
  local port = socks[1]:getsockname()[2]
  socks[1]:close()
  return port
end

describe("web.ProxyHandler", function()
  local up_base, up_listener, proxy_base, proxy_listener

  setup(function()
    up_base, up_listener = testing.serve(upstream_app)
    local proxy_app = web.Application({
      { "/local", Native },
      { "/dead/.*", web.ProxyHandler, { upstream = "http://127.0.0.1:" .. free_port() } },
      { "/slow", web.ProxyHandler, { upstream = up_base, request_timeout = 0.3 } },
      { "/prefixed/.*", web.ProxyHandler, { upstream = up_base .. "/base/", preserve_host = false } },
      { "/.*", web.ProxyHandler, { upstream = up_base } },
    })
    proxy_base, proxy_listener = testing.serve(proxy_app)
  end)
  teardown(function()
    proxy_listener:close()
    up_listener:close()
  end)

  local function pfetch(path, opts)
    return AsyncHTTPClient():fetch(proxy_base .. path, opts)
  end

  it("forwards method, URI, body and headers, minus hop-by-hop ones", function()
    testing.run(function()
      for _, m in ipairs({ "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS" }) do
        local body = (m == "POST" or m == "PUT" or m == "PATCH") and ("body-" .. m) or nil
        local r = assert(pfetch("/echo/x%20y?q=1&q=2", { method = m, body = body,
          headers = { ["X-Custom"] = "c", ["X-Forwarded-For"] = "10.0.0.1",
                      ["Keep-Alive"] = "300", ["Proxy-Authorization"] = "secret",
                      TE = "trailers", Connection = "keep-alive, X-Drop-Me",
                      ["X-Drop-Me"] = "1", ["User-Agent"] = "spec" } }))
        assert.equal(200, r.code, m)
        local j = cjson.decode(r.body)
        assert.equal(m, j.method)
        assert.equal("/echo/x%20y?q=1&q=2", j.uri)
        assert.equal(body or "", j.body)
        assert.equal("c", j.headers["x-custom"])
        assert.equal("spec", j.headers["user-agent"])
        assert.equal("10.0.0.1, 127.0.0.1", j.headers["x-forwarded-for"])
        assert.equal("http", j.headers["x-forwarded-proto"])
        assert.equal(proxy_base:match("//(.*)"), j.headers["x-forwarded-host"])
        assert.equal(proxy_base:match("//(.*)"), j.headers["host"]) -- preserved
        assert.is_nil(j.headers["keep-alive"])
        assert.is_nil(j.headers["proxy-authorization"])
        assert.is_nil(j.headers["te"])
        assert.is_nil(j.headers["x-drop-me"])
      end
    end)
  end)

  it("relays status, headers (minus hop-by-hop) and repeated headers", function()
    testing.run(function()
      local r = assert(pfetch("/echo"))
      assert.equal("1", r.headers["X-Upstream"])
      assert.same({ "u=1", "v=2" }, r.headers:get_list("Set-Cookie"))
      assert.is_nil(r.headers["Keep-Alive"])
      r = assert(pfetch("/status/418"))
      assert.equal(418, r.code)
      assert.equal("status 418", r.body)
      r = assert(pfetch("/status/299"))
      assert.equal(299, r.code)
      assert.equal("Fine Enough", r.reason)
      r = assert(pfetch("/status/204"))
      assert.equal(204, r.code)
      r = assert(pfetch("/echo", { method = "HEAD" }))
      assert.equal(200, r.code)
      assert.equal("1234", r.headers["Content-Length"])
    end)
  end)

  it("does not follow redirects nor decompress", function()
    testing.run(function()
      local r = assert(pfetch("/redirect", { follow_redirects = false }))
      assert.equal(302, r.code)
      assert.equal("/elsewhere", r.headers["Location"])
      r = assert(pfetch("/gzip", { headers = { ["Accept-Encoding"] = "gzip" },
                                   decompress_response = false }))
      assert.equal("gzip", r.headers["Content-Encoding"])
      assert.is_true(#r.body < 6000)
      assert.equal("\31\139", r.body:sub(1, 2))
    end)
  end)

  it("streams large answers through", function()
    testing.run(function()
      local chunks, bytes = 0, 0
      local r = assert(pfetch("/big", { streaming_callback = function(c)
        chunks, bytes = chunks + 1, bytes + #c
      end }))
      assert.equal(200, r.code)
      assert.equal(32 * 32768, bytes)
      assert.is_true(chunks > 1)
    end)
  end)

  it("prefixes the upstream's path, and can send the upstream's Host", function()
    testing.run(function()
      local j = cjson.decode(assert(pfetch("/prefixed/a?b=1")).body)
      assert.equal("/base/prefixed/a?b=1", j.uri)
      assert.equal(up_base:match("//(.*)"), j.headers["host"])
      assert.equal(proxy_base:match("//(.*)"), j.headers["x-forwarded-host"])
    end)
  end)

  it("answers 502 when the upstream is down and 504 when it is too slow", function()
    local lines = capture_logs(function()
      testing.run(function()
        local r = assert(pfetch("/dead/x"))
        assert.equal(502, r.code)
        r = assert(pfetch("/slow"))
        assert.equal(504, r.code)
        assert.equal("native /local", assert(pfetch("/local")).body)
      end)
    end)
    assert.truthy(find_line(lines, "connection refused"))
    assert.truthy(find_line(lines, "timeout"))
  end)

  it("checks its options", function()
    local proxy = require "gust.web.proxy"
    assert.has_error(function() proxy.Proxy({}) end)
    assert.has_error(function() proxy.Proxy({ upstream = "ftp://x" }) end)
    assert.has_error(function() proxy.Proxy({ upstream = "http://x/?q" }) end)
    assert.has_error(function() proxy.Proxy({ upstream = "http://x", request_timeout = -1 }) end)
    assert.equal("http://x:81/p", proxy.Proxy({ upstream = "http://x:81/p/" }).base)
    assert.is_true(require("gust.class").is_instance(
      setmetatable({}, web.ProxyHandler), web.FallbackHandler))
  end)
end)
