-- A raw gust.core handler (no framework): the integration tests of the C
-- core's HTTP/1.1 behaviour talk to this.
local core = require "gust.core"
local cjson = require "cjson"

local closes = 0          -- close-hook calls
local adopts = 0          -- adopt-hook calls: requests still open after their first run
local forever_started = 0 -- /forever requests begun
local forever_done = 0    -- /forever handlers that noticed and returned

core.set_close_hook(function(_req)
  closes = closes + 1
end, function(_req)
  adopts = adopts + 1
end)

local function parse_query(q)
  local t = {}
  for k, v in string.gmatch(q or "", "([^&=]+)=?([^&]*)") do t[k] = v end
  return t
end

local BIG -- 1 MiB, deterministic
local function big_body()
  if not BIG then
    local parts = {}
    for i = 0, 16383 do
      -- 64 bytes per line: an 8-digit counter and filler
      parts[#parts + 1] = string.format("%08d", i) .. string.rep(string.char(97 + i % 26), 55) .. "\n"
    end
    BIG = table.concat(parts)
    assert(#BIG == 1048576)
  end
  return BIG
end

local function json(req, status, t, extra)
  local h = {["Content-Type"] = "application/json"}
  for k, v in pairs(extra or {}) do h[k] = v end
  return req:finish(status or 200, nil, h, cjson.encode(t))
end

local routes = {}

routes["/hello"] = function(req)
  req:finish(200, nil, {["Content-Type"] = "text/plain"}, "hello")
end

routes["/default-ctype"] = function(req)
  req:finish(200, nil, nil, "<p>x</p>")
end

routes["/echo"] = function(req, method, path, query)
  local body = req:body()
  local h = req:headers()
  local pairs_ = {}
  for i = 1, #h, 2 do pairs_[#pairs_ + 1] = {h[i], h[i + 1]} end
  json(req, 200, {
    method = method, path = path, query = query, uri = req:uri(),
    version = req:version(), remote_ip = req:remote_ip(), protocol = req:protocol(),
    headers = pairs_, body_len = #body, sha1 = core.hex(core.sha1(body)),
  })
end

routes["/sleep"] = function(req, _method, _path, query)
  local n = tonumber(parse_query(query).n) or 0.5
  local t0 = core.now()
  core.sleep(n)
  req:finish(200, nil, {["Content-Type"] = "text/plain"},
             string.format("slept %.3f", core.now() - t0))
end

-- /stream?n=3&delay=0.3: n chunks, each flushed, with a pause between.
-- Each chunk says when it was produced (core.time()).
routes["/stream"] = function(req, _method, _path, query)
  local q = parse_query(query)
  local n, delay = tonumber(q.n) or 3, tonumber(q.delay) or 0.3
  for i = 1, n do
    local ok = req:flush(200, nil, {["Content-Type"] = "text/plain"},
                              string.format("chunk %d at %.3f\n", i, core.time()))
    if not ok then return end
    if i < n then core.sleep(delay) end
  end
  req:finish(200, nil, nil, "end\n")
end

-- /status/N[?body=x]: status N; for 204/304 the core must drop the body.
routes.status = function(req, _method, path, query)
  local code = tonumber(path:match("^/status/(%d+)$"))
  local q = parse_query(query)
  req:finish(code, nil, {["X-Status"] = tostring(code)}, q.body or "")
end

routes["/error"] = function(_req)
  error("boom from the raw handler")
end

routes["/error-after-flush"] = function(req)
  req:flush(200, nil, {["Content-Type"] = "text/plain"}, "partial\n")
  error("boom after flush")
end

-- Answers HEAD itself with the same headers as GET (and a body the core
-- must not send for HEAD).
routes["/head"] = function(req, method)
  req:finish(200, nil, {["Content-Type"] = "text/plain", ["X-Method"] = method},
             "twelve bytes")
end

routes["/big"] = function(req)
  local b = big_body()
  req:finish(200, nil, {["Content-Type"] = "application/octet-stream",
                        ["X-Sha1"] = core.hex(core.sha1(b))}, b)
end

-- The same megabyte as an array of parts (the core joins them).
routes["/big-parts"] = function(req)
  local b = big_body()
  local parts = {}
  for i = 1, #b, 100000 do parts[#parts + 1] = b:sub(i, i + 99999) end
  req:finish(200, nil, {["Content-Type"] = "application/octet-stream",
                        ["X-Sha1"] = core.hex(core.sha1(b))}, parts)
end

routes["/etag"] = function(req)
  req:finish(200, nil, {["Content-Type"] = "text/plain"}, "a body with an etag")
end

-- Never answers until the client goes away.
routes["/forever"] = function(req)
  forever_started = forever_started + 1
  while not req:closed() do core.sleep(0.05) end
  forever_done = forever_done + 1
  -- the peer may only have half-closed: answering is allowed either way
  req:finish(200, nil, nil, "too late")
end

routes["/closes"] = function(req)
  json(req, 200, {closes = closes, adopts = adopts, forever_started = forever_started,
                  forever_done = forever_done})
end

routes["/multi-header"] = function(req)
  req:finish(200, nil, {["Content-Type"] = "text/plain", ["X-Multi"] = {"a", "b"},
                        ["Set-Cookie"] = {"c1=1", "c2=2"}}, "ok")
end

routes["/http10-stream"] = routes["/stream"]

-- The contract: after flush(), finish()'s status and headers are ignored,
-- so nil must do (gust.web passes nil there).
routes["/flush-then-finish-nil"] = function(req)
  req:flush(200, nil, {["Content-Type"] = "text/plain"}, "first\n")
  req:flush(nil, nil, nil, "second\n")
  req:finish(nil, nil, nil, "last\n")
end

-- Misuse of the request API: each must become a 500 (the Lua error), and
-- must not leak (the connection, buffers, file descriptors).
local function many_headers(bad)
  local h = {}
  for i = 1, 40 do h["X-Filler-" .. i] = string.rep("f", 100) end
  h["X-Bad"] = bad
  return h
end
routes["/misuse/header-value"] = function(req)
  req:finish(200, nil, many_headers(true), "x")
end
routes["/misuse/header-name"] = function(req)
  local h = many_headers("ok")
  h[true] = "x"
  req:finish(200, nil, h, "x")
end
routes["/misuse/body-part"] = function(req)
  req:finish(200, nil, nil, {"a", {}, "c"})
end
routes["/misuse/status"] = function(req)
  req:finish(99, nil, nil, "x")
end
routes["/misuse/flush-header"] = function(req)
  req:flush(200, nil, many_headers(false), "x")
end
routes["/misuse/send-file-header"] = function(req)
  req:send_file(200, nil, many_headers(true), debug.getinfo(1, "S").source:sub(2), 0, 10)
end
routes["/send-file"] = function(req)
  local path = debug.getinfo(1, "S").source:sub(2)
  local f = io.open(path, "rb"); local data = f:read("*a"); f:close()
  req:send_file(200, nil, {["Content-Type"] = "text/plain",
                           ["X-Sha1"] = core.hex(core.sha1(data:sub(11, 110)))}, path, 10, 100)
end

return function(req, method, path, query)
  local f = routes[path]
  if not f and path:match("^/status/%d+$") then f = routes.status end
  if not f then
    return req:finish(404, nil, {["Content-Type"] = "text/plain"}, "not found: " .. path)
  end
  return f(req, method, path, query)
end
