-- proxyfetch: the seed's asynchronous handler in gust. Each page fetches
-- another URL with gust.httpclient and reports what came back, written in
-- both of gust's styles:
--
--   GET /async       web.asynchronous + a fetch callback + self:finish()
--                    (Tornado's classic @asynchronous example)
--   GET /coroutine   the same in coroutine style: fetch() yields
--
-- The URL is ?url=..., else $PROXYFETCH_URL, else this app's own /upstream.
--
--   build/gust apps/proxyfetch/app.lua
--   curl http://127.0.0.1:8888/async
--   curl 'http://127.0.0.1:8888/coroutine?url=http://127.0.0.1:8888/upstream'
local escape = require "gust.escape"
local httpclient = require "gust.httpclient"
local web = require "gust.web"

local PREVIEW = 200

local function target(self)
  return self:get_argument("url", nil) or os.getenv("PROXYFETCH_URL")
      or ("http://" .. self.request.host .. "/upstream")
end

local function render(self, url, resp, err)
  self:set_header("Content-Type", "text/plain; charset=UTF-8")
  if not resp then
    self:set_status(502)
    self:write("upstream error: " .. err .. "\n")
    return
  end
  self:write(("Fetched %d bytes from %s (status %d %s) in %.1f ms:\n%s\n"):format(
    #resp.body, escape.xhtml_escape(url), resp.code, resp.reason,
    resp.request_time * 1000, resp.body:sub(1, PREVIEW)))
end

-- Callback style: the method returns at once; the callback finishes.
local Async = web.RequestHandler:extend()
Async.get = web.asynchronous(function(self)
  local url = target(self)
  httpclient.AsyncHTTPClient():fetch(url, function(resp, err)
    render(self, url, resp, err)
    self:finish()
  end)
end)

-- Coroutine style: fetch() yields this request's coroutine until the
-- answer is in; the response finishes when get() returns.
local Coroutine = web.RequestHandler:extend()
function Coroutine:get()
  local url = target(self)
  local resp, err = httpclient.AsyncHTTPClient():fetch(url)
  render(self, url, resp, err)
end

-- Something to fetch when no URL is given.
local Upstream = web.RequestHandler:extend()
function Upstream:get()
  self:write({ entries = { "one", "two", "three" }, served_by = "gust" })
end

return web.Application({
  {"/async", Async},
  {"/coroutine", Coroutine},
  {"/upstream", Upstream},
})
