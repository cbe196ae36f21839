-- proxy: gust as a reverse proxy in front of an HTTP backend (a Django app
-- under gunicorn, a Python http.server, another gust), with one native
-- route of its own. web.ProxyHandler forwards every method with the URI
-- unchanged and the body, adds X-Forwarded-For/-Proto/-Host, and streams
-- the answer back; 502 when the backend is down, 504 when it is too slow.
--
--   python3 -m http.server 8000 --bind 127.0.0.1 &
--   PROXY_UPSTREAM=http://127.0.0.1:8000 build/gust --port 8888 apps/proxy/app.lua
--   curl -i http://127.0.0.1:8888/            # the backend's directory listing
--   curl http://127.0.0.1:8888/_gust/health   # answered by gust itself
local web = require "gust.web"

local Health = web.RequestHandler:extend()
function Health:get() self:write({ ok = true }) end

return web.Application({
  {"/_gust/health", Health},
  {".*", web.ProxyHandler, {
    upstream = os.getenv("PROXY_UPSTREAM") or "http://127.0.0.1:8000",
    request_timeout = tonumber(os.getenv("PROXY_TIMEOUT") or "") or 60,
  }},
})
