-- The Tornado-like framework (gust.web, DESIGN 4.1) end to end: routing,
-- arguments, headers, JSON, redirects, cookies, authentication, errors,
-- static files, streaming and on_finish.
local gust = require "gust"
local web = require "gust.web"
local core = require "gust.core"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
if here:sub(1, 1) ~= "/" then here = os.getenv("PWD") .. "/" .. here end

local stats = {finished = 0, closed = 0, waiting = 0}

local Main = web.RequestHandler:extend()
function Main:get() self:write("Hello, world") end

local Greet = web.RequestHandler:extend()
function Greet:initialize(opts) self.punct = opts.punct or "" end
function Greet:get(name)
  local greeting = self:get_argument("greeting", "Hello")
  self:write(greeting .. ", " .. name .. self.punct)
end

local Item = web.RequestHandler:extend()
function Item:get(id, name) self:write({id = id, name = name}) end

local OnlyGet = web.RequestHandler:extend()
function OnlyGet:get() self:write("only get") end

local GetPost = web.RequestHandler:extend()
function GetPost:get() self:write("get") end
function GetPost:post() self:write("post") end
function GetPost:delete() self:write("delete") end

-- Arguments of every kind, as JSON.
local Args = web.RequestHandler:extend()
function Args:handle()
  local files = {}
  for name, list in pairs(self.request.files) do
    files[name] = {}
    for i, f in ipairs(list) do
      files[name][i] = {filename = f.filename, content_type = f.content_type,
                        size = #f.body, sha1 = core.hex(core.sha1(f.body))}
    end
  end
  self:write({
    a = self:get_argument("a", false),
    b = self:get_arguments("b"),
    q = self:get_query_argument("a", false),
    qs = self:get_query_arguments("a"),
    body_a = self:get_body_argument("a", false),
    body_as = self:get_body_arguments("a"),
    unicode = self:get_argument("u", false),
    files = next(files) and files or false,
  })
end
Args.get = Args.handle
Args.post = Args.handle
Args.put = Args.handle

local Required = web.RequestHandler:extend()
function Required:get() self:write("got " .. self:get_argument("name")) end

local ReqInfo = web.RequestHandler:extend()
function ReqInfo:handle()
  local r = self.request
  self:write({
    method = r.method, uri = r.uri, path = r.path, query = r.query, version = r.version,
    remote_ip = r.remote_ip, host = r.host, protocol = r.protocol, body = r.body,
    ct_lower = r.headers["content-type"] or false, ct_upper = r.headers["Content-Type"] or false,
    rep = r.headers:get_list("X-Rep"),
  })
end
ReqInfo.get = ReqInfo.handle
ReqInfo.post = ReqInfo.handle

local Headers = web.RequestHandler:extend()
function Headers:get()
  self:set_header("X-One", "1")
  self:set_header("X-Num", 42)
  self:set_header("X-Replaced", "old")
  self:set_header("X-Replaced", "new")
  self:add_header("X-Multi", "a")
  self:add_header("X-Multi", "b")
  self:set_header("X-Gone", "soon")
  self:clear_header("X-Gone")
  self:set_header("Content-Type", "text/plain; charset=UTF-8")
  self:write("headers")
end

local Inject = web.RequestHandler:extend()
function Inject:get(kind)
  if kind == "value" then
    self:set_header("X-Bad", "a\r\nX-Injected: 1")
  elseif kind == "lf" then
    self:add_header("X-Bad", "a\nX-Injected: 1")
  elseif kind == "name" then
    self:set_header("X-Injected: 1\r\nX-Bad", "a")
  elseif kind == "redirect" then
    self:redirect("/x\r\nX-Injected: 1")
    return
  elseif kind == "cookie" then
    self:set_cookie("c", "v\r\nX-Injected: 1")
  end
  self:write("should not get here")
end

local Json = web.RequestHandler:extend()
function Json:get() self:write({a = 1, list = {1, 2, 3}, s = "</script>"}) end

local Redirect = web.RequestHandler:extend()
function Redirect:get(kind)
  if kind == "perm" then self:redirect("/target", true)
  elseif kind == "307" then self:redirect("/target", false, 307)
  else self:redirect("/target") end
end

local CookieSet = web.RequestHandler:extend()
function CookieSet:get()
  self:set_cookie("plain", "v1", {httponly = true, path = "/"})
  self:set_secure_cookie("user", self:get_argument("user", "alice"))
  self:write("set")
end

local CookieGet = web.RequestHandler:extend()
function CookieGet:get()
  self:write({plain = self:get_cookie("plain") or false,
              user = self:get_secure_cookie("user") or false})
end

local CookieClear = web.RequestHandler:extend()
function CookieClear:get()
  self:clear_cookie("plain")
  self:write("cleared")
end

local Private = web.RequestHandler:extend()
function Private:get_current_user() return self:get_secure_cookie("user") end
Private.get = web.authenticated(function(self) self:write("private for " .. self.current_user) end)
Private.post = web.authenticated(function(self) self:write("posted by " .. self.current_user) end)

local Login = web.RequestHandler:extend()
function Login:get() self:write("login page, next=" .. self:get_argument("next", "")) end

local Teapot = web.RequestHandler:extend()
function Teapot:get() error(web.HTTPError(418)) end

local Boom = web.RequestHandler:extend()
function Boom:get() error("secret detail of the failure") end
function Boom:post() local t = nil; return t.field end

local CustomError = web.RequestHandler:extend()
function CustomError:get() error(web.HTTPError(409, "conflict detail")) end
function CustomError:write_error(status, _err)
  self:set_header("Content-Type", "text/plain")
  self:finish("custom error page " .. status)
end

local Status = web.RequestHandler:extend()
function Status:get()
  self:set_status(201)
  self:write("created")
end

local Stream = web.RequestHandler:extend()
function Stream:get()
  self:set_header("Content-Type", "text/plain")
  for i = 1, 3 do
    self:write(string.format("part %d at %.3f\n", i, core.time()))
    self:flush()
    if i < 3 then gust.sleep(0.3) end
  end
  self:write("done\n")
end

local Finishing = web.RequestHandler:extend()
function Finishing:get() self:write("finishing") end
function Finishing:on_finish() stats.finished = stats.finished + 1 end

local Async = web.RequestHandler:extend()
Async.get = web.asynchronous(function(self)
  core.call_later(0.1, function()
    self:write("async done")
    self:finish()
  end)
end)

local Prepared = web.RequestHandler:extend()
function Prepared:prepare() self:finish("finished in prepare") end
function Prepared:get() error("get must not run") end

-- Long poll: waits until the client goes away.
local Wait = web.RequestHandler:extend()
function Wait:get()
  stats.waiting = stats.waiting + 1
  while not self.gone do gust.sleep(0.05) end
end
function Wait:on_connection_close()
  self.gone = true
  stats.closed = stats.closed + 1
end

local Stats = web.RequestHandler:extend()
function Stats:get() self:write(stats) end

local Reverse = web.RequestHandler:extend()
function Reverse:get() self:write(self:reverse_url("greet", "a b")) end

local Head = web.RequestHandler:extend()
function Head:get() self:write("head and get body") end
function Head:head() self:set_header("Content-Length", "17") end

return web.Application({
  {"/", Main},
  {"/hello/([^/]+)", Greet, {punct = "!"}, name = "greet"},
  {"/items/(%d+)/([%w_]+)", Item},
  {"/only%-get", OnlyGet},
  {"/get%-post", GetPost},
  {"/args", Args},
  {"/required", Required},
  {"/reqinfo", ReqInfo},
  {"/headers", Headers},
  {"/inject/(%w+)", Inject},
  {"/json", Json},
  {"/redirect/(%w*)", Redirect},
  {"/cookie/set", CookieSet},
  {"/cookie/get", CookieGet},
  {"/cookie/clear", CookieClear},
  {"/private", Private},
  {"/login", Login},
  {"/teapot", Teapot},
  {"/boom", Boom},
  {"/custom%-error", CustomError},
  {"/status", Status},
  {"/stream", Stream},
  {"/finishing", Finishing},
  {"/async", Async},
  {"/prepared", Prepared},
  {"/wait", Wait},
  {"/stats", Stats},
  {"/reverse", Reverse},
  {"/head", Head},
  {"/files/(.*)", web.StaticFileHandler, {path = here .. "/static", default_filename = "index.html"}},
  {"/tmpfiles/(.*)", web.StaticFileHandler, {path = os.getenv("GUST_TEST_STATIC") or (here .. "/static")}},
  {"/old", web.RedirectHandler, {url = "/"}},
  {"/gone", web.ErrorHandler, {status_code = 410}},
}, {
  cookie_secret = "integration-test-secret",
  login_url = "/login",
  static_path = here .. "/static",
})
