-- Benchmark app for tests/bench/hello.sh. Three cases:
--   GET /                              -> "Hello, world"
--   GET /hello/NAME?greeting=Hi        -> "Hi, NAME!"   (route capture + argument)
--
-- Uses gust's real framework (gust.web, DESIGN.md 4.1) when it loads; otherwise
-- falls back to a raw gust.core handler (contract.md) doing the same work by
-- hand. The variant actually used is announced on stderr as a line starting
-- with "gust-bench: variant=" so hello.sh can report what was measured.
-- GUST_BENCH_VARIANT=raw|framework|auto (default auto) forces a variant.

local want = os.getenv("GUST_BENCH_VARIANT") or "auto"

local function announce(s)
  io.stderr:write("gust-bench: variant=", s, "\n")
  io.stderr:flush()
end

local web, load_err
if want ~= "raw" then
  local ok, mod = pcall(require, "gust.web")
  if ok and type(mod) == "table" and mod.Application and mod.RequestHandler then
    web = mod
  else
    load_err = ok and "gust.web loaded but lacks Application/RequestHandler" or tostring(mod)
    if want == "framework" then
      error("GUST_BENCH_VARIANT=framework but gust.web does not load: " .. load_err)
    end
  end
end

if web then
  local Main = web.RequestHandler:extend()
  function Main:get()
    self:write("Hello, world")
  end

  local Greet = web.RequestHandler:extend()
  function Greet:get(name)
    local greeting = self:get_argument("greeting", "Hello")
    self:write(greeting .. ", " .. name .. "!")
  end

  local ok, app = pcall(web.Application, {
    {"/", Main},
    {"/hello/([^/]+)", Greet},
  }, { debug = false })
  if ok then
    announce("framework (gust.web Application + RequestHandler)")
    return app
  end
  load_err = "web.Application() failed: " .. tostring(app)
  if want == "framework" then error(load_err) end
end

-- Raw core handler fallback: same three answers, doing the routing (anchored
-- Lua pattern with a capture), URL-decoding and query parsing by hand.
announce("raw (gust.core handler; gust.web not used: "
  .. (want == "raw" and "forced by GUST_BENCH_VARIANT=raw" or
      (load_err or "?"):gsub("\n.*", "")) .. ")")

-- Requiring gust.core is what registers the methods of the request handle
-- (req:finish, ...); without it req is a bare userdata.
require "gust.core"

local find, gsub, char, tonumber, match, gmatch =
  string.find, string.gsub, string.char, tonumber, string.match, string.gmatch

local function hex(h) return char(tonumber(h, 16)) end
local function unescape(s, plus)
  if plus and find(s, "+", 1, true) then s = gsub(s, "+", " ") end
  if find(s, "%", 1, true) then s = gsub(s, "%%(%x%x)", hex) end
  return s
end

local HEADERS = { ["Content-Type"] = "text/plain" }
local NOT_FOUND_HEADERS = { ["Content-Type"] = "text/plain" }

local function get_query_argument(query, name, default)
  local value = default
  if query ~= "" then
    for k, v in gmatch(query, "([^&=]*)=?([^&]*)") do
      if k ~= "" and unescape(k, true) == name then value = unescape(v, true) end
    end
  end
  return value
end

return function(req, method, path, query)
  if method ~= "GET" and method ~= "HEAD" then
    return req:finish(405, nil, { ["Allow"] = "GET, HEAD" }, "")
  end
  if path == "/" then
    return req:finish(200, nil, HEADERS, "Hello, world")
  end
  local name = match(path, "^/hello/([^/]+)$")
  if name then
    local greeting = get_query_argument(query, "greeting", "Hello")
    return req:finish(200, nil, HEADERS, greeting .. ", " .. unescape(name) .. "!")
  end
  return req:finish(404, nil, NOT_FOUND_HEADERS, "Not Found")
end
