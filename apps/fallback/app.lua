-- fallback: a legacy WSAPI application and native gust handlers in one
-- route table (DESIGN §4.6), the way Tornado fronts a Django app with
-- WSGIContainer + FallbackHandler, plus an HTTP backend behind
-- web.ProxyHandler.
--
--   /gust/status            native gust handler (JSON)
--   /gust/hello/NAME        native gust handler
--   /api/...                web.ProxyHandler to $FALLBACK_UPSTREAM
--                           (default http://127.0.0.1:8000), URI unchanged
--   everything else         the WSAPI app in legacy.lua (/, /guestbook,
--                           /env, /count), through web.FallbackHandler
--
-- Run it (from the repository root, after `make`):
--
--   python3 -m http.server 8000 --bind 127.0.0.1 &       # something for /api/
--   build/gust --port 8888 apps/fallback/app.lua
--   curl http://127.0.0.1:8888/gust/status               # native
--   curl http://127.0.0.1:8888/guestbook                 # legacy WSAPI app
--   curl -d 'name=me&message=hi' http://127.0.0.1:8888/guestbook   # 303, signed
--   curl http://127.0.0.1:8888/env?x=1                   # the wsapi_env it got
--   curl -N http://127.0.0.1:8888/count?n=100000         # a streamed body
--   curl -i http://127.0.0.1:8888/api/                   # proxied to :8000/api/
--
-- Order matters: first match wins, so the catch-all ".*" goes last.
local gust = require "gust"
local web = require "gust.web"
local wsapi = require "gust.wsapi"

local legacy = require "legacy" -- apps/fallback/legacy.lua: the app's directory is on package.path

local started = gust.now()
local served = 0

local Status = web.RequestHandler:extend()
function Status:get()
  self:write({ server = "gust", uptime = gust.now() - started, native_requests = served })
end
function Status.on_finish() served = served + 1 end

local Hello = web.RequestHandler:extend()
function Hello:get(name)
  self:write("Hello from gust, " .. name .. "\n")
end
Hello.on_finish = Status.on_finish

return web.Application({
  {"/gust/status", Status},
  {"/gust/hello/([^/]+)", Hello},
  {"/api/.*", web.ProxyHandler, {upstream = os.getenv("FALLBACK_UPSTREAM") or "http://127.0.0.1:8000"}},
  {".*", web.FallbackHandler, {fallback = wsapi.WSAPIContainer(legacy)}},
})
