-- The hello app of DESIGN.md §4.1: `make run` serves it on 127.0.0.1:8888.
local web = require "gust.web"

local Main = web.RequestHandler:extend()
function Main:get()
  self:write("Hello, world")
end

local Greet = web.RequestHandler:extend()
function Greet:initialize(opts) self.punct = opts.punct or "" end
function Greet:get(name)                       -- captures arrive as arguments
  local greeting = self:get_argument("greeting", "Hello")
  self:write(greeting .. ", " .. name .. self.punct)
end

return web.Application({
  {"/", Main},
  {"/hello/([^/]+)", Greet, {punct = "!"}, name = "greet"},
}, { debug = false, cookie_secret = "change-me" })
