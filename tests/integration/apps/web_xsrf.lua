-- xsrf_cookies = true (DESIGN 4.1).
local web = require "gust.web"

local Form = web.RequestHandler:extend()
function Form:get() self:write(self:xsrf_token()) end
function Form:post() self:write("accepted " .. self:get_argument("x", "")) end
Form.put = Form.post
Form.delete = Form.post
Form.patch = Form.post

local Html = web.RequestHandler:extend()
function Html:get() self:write("<form>" .. self:xsrf_form_html() .. "</form>") end

return web.Application({
  {"/form", Form},
  {"/html", Html},
}, {xsrf_cookies = true, cookie_secret = "xsrf-secret"})
