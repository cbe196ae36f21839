-- A raw handler as a callable table with small limits in `settings`, the
-- way gust reads them from an Application.
local core = require "gust.core"

local app = {settings = {
  max_header_size = 2048,
  max_body_size = 1024,
  header_timeout = 1,
  idle_connection_timeout = 1,
  body_timeout = 1,
}}

return setmetatable(app, {__call = function(_self, req, method, path, query)
  if path == "/sleep" then
    -- longer than every timeout above: a request being handled is not idle
    core.sleep(tonumber(query:match("n=([%d.]+)")) or 1.5)
  end
  local body = req:body()
  req:finish(200, nil, {["Content-Type"] = "text/plain"},
             string.format("%s %s body=%d sha1=%s", method, path, #body, core.hex(core.sha1(body))))
end})
