-- debug = true: tracebacks in error pages; and gzip responses.
local web = require "gust.web"

local Boom = web.RequestHandler:extend()
function Boom:get() error("debug detail of the failure") end

local Big = web.RequestHandler:extend()
function Big:get()
  self:set_header("Content-Type", "text/plain")
  self:write(string.rep("compress me please ", 500))
end

local Teapot = web.RequestHandler:extend()
function Teapot:get() error(web.HTTPError(418)) end

return web.Application({
  {"/boom", Boom},
  {"/big", Big},
  {"/teapot", Teapot},
}, {debug = true, compress_response = true})
