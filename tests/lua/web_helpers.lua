-- What the gust.web specs share: the fake core, and shorthands for a
-- handler class, an app around it, and Tornado's default error page.
--
--   local h = require "web_helpers"
--   local req = h.fetch(h.app_with(h.handler({ get = ... })), "GET", "/")

local fake = require "fake_core"
local web = require "gust.web"

local _M = { fake = fake, web = web, fetch = fake.fetch }

-- A handler class from a table of methods.
function _M.handler(methods)
  return web.RequestHandler:extend(methods or {})
end

function _M.app_with(handler_class, settings, pattern)
  return web.Application({ { pattern or "/", handler_class } }, settings)
end

function _M.html_page(code, reason)
  return string.format("<html><title>%d: %s</title><body>%d: %s</body></html>",
                       code, reason, code, reason)
end

return _M
