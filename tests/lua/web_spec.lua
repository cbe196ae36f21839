-- busted --lua=luajit -m 'lua/?.lua;lua/?/init.lua;tests/lua/?.lua' tests/lua/web_spec.lua
--
-- gust.web against a fake gust.core (tests/lua/fake_core.lua): each request
-- runs app(req, method, path, query) in a coroutine as the core does, and
-- the fake handle records what finish/flush/send_file were given.

local fake = require "fake_core"
local web = require "gust.web"
local class = require "gust.class"
local httputil = require "gust.httputil"

local fetch = fake.fetch

-- A handler class from a table of methods.
local function handler(methods)
  return web.RequestHandler:extend(methods or {})
end

local function app_with(handler_class, settings, pattern)
  return web.Application({ { pattern or "/", handler_class } }, settings)
end

local function html_page(code, reason)
  return string.format("<html><title>%d: %s</title><body>%d: %s</body></html>",
                       code, reason, code, reason)
end

describe("gust.class", function()
  it("extends, inherits methods and metamethods, and knows its instances", function()
    local Base = { __tostring = function() return "base!" end }
    Base.__index = Base
    function Base.hello() return "hello" end
    local Sub = class.extend(Base)
    function Sub.bye() return "bye" end
    local obj = setmetatable({}, Sub)
    assert.equal("hello", obj:hello())
    assert.equal("bye", obj:bye())
    assert.equal("base!", tostring(obj))
    assert.is_true(class.is_instance(obj, Sub))
    assert.is_true(class.is_instance(obj, Base))
    assert.is_false(class.is_instance({}, Base))
    assert.is_nil(rawget(_G, "class"))
  end)

  it("RequestHandler:extend() returns a subclass whose instances find parent methods", function()
    local A = web.RequestHandler:extend()
    function A:get() self:write("A") end
    local B = A:extend()
    local app = web.Application({ { "/", B } })
    assert.equal("A", fetch(app, "GET", "/"):body_text())
    assert.is_true(class.is_instance(setmetatable({}, B), web.RequestHandler))
  end)
end)

describe("routing", function()
  local Echo = handler({
    get = function(self, ...)
      local args = { ... }
      for i = 1, select("#", ...) do args[i] = tostring(args[i]) end
      self:write(self._tag .. ":" .. table.concat(args, "|"))
    end,
    initialize = function(self, kw) self._tag = kw.tag or "?" end,
  })

  it("serves a hello-world touching only method and path", function()
    local Main = handler({ get = function(self) self:write("Hello, world") end })
    local req = fetch(web.Application({ { "/", Main } }), "GET", "/")
    assert.equal(200, req.response.status)
    assert.equal("Hello, world", req.response.body)
    assert.same({ "finish" }, req.calls) -- no headers(), uri(), body() ...
    assert.is_nil(req.response.reason)
  end)

  it("anchors patterns at both ends", function()
    local app = web.Application({
      { "/a", Echo, { tag = "a" } },
      { "/b/(%d+)", Echo, { tag = "b" } },
      { "^/c/(%d+)$", Echo, { tag = "c" } },
    })
    assert.equal(200, fetch(app, "GET", "/a").response.status)
    assert.equal(404, fetch(app, "GET", "/a/b").response.status)
    assert.equal(404, fetch(app, "GET", "/xa").response.status)
    assert.equal("b:12", fetch(app, "GET", "/b/12"):body_text())
    assert.equal(404, fetch(app, "GET", "/b/12x").response.status)
    assert.equal(404, fetch(app, "GET", "/x/b/12").response.status)
    assert.equal("c:7", fetch(app, "GET", "/c/7"):body_text())
    assert.equal(404, fetch(app, "GET", "/c/7/").response.status)
  end)

  it("takes the first matching route, plain or pattern", function()
    local app = web.Application({
      { "/x/(.*)", Echo, { tag = "pattern" } },
      { "/x/y", Echo, { tag = "literal" } },
      { "/p", Echo, { tag = "first" } },
      { "/(p)", Echo, { tag = "second" } },
      { "/p", Echo, { tag = "third" } },
    })
    assert.equal("pattern:y", fetch(app, "GET", "/x/y"):body_text())
    assert.equal("first:", fetch(app, "GET", "/p"):body_text())
  end)

  it("URL-decodes captures without turning + into space", function()
    local app = web.Application({
      { "/hello/([^/]+)", Echo, { tag = "h" } },
      { "/two/([^/]*)/([^/]*)", Echo, { tag = "t" } },
      { "/three/(%a+)/(%d+)/(.*)", Echo, { tag = "3" } },
    })
    assert.equal("h:a b/c+d", fetch(app, "GET", "/hello/a%20b%2Fc+d"):body_text())
    assert.equal("t:x y|", fetch(app, "GET", "/two/x%20y/"):body_text())
    assert.equal("3:abc|42|r/e%st", fetch(app, "GET", "/three/abc/42/r/e%25st"):body_text())
  end)

  it("passes position captures through as numbers", function()
    local app = web.Application({ { "/pos/()x", Echo, { tag = "p" } } })
    assert.equal("p:6", fetch(app, "GET", "/pos/x"):body_text())
  end)

  it("answers 404 with Tornado's page when nothing matches", function()
    local app = web.Application({ { "/", Echo } })
    local req = fetch(app, "GET", "/missing")
    assert.equal(404, req.response.status)
    assert.equal(html_page(404, "Not Found"), req.response.body)
    -- even for a verb no route defines, and with XSRF on
    app = web.Application({ { "/", Echo } }, { xsrf_cookies = true })
    assert.equal(404, fetch(app, "POST", "/missing").response.status)
    assert.equal(404, fetch(app, "DELETE", "/missing").response.status)
  end)

  it("uses settings.default_handler_class instead of 404", function()
    local Default = handler({
      initialize = function(self, kw) self._word = kw.word end,
      get = function(self) self:set_status(418) self:write("teapot " .. tostring(self._word)) end,
    })
    local app = web.Application({ { "/", Echo } }, {
      default_handler_class = Default, default_handler_args = { word = "yes" },
    })
    local req = fetch(app, "GET", "/nowhere")
    assert.equal(418, req.response.status)
    assert.equal("teapot yes", req.response.body)
  end)

  it("rejects bad routes when the Application is built", function()
    assert.has_error(function() web.Application({ { "/(", Echo } }) end)
    assert.has_error(function() web.Application({ { "/[a", Echo } }) end)
    assert.has_error(function() web.Application({ { "/a)", Echo } }) end)
    assert.has_error(function() web.Application({ { "/a%", Echo } }) end)
    assert.has_error(function() web.Application({ { "/", {} } }) end)
    assert.has_error(function() web.Application({ { 42, Echo } }) end)
    assert.has_error(function() web.Application({ "/" }) end)
  end)

  it("reverses named routes, escaping arguments", function()
    local app = web.Application({
      { "/hello/([^/]+)", Echo, nil, name = "greet" },
      { "/plain%.txt", Echo, name = "plain" },
      { "^/a/(%d+)/b/(%w+)$", Echo, name = "two" },
      { "/any/.*", Echo, name = "wild" },
      web.url("/u/(%d+)", Echo, nil, "viaurl"),
    })
    assert.equal("/hello/a%20b%2Fc", app:reverse_url("greet", "a b/c"))
    assert.equal("/plain.txt", app:reverse_url("plain"))
    assert.equal("/a/1/b/x", app:reverse_url("two", 1, "x"))
    assert.equal("/u/5", app:reverse_url("viaurl", 5))
    assert.has_error(function() app:reverse_url("nope") end, "nope not found in named urls")
    assert.has_error(function() app:reverse_url("greet") end)
    assert.has_error(function() app:reverse_url("wild") end)
  end)

  it("offers reverse_url on handlers", function()
    local H = handler({ get = function(self) self:write(self:reverse_url("me", "q")) end })
    local app = web.Application({ { "/me/(.+)", H, name = "me" } })
    assert.equal("/me/q", fetch(app, "GET", "/me/z"):body_text())
  end)

  it("is callable and listens through core.listen", function()
    local settings = { debug = false, max_body_size = 10 }
    local app = web.Application({ { "/", Echo } }, settings)
    local listener = app:listen(8123, "127.0.0.1")
    assert.equal(8123, listener:port())
    assert.equal(app, listener.handler)
    assert.equal("127.0.0.1", listener.address)
    assert.equal(app.settings, listener.opts)
    assert.equal(10, listener.opts.max_body_size)
    assert.has_error(function() app:listen(1) end,
                     "cannot listen on the default address port 1: permission denied")
  end)

  it("fills settings defaults without changing the caller's table", function()
    local settings = { debug = true }
    local app = web.Application({}, settings)
    assert.equal("/static/", app.settings.static_url_prefix)
    assert.equal(100 * 1024 * 1024, app.settings.max_body_size)
    assert.is_true(app.settings.serve_traceback)
    assert.is_nil(settings.serve_traceback)
  end)
end)

describe("verbs", function()
  it("answers 405 with Allow listing the verbs of the class chain", function()
    local Parent = handler({ get = function(self) self:write("g") end })
    local Child = Parent:extend()
    function Child:post() self:write("p") end
    local app = web.Application({ { "/", Child } })
    local req = fetch(app, "PUT", "/")
    assert.equal(405, req.response.status)
    assert.equal("GET, POST", req.response.headers["Allow"])
    assert.equal(html_page(405, "Method Not Allowed"), req.response.body)
    assert.equal(405, fetch(app, "HEAD", "/").response.status)
    assert.equal(405, fetch(app, "PROPFIND", "/").response.status)
    assert.equal(405, fetch(app, "FINISH", "/").response.status)
    assert.equal("p", fetch(app, "POST", "/"):body_text())
  end)

  it("dispatches every supported verb", function()
    local H = handler({})
    for _, verb in ipairs({ "get", "head", "post", "put", "patch", "delete", "options" }) do
      H[verb] = function(self) self:write(verb) end
    end
    local app = web.Application({ { "/", H } })
    for _, m in ipairs({ "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS" }) do
      assert.equal(m:lower(), fetch(app, m, "/"):body_text())
    end
  end)

  it("honours a class's own SUPPORTED_METHODS", function()
    local H = handler({ SUPPORTED_METHODS = { "GET", "PROPFIND" },
                        propfind = function(self) self:write("pf") end,
                        post = function(self) self:write("never") end })
    local app = web.Application({ { "/", H } })
    assert.equal("pf", fetch(app, "PROPFIND", "/"):body_text())
    local req = fetch(app, "POST", "/")
    assert.equal(405, req.response.status)
    assert.equal("PROPFIND", req.response.headers["Allow"])
  end)
end)

describe("life cycle", function()
  before_each(fake.clear_logs)

  it("runs initialize, prepare, the verb and on_finish in order", function()
    local order = {}
    local H = handler({
      initialize = function(_, kw) order[#order + 1] = "initialize:" .. kw.x end,
      prepare = function() order[#order + 1] = "prepare" end,
      get = function(self, a) order[#order + 1] = "get:" .. a; self:write("ok") end,
      on_finish = function() order[#order + 1] = "on_finish" end,
    })
    local req = fetch(web.Application({ { "/(%w+)", H, { x = "1" } } }), "GET", "/zz")
    assert.same({ "initialize:1", "prepare", "get:zz", "on_finish" }, order)
    assert.equal("ok", req.response.body)
    assert.equal(1, req.finish_count)
  end)

  it("does not call the verb when prepare finished the request", function()
    local called = false
    local H = handler({
      prepare = function(self) self:finish("from prepare") end,
      get = function() called = true end,
    })
    local req = fetch(app_with(H), "GET", "/")
    assert.is_false(called)
    assert.equal("from prepare", req.response.body)
  end)

  it("raises on a second finish(), and on_finish still runs once", function()
    local finishes, err = 0, nil
    local H = handler({
      get = function(self)
        self:finish("one")
        local ok, e = pcall(self.finish, self, "two")
        err = e
        assert(not ok)
      end,
      on_finish = function() finishes = finishes + 1 end,
    })
    local req = fetch(app_with(H), "GET", "/")
    assert.matches("finish%(%) called twice", err)
    assert.equal("one", req.response.body)
    assert.equal(1, req.finish_count)
    assert.equal(1, finishes)
  end)

  it("logs a second finish() that escapes the verb without a second response", function()
    local H = handler({ get = function(self) self:finish("a") self:finish("b") end })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal("a", req.response.body)
    assert.equal(1, req.finish_count)
    assert.truthy(fake.find_log("error", "finish() called twice"))
  end)

  it("refuses write() after finish()", function()
    local err
    local H = handler({ get = function(self)
      self:finish()
      local ok, e = pcall(self.write, self, "x")
      err = ok and "no error" or e
    end })
    fetch(app_with(H), "GET", "/")
    assert.matches("Cannot write%(%) after finish%(%)", err)
  end)

  it("turns HTTPError into its status and logs the log_message as a warning", function()
    local H = handler({ get = function() error(web.HTTPError(403, "no %s for %d", "entry", 7)) end })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal(403, req.response.status)
    assert.equal(html_page(403, "Forbidden"), req.response.body)
    assert.truthy(fake.find_log("warn", "403 GET / (127.0.0.1): no entry for 7"))
    assert.is_nil(fake.find_log("error"))
  end)

  it("uses an HTTPError's reason and headers", function()
    local H = handler({ get = function()
      error(web.HTTPError(499, { reason = "Client Went Away", headers = { ["X-Why"] = "gone" } }))
    end })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal(499, req.response.status)
    assert.equal("Client Went Away", req.response.reason)
    assert.equal("gone", req.response.headers["X-Why"])
    assert.equal(html_page(499, "Client Went Away"), req.response.body)
  end)

  it("gives HTTPError a __tostring and MissingArgumentError a 400", function()
    assert.equal("HTTP 404: Not Found (gone)", tostring(web.HTTPError(404, "gone")))
    assert.equal("HTTP 500: Internal Server Error", tostring(web.HTTPError()))
    local e = web.MissingArgumentError("q")
    assert.is_true(web.is_http_error(e))
    assert.equal(400, e.status_code)
    assert.equal("q", e.arg_name)
    assert.equal("HTTP 400: Bad Request (Missing argument q)", tostring(e))
    assert.is_false(web.is_http_error({ status_code = 400 }))
    assert.is_false(web.is_http_error("x"))
  end)

  it("turns any other error into a 500, logged with a traceback, hidden from the client", function()
    local function deep() error("boom in deep") end
    local H = handler({ get = function(self) self:write("partial") deep() end })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal(500, req.response.status)
    assert.equal(html_page(500, "Internal Server Error"), req.response.body)
    local entry = fake.find_log("error", "Uncaught exception GET / (127.0.0.1)")
    assert.truthy(entry)
    assert.matches("boom in deep", entry.msg)
    assert.matches("stack traceback", entry.msg)
    assert.matches("in function 'deep'", entry.msg) -- taken at the error site
  end)

  it("sends the traceback as text with debug", function()
    local H = handler({ get = function() error("kaboom") end })
    local req = fetch(app_with(H, { debug = true }), "GET", "/")
    assert.equal(500, req.response.status)
    assert.equal("text/plain; charset=UTF-8", req.response.headers["Content-Type"])
    assert.matches("kaboom", req.response.body)
    assert.matches("stack traceback", req.response.body)
  end)

  it("turns non-string errors into 500s too", function()
    local H = handler({ get = function() error({ code = 1 }) end })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal(500, req.response.status)
    H = handler({ get = function() error(setmetatable({}, { __tostring = function() error("bad") end })) end })
    assert.equal(500, fetch(app_with(H), "GET", "/").response.status)
  end)

  it("calls a custom write_error with the status and the error", function()
    local seen
    local H = handler({
      get = function() error(web.HTTPError(404, "x")) end,
      write_error = function(self, status, err, tb)
        seen = { status, err, tb }
        self:write({ error = status })
      end,
    })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal(404, seen[1])
    assert.equal(404, seen[2].status_code)
    assert.is_nil(seen[3])
    assert.equal('{"error":404}', req.response.body)
    assert.equal("application/json; charset=UTF-8", req.response.headers["Content-Type"])
  end)

  it("still answers when write_error itself fails", function()
    local finishes = 0
    local H = handler({
      get = function() error("first") end,
      write_error = function() error("second") end,
      on_finish = function() finishes = finishes + 1 end,
    })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal(500, req.response.status)
    assert.equal(1, finishes)
    assert.truthy(fake.find_log("error", "Uncaught exception in write_error"))
  end)

  it("runs on_finish once after an error and logs an error in on_finish", function()
    local finishes = 0
    local H = handler({
      get = function() error("x") end,
      on_finish = function() finishes = finishes + 1; error("in on_finish") end,
    })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal(500, req.response.status)
    assert.equal(1, finishes)
    assert.truthy(fake.find_log("error", "in on_finish"))
  end)

  it("ends the request on web.Finish without logging an error", function()
    local H = handler({ get = function(self) self:write("a") error(web.Finish("b")) end })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal(200, req.response.status)
    assert.equal("ab", req.response.body)
    assert.is_nil(fake.find_log("error"))
  end)

  it("calls settings.log_function after each request", function()
    local logged
    local H = handler({ get = function(self) self:set_status(201) end })
    fetch(app_with(H, { log_function = function(h) logged = h:get_status() end }), "GET", "/")
    assert.equal(201, logged)
  end)

  it("exposes application and settings on the handler", function()
    local seen
    local H = handler({ get = function(self) seen = { self.application, self.settings.foo } end })
    local app = app_with(H, { foo = "bar" })
    fetch(app, "GET", "/")
    assert.equal(app, seen[1])
    assert.equal("bar", seen[2])
  end)

  it("gives initialize a read-only empty table when the route has no kwargs", function()
    local got
    local H = handler({ initialize = function(_, kw) got = kw; kw.x = 1 end })
    local req = fetch(app_with(H), "GET", "/")
    assert.same({}, got)
    assert.equal(500, req.response.status)
  end)
end)

describe("asynchronous handlers", function()
  before_each(fake.clear_logs)

  it("stay open after the verb returns until finish() is called", function()
    local saved, finishes = nil, 0
    local H = handler({
      get = web.asynchronous(function(self) saved = self; self:write("later ") end),
      on_finish = function() finishes = finishes + 1 end,
    })
    local req = fetch(app_with(H), "GET", "/")
    assert.is_nil(req.response)
    local closes = 0
    saved.request:on_close(function() closes = closes + 1 end)
    assert.equal("dead", coroutine.status(req.co))
    assert.equal(0, closes)
    -- a callback, outside the request's coroutine, finishes it
    saved:finish("done")
    assert.equal("later done", req.response.body)
    assert.equal(1, finishes)
    assert.equal(1, closes)
    -- the client leaving now is no news
    fake.close(req)
    assert.equal(1, closes)
  end)

  it("have on_connection_close called when the client goes away", function()
    local closed, saved = 0, nil
    local H = handler({
      get = web.asynchronous(function(self) saved = self end),
      on_connection_close = function() closed = closed + 1 end,
    })
    local req = fetch(app_with(H), "GET", "/")
    fake.close(req)
    assert.equal(1, closed)
    assert.is_true(saved.request.connection_closed)
    -- finishing later is harmless: the handle says "closed"
    local ok, err = saved:finish()
    assert.is_nil(ok)
    assert.equal("closed", err)
    fake.close(req)
    assert.equal(1, closed)
  end)

  it("log an error raised in on_connection_close", function()
    local H = handler({
      get = web.asynchronous(function() end),
      on_connection_close = function() error("close failed") end,
    })
    local req = fetch(app_with(H), "GET", "/")
    fake.close(req)
    assert.truthy(fake.find_log("error", "close failed"))
  end)

  it("do not get on_connection_close after finishing", function()
    local closed = 0
    local H = handler({ get = function(self) self:write("x") end,
                        on_connection_close = function() closed = closed + 1 end })
    local req = fetch(app_with(H), "GET", "/")
    fake.close(req)
    assert.equal(0, closed)
  end)

  it("reject a non-function", function()
    assert.has_error(function() web.asynchronous("x") end)
    assert.has_error(function() web.authenticated(nil) end)
  end)
end)

describe("output", function()
  before_each(fake.clear_logs)

  it("writes tables as JSON", function()
    local H = handler({ get = function(self) self:write({ a = 1, s = "</script>" }) end })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal("application/json; charset=UTF-8", req.response.headers["Content-Type"])
    local decoded = require("cjson").decode(req.response.body)
    assert.same({ a = 1, s = "</script>" }, decoded)
    assert.is_nil(req.response.body:find("</", 1, true))
  end)

  it("writes numbers and refuses other types", function()
    local err
    local H = handler({ get = function(self)
      self:write(42)
      self:write("")
      local ok, e = pcall(self.write, self, true)
      err = ok and "no error" or e
    end })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal("42", req.response.body)
    assert.matches("string or table expected", err)
  end)

  it("hands the core the buffered chunks as an array", function()
    local H = handler({ get = function(self) self:write("a") self:write("b") self:finish("c") end })
    local req = fetch(app_with(H), "GET", "/")
    assert.same({ "a", "b", "c" }, req.response.raw_body)
  end)

  it("normalises header names, converts numbers, adds and clears", function()
    local H = handler({ get = function(self)
      self:set_header("x-custom-thing", 12)
      self:add_header("X-Multi", "1")
      self:add_header("x-multi", "2")
      self:add_header("X-Multi", "3")
      self:set_header("X-Gone", "v")
      self:clear_header("x-gone")
      self:set_header("content-type", "text/plain")
      assert(self:get_header("X-CUSTOM-THING") == "12")
    end })
    local req = fetch(app_with(H), "GET", "/")
    local h = req.response.headers
    assert.equal("12", h["X-Custom-Thing"])
    assert.same({ "1", "2", "3" }, h["X-Multi"])
    assert.is_nil(h["X-Gone"])
    assert.equal("text/plain", h["Content-Type"])
    assert.equal(200, req.response.status)
  end)

  it("refuses header values with CR or LF and bad names", function()
    local errs = {}
    local H = handler({ get = function(self)
      for _, call in ipairs({
        { "set_header", "X-A", "a\r\nSet-Cookie: x=1" },
        { "set_header", "X-A", "a\nb" },
        { "add_header", "X-A", "a\rb" },
        { "set_header", "X-A", {} },
        { "set_header", "X A", "v" },
        { "set_header", "X-A\r\n", "v" },
      }) do
        local ok, e = pcall(self[call[1]], self, call[2], call[3])
        errs[#errs + 1] = ok and "no error" or e
      end
    end })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal(200, req.response.status)
    assert.matches("unsafe header value", errs[1])
    assert.matches("unsafe header value", errs[2])
    assert.matches("unsafe header value", errs[3])
    assert.matches("string expected", errs[4])
    assert.matches("invalid header name", errs[5])
    assert.matches("invalid header name", errs[6])
    assert.is_nil(req.response.headers["X-A"])
  end)

  it("sets known statuses, refuses unknown ones without a reason", function()
    local errs, statuses = {}, {}
    local H = handler({ get = function(self)
      self:set_status(201)
      statuses[1] = self:get_status()
      local ok, e = pcall(self.set_status, self, 299)
      errs[1] = ok and "no error" or e
      ok, e = pcall(self.set_status, self, 42)
      errs[2] = ok and "no error" or e
      ok, e = pcall(self.set_status, self, 200, "O\r\nK")
      errs[3] = ok and "no error" or e
      self:set_status(299, "Custom")
      statuses[2] = self:get_status()
    end })
    local req = fetch(app_with(H), "GET", "/")
    assert.same({ 201, 299 }, statuses)
    assert.matches("unknown status code 299", errs[1])
    assert.matches("status code expected", errs[2])
    assert.matches("CR, LF", errs[3])
    assert.equal(299, req.response.status)
    assert.equal("Custom", req.response.reason)
  end)

  it("flushes headers first, then chunks, and finishes the chunked body", function()
    local results = {}
    local H = handler({ get = function(self)
      self:set_header("X-Stream", "1")
      self:write("one")
      results[1] = self:flush()
      results[2] = self:flush() -- nothing buffered: no empty chunk
      self:write("two")
      results[3] = self:flush()
      self:finish("three")
    end })
    local req = fetch(app_with(H), "GET", "/")
    assert.same({ true, true, true }, results)
    assert.equal(2, #req.flushes)
    assert.equal(200, req.flushes[1].status)
    assert.equal("1", req.flushes[1].headers["X-Stream"])
    assert.equal("one", req.flushes[1].body)
    assert.equal(200, req.flushes[2].status) -- ignored by the core, but required
    assert.is_nil(req.flushes[2].headers)
    assert.equal("two", req.flushes[2].body)
    assert.equal("three", req.response.last_chunk)
    assert.equal("onetwothree", req.response.body)
  end)

  it("lets flush yield inside the handler and resumes where it was", function()
    local after = false
    local H = handler({ get = function(self)
      self:write("x")
      self:flush()
      after = true
      self:write("y")
    end })
    local req = fetch(app_with(H), "GET", "/", { yield_on_flush = true })
    assert.equal("suspended", coroutine.status(req.co))
    assert.is_false(after)
    assert(coroutine.resume(req.co))
    assert.is_true(after)
    assert.equal("xy", req.response.body)
  end)

  it("returns nil, 'closed' from flush when the client is gone", function()
    local r1, r2
    local H = handler({ get = web.asynchronous(function(self) self._saved = true end) })
    local saved
    H.prepare = function(self) saved = self end
    local req = fetch(app_with(H), "GET", "/")
    fake.close(req)
    saved:write("x")
    r1, r2 = saved:flush()
    assert.is_nil(r1)
    assert.equal("closed", r2)
  end)

  it("redirects with 302, 301 or a given 3xx", function()
    local H = handler({ get = function(self)
      local kind = self:get_argument("k")
      if kind == "temp" then self:redirect("/t")
      elseif kind == "perm" then self:redirect("/p", true)
      else self:redirect("/s", false, 303) end
    end })
    local app = app_with(H)
    local req = fetch(app, "GET", "/?k=temp")
    assert.equal(302, req.response.status)
    assert.equal("/t", req.response.headers["Location"])
    assert.equal(301, fetch(app, "GET", "/?k=perm").response.status)
    req = fetch(app, "GET", "/?k=other")
    assert.equal(303, req.response.status)
    assert.equal("/s", req.response.headers["Location"])
    local Bad = handler({ get = function(self) self:redirect("/x", false, 200) end })
    assert.equal(500, fetch(app_with(Bad), "GET", "/").response.status)
    local Inject = handler({ get = function(self) self:redirect("/x\r\nSet-Cookie: a=b") end })
    assert.equal(500, fetch(app_with(Inject), "GET", "/").response.status)
  end)

  it("send_error clears headers and output, then calls write_error", function()
    local H = handler({ get = function(self)
      self:set_header("X-Before", "1")
      self:write("discarded")
      self:send_error(503)
    end })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal(503, req.response.status)
    assert.is_nil(req.response.headers["X-Before"])
    assert.equal(html_page(503, "Service Unavailable"), req.response.body)
  end)

  it("cuts the connection on an error once headers went out", function()
    local finished = 0
    local H = handler({ get = function(self)
      self:write("started")
      self:flush()
      error("late")
    end, on_finish = function() finished = finished + 1 end })
    local req = fetch(app_with(H), "GET", "/")
    assert.is_nil(req.response)           -- never ended as if it were whole
    assert.is_true(req.aborted)
    assert.equal("started", req.flushes[1].body)
    assert.equal(1, finished)
    assert.truthy(fake.find_log("error", "Cannot send error response after headers written"))
  end)

  it("sends no body for 204 and 304", function()
    local H = handler({ get = function(self)
      self:set_header("Content-Type", "text/plain")
      self:set_header("Etag", '"x"')
      self:write("ignored")
      self:set_status(tonumber(self:get_argument("s")))
    end })
    local req = fetch(app_with(H), "GET", "/?s=204")
    assert.equal(204, req.response.status)
    assert.equal("", req.response.body)
    req = fetch(app_with(H), "GET", "/?s=304")
    assert.equal(304, req.response.status)
    assert.equal("", req.response.body)
    assert.is_nil(req.response.headers["Content-Type"])
    assert.equal('"x"', req.response.headers["Etag"])
  end)

  describe("compress_response", function()
    local big = string.rep("gust ", 400)
    local function app(ctype, body)
      return app_with(handler({ get = function(self)
        if ctype then self:set_header("Content-Type", ctype) end
        self:write(body or big)
      end }), { compress_response = true })
    end

    it("gzips a large compressible body when the client accepts gzip", function()
      local req = fetch(app(), "GET", "/", { headers = { ["Accept-Encoding"] = "gzip, deflate" } })
      assert.equal("GZIP(" .. big .. ")", req.response.body)
      assert.equal("gzip", req.response.headers["Content-Encoding"])
      assert.equal("Accept-Encoding", req.response.headers["Vary"])
      req = fetch(app("application/json"), "GET", "/", { headers = { ["Accept-Encoding"] = "gzip" } })
      assert.equal("gzip", req.response.headers["Content-Encoding"])
    end)

    it("leaves small, incompressible or unaccepted bodies alone", function()
      local req = fetch(app(nil, "small"), "GET", "/", { headers = { ["Accept-Encoding"] = "gzip" } })
      assert.equal("small", req.response.body)
      assert.is_nil(req.response.headers["Content-Encoding"])
      req = fetch(app("image/png"), "GET", "/", { headers = { ["Accept-Encoding"] = "gzip" } })
      assert.equal(big, req.response.body)
      assert.is_nil(req.response.headers["Vary"])
      req = fetch(app(), "GET", "/")
      assert.equal(big, req.response.body)
      assert.equal("Accept-Encoding", req.response.headers["Vary"])
    end)

    it("is off by default", function()
      local H = handler({ get = function(self) self:write(big) end })
      local req = fetch(app_with(H), "GET", "/", { headers = { ["Accept-Encoding"] = "gzip" } })
      assert.equal(big, req.response.body)
      assert.is_nil(req.response.headers["Vary"])
    end)
  end)
end)

describe("self.request", function()
  local seen
  local Capture = handler({})
  for _, verb in ipairs({ "get", "post", "put" }) do
    Capture[verb] = function(self) seen = self.request end
  end

  it("has every member of the table in DESIGN 4.1", function()
    local req = fetch(app_with(Capture, nil, "/p.*"), "GET", "/p%20x?a=1&b=2&a=3", {
      headers = { { "Host", "example.com:8080" }, { "X-Dup", "1" }, { "x-dup", "2" } },
      version = "HTTP/1.0", remote_ip = "10.0.0.9",
    })
    assert.equal(200, req.response.status)
    assert.equal("GET", seen.method)
    assert.equal("/p%20x?a=1&b=2&a=3", seen.uri)
    assert.equal("/p%20x", seen.path)
    assert.equal("a=1&b=2&a=3", seen.query)
    assert.equal("HTTP/1.0", seen.version)
    assert.equal("example.com:8080", seen.headers["host"])
    assert.equal("example.com:8080", seen.headers["HOST"])
    assert.same({ "1", "2" }, seen.headers:get_list("X-Dup"))
    assert.equal("", seen.body)
    assert.equal("10.0.0.9", seen.remote_ip)
    assert.equal("example.com:8080", seen.host)
    assert.equal("example.com", seen.host_name)
    assert.equal("http", seen.protocol)
    assert.same({ a = { "1", "3" }, b = { "2" } }, seen.query_arguments)
    assert.same({ a = { "1", "3" }, b = { "2" } }, seen.arguments)
    assert.same({}, seen.body_arguments)
    assert.same({}, seen.files)
    assert.equal("http://example.com:8080/p%20x?a=1&b=2&a=3", seen:full_url())
    assert.matches("HTTPServerRequest%(", tostring(seen))
  end)

  it("builds fields only when they are read", function()
    local H = handler({ get = function(self) seen = self.request; self:write("x") end })
    local req = fetch(app_with(H), "GET", "/", { headers = { Host = "h" } })
    for _, k in ipairs({ "headers", "uri", "body", "remote_ip", "arguments", "host", "cookies" }) do
      assert.is_nil(rawget(seen, k), k)
    end
    assert.equal("h", seen.host)
    assert.truthy(rawget(seen, "headers"))
    local n = #req.calls
    local _, _ = seen.headers, seen.host
    assert.equal(n, #req.calls) -- built once
  end)

  it("trusts X-Real-Ip / X-Forwarded-For / X-Scheme only with xheaders", function()
    local headers = { ["X-Forwarded-For"] = "1.2.3.4, 5.6.7.8", ["X-Scheme"] = "https" }
    fetch(app_with(Capture), "GET", "/", { headers = headers })
    assert.equal("127.0.0.1", seen.remote_ip)
    assert.equal("http", seen.protocol)

    local app = app_with(Capture, { xheaders = true })
    fetch(app, "GET", "/", { headers = headers })
    assert.equal("5.6.7.8", seen.remote_ip)
    assert.equal("https", seen.protocol)

    fetch(app, "GET", "/", { headers = { ["X-Real-Ip"] = "2001:db8::1", ["X-Forwarded-For"] = "9.9.9.9" } })
    assert.equal("2001:db8::1", seen.remote_ip)

    fetch(app, "GET", "/", { headers = { ["X-Real-Ip"] = "<script>", ["X-Forwarded-Proto"] = "gopher" } })
    assert.equal("127.0.0.1", seen.remote_ip)
    assert.equal("http", seen.protocol)

    fetch(app, "GET", "/", { headers = { ["X-Forwarded-Proto"] = "http, https" } })
    assert.equal("https", seen.protocol)

    local trusted = app_with(Capture, { xheaders = true, trusted_downstream = { "5.6.7.8" } })
    fetch(trusted, "GET", "/", { headers = { ["X-Forwarded-For"] = "1.2.3.4, 5.6.7.8" } })
    assert.equal("1.2.3.4", seen.remote_ip)
  end)

  it("parses urlencoded bodies and merges them with the query", function()
    fetch(app_with(Capture), "POST", "/?a=q", {
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = "a=b1&c=%20d+e",
    })
    assert.same({ a = { "b1" }, c = { " d e" } }, seen.body_arguments)
    assert.same({ a = { "q", "b1" }, c = { " d e" } }, seen.arguments)
    assert.same({ a = { "q" } }, seen.query_arguments)
  end)

  it("parses multipart bodies into arguments and files", function()
    local body = table.concat({
      "--XyZ",
      'Content-Disposition: form-data; name="title"',
      "",
      "hello",
      "--XyZ",
      'Content-Disposition: form-data; name="up"; filename="a.txt"',
      "Content-Type: text/plain",
      "",
      "file body",
      "--XyZ--",
      "",
    }, "\r\n")
    fetch(app_with(Capture), "POST", "/", {
      headers = { ["Content-Type"] = "multipart/form-data; boundary=XyZ" }, body = body,
    })
    assert.same({ title = { "hello" } }, seen.body_arguments)
    assert.same({ up = { { filename = "a.txt", content_type = "text/plain", body = "file body" } } },
                seen.files)
  end)

  it("answers 400 to a malformed multipart body", function()
    seen = nil
    local req = fetch(app_with(Capture), "POST", "/", {
      headers = { ["Content-Type"] = "multipart/form-data; boundary=XyZ" }, body = "--XyZ\r\nbroken",
    })
    assert.equal(400, req.response.status)
    assert.is_nil(seen)
    req = fetch(app_with(Capture), "PUT", "/", {
      headers = { ["Content-Type"] = "multipart/form-data" }, body = "x",
    })
    assert.equal(400, req.response.status)
  end)

  it("ignores bodies of other content types", function()
    local req = fetch(app_with(Capture), "POST", "/", {
      headers = { ["Content-Type"] = "application/json" }, body = '{"a":1}',
    })
    assert.equal(200, req.response.status)
    assert.equal('{"a":1}', seen.body)
    assert.same({}, seen.body_arguments)
  end)
end)

describe("arguments", function()
  local result
  local H = handler({})
  -- ?fn=<method>&name=<argument>: the result of self:<method>(<argument>)
  function H:get()
    local fn, name = self:get_query_argument("fn"), self:get_query_argument("name", nil)
    result = { pcall(self[fn], self, name) }
  end
  H.post = H.get
  local app = app_with(H)

  local function call(method, query, opts)
    result = nil
    local req = fetch(app, method, "/?" .. query, opts)
    return req, result
  end

  it("get_argument returns the last value, stripped", function()
    local _, r = call("GET", "fn=get_argument&name=x&x=1&x=%20two%20")
    assert.same({ true, "two" }, r)
  end)

  it("get_argument returns the default, and a 400 with none", function()
    local H2 = handler({ get = function(self)
      local a = self:get_argument("missing", "dflt")
      local b = self:get_argument("missing", nil)
      self:write(a .. tostring(b))
    end })
    assert.equal("dfltnil", fetch(app_with(H2), "GET", "/"):body_text())
    local H3 = handler({ get = function(self) self:write(self:get_argument("needed")) end })
    local req = fetch(app_with(H3), "GET", "/")
    assert.equal(400, req.response.status)
    assert.equal(html_page(400, "Bad Request"), req.response.body)
    assert.truthy(fake.find_log("warn", "Missing argument needed"))
  end)

  it("get_arguments returns every value; control characters become spaces", function()
    local _, r = call("GET", "fn=get_arguments&name=x&x=a&x=b%01c&x=%20d")
    assert.same({ true, { "a", "b c", "d" } }, r)
    _, r = call("GET", "fn=get_arguments&name=none")
    assert.same({ true, {} }, r)
  end)

  it("keeps whitespace when strip is false", function()
    local got
    local H2 = handler({ get = function(self)
      got = { self:get_argument("x", nil, false), self:get_arguments("x", false),
              self:get_query_argument("x", nil, false) }
    end })
    fetch(app_with(H2), "GET", "/?x=%20a%20")
    assert.same({ " a ", { " a " }, " a " }, got)
  end)

  it("parses a GET body only when it is read, ignoring a malformed one", function()
    fake.clear_logs()
    local got
    local H2 = handler({ get = function(self) got = self:get_body_argument("a", "none") end })
    local opts = { headers = { ["Content-Type"] = "multipart/form-data; boundary=B" }, body = "junk" }
    local req = fetch(app_with(H2), "GET", "/", opts)
    assert.equal(200, req.response.status)
    assert.equal("none", got)
    assert.truthy(fake.find_log("warn", "invalid multipart/form-data"))
    assert.is_nil(fake.find_log("warn", "400"))
  end)

  it("separates query and body arguments", function()
    local opts = { headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }, body = "b=body&x=fromb" }
    local _, r = call("POST", "fn=get_query_argument&name=x&x=fromq", opts)
    assert.same({ true, "fromq" }, r)
    _, r = call("POST", "fn=get_body_argument&name=x&x=fromq", opts)
    assert.same({ true, "fromb" }, r)
    _, r = call("POST", "fn=get_argument&name=x&x=fromq", opts)
    assert.same({ true, "fromb" }, r)
    _, r = call("POST", "fn=get_body_arguments&name=b", opts)
    assert.same({ true, { "body" } }, r)
    _, r = call("POST", "fn=get_query_arguments&name=x&x=1&x=2", opts)
    assert.same({ true, { "1", "2" } }, r)
    _, r = call("POST", "fn=get_body_argument&name=b", opts)
    assert.same({ true, "body" }, r)
  end)

  it("raises MissingArgumentError for missing query/body arguments", function()
    local H2 = handler({ get = function(self) self:get_query_argument("q") end,
                         post = function(self) self:get_body_argument("b") end })
    assert.equal(400, fetch(app_with(H2), "GET", "/").response.status)
    assert.equal(400, fetch(app_with(H2), "POST", "/?b=1").response.status)
  end)
end)

describe("cookies", function()
  before_each(fake.clear_logs)

  it("reads cookies with a default", function()
    local got = {}
    local H = handler({ get = function(self)
      got = { self:get_cookie("a"), self:get_cookie("b"), self:get_cookie("zz", "dflt") }
    end })
    fetch(app_with(H), "GET", "/", { headers = { Cookie = 'a=1; b="quoted"' } })
    assert.same({ "1", "quoted", "dflt" }, got)
  end)

  it("sets, replaces and clears cookies", function()
    local H = handler({ get = function(self)
      self:set_cookie("a", "1")
      self:set_cookie("a", "2", { path = "/x", httponly = true, secure = true, samesite = "Lax" })
      self:set_cookie("n", 5, { expires_days = 1 })
      self:clear_cookie("old", { path = "/p" })
    end })
    local req = fetch(app_with(H), "GET", "/")
    local set = req.response.headers["Set-Cookie"]
    assert.equal(3, #set)
    assert.equal("a=2; Path=/x; Secure; HttpOnly; SameSite=Lax", set[1])
    assert.matches("^n=5; Expires=.* GMT; Path=/$", set[2])
    assert.matches("^old=; Expires=.*; Max%-Age=0; Path=/p$", set[3])
  end)

  it("refuses bad cookie values", function()
    local H = handler({ get = function(self) self:set_cookie("a", "x;y") end })
    assert.equal(500, fetch(app_with(H), "GET", "/").response.status)
  end)

  it("keeps cookies on an error page, as Tornado does", function()
    local H = handler({ get = function(self) self:set_cookie("k", "v") error(web.HTTPError(404)) end })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal(404, req.response.status)
    assert.equal("k=v; Path=/", req.response.headers["Set-Cookie"])
  end)

  describe("secure cookies", function()
    local H = handler({
      get = function(self)
        local v = self:get_secure_cookie("user", nil, tonumber(self:get_argument("days", "31")))
        self:write(tostring(v))
      end,
      post = function(self) self:set_secure_cookie("user", "alice|admin") end,
    })
    local app = app_with(H, { cookie_secret = "s3cret" })

    it("round-trip, and a tampered or foreign value reads as nil", function()
      local req = fetch(app, "POST", "/")
      local cookie = fake.cookies_from(req)
      assert.matches("^user=2|1:0|10:%d+|4:user|", cookie)
      assert.matches("Expires=", req.response.headers["Set-Cookie"])
      assert.equal("alice|admin", fetch(app, "GET", "/", { headers = { Cookie = cookie } }):body_text())

      local tampered = cookie:gsub("|4:user|(%d+):(.)", function(n, c)
        return "|4:user|" .. n .. ":" .. (c == "Y" and "Z" or "Y")
      end)
      assert.not_equal(cookie, tampered)
      assert.equal("nil", fetch(app, "GET", "/", { headers = { Cookie = tampered } }):body_text())

      local other = app_with(H, { cookie_secret = "another" })
      assert.equal("nil", fetch(other, "GET", "/", { headers = { Cookie = cookie } }):body_text())
      assert.equal("nil", fetch(app, "GET", "/"):body_text())
      assert.equal("nil", fetch(app, "GET", "/", { headers = { Cookie = "user=garbage" } }):body_text())
    end)

    it("expire after max_age_days", function()
      local cookie = fake.cookies_from(fetch(app, "POST", "/"))
      local saved = fake.clock
      fake.clock = fake.clock + 3 * 86400
      local ok, err = pcall(function()
        assert.equal("nil", fetch(app, "GET", "/?days=2", { headers = { Cookie = cookie } }):body_text())
        local req = fetch(app, "GET", "/?days=4", { headers = { Cookie = cookie } })
        assert.equal("alice|admin", req:body_text())
      end)
      fake.clock = saved
      assert(ok, err)
    end)

    it("need settings.cookie_secret", function()
      local req = fetch(app_with(H), "POST", "/")
      assert.equal(500, req.response.status)
      assert.truthy(fake.find_log("error", "You must define the 'cookie_secret' setting"))
    end)
  end)
end)

describe("xsrf", function()
  local Form = handler({
    get = function(self) self:write(self:xsrf_form_html()) end,
    post = function(self) self:write("posted") end,
    delete = function(self) self:write("deleted") end,
  })
  local app = app_with(Form, { xsrf_cookies = true })

  local function token_and_cookie()
    local req = fetch(app, "GET", "/")
    local token = req.response.body:match('value="([^"]+)"')
    return token, fake.cookies_from(req)
  end

  it("renders a hidden field and sets the _xsrf cookie", function()
    local req = fetch(app, "GET", "/")
    assert.matches('^<input type="hidden" name="_xsrf" value="2|%x+|%x+|%d+"/>$', req.response.body)
    assert.matches("^_xsrf=2|", req.response.headers["Set-Cookie"])
  end)

  it("answers 403 to a POST without a token", function()
    local _, cookie = token_and_cookie()
    local req = fetch(app, "POST", "/", { headers = { Cookie = cookie } })
    assert.equal(403, req.response.status)
    assert.equal(403, fetch(app, "DELETE", "/").response.status)
  end)

  it("accepts a token matching the cookie, in a form or a header", function()
    local token, cookie = token_and_cookie()
    local req = fetch(app, "POST", "/", {
      headers = { Cookie = cookie, ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = "_xsrf=" .. token,
    })
    assert.equal(200, req.response.status)
    assert.equal("posted", req.response.body)
    req = fetch(app, "DELETE", "/", { headers = { Cookie = cookie, ["X-Xsrftoken"] = token } })
    assert.equal("deleted", req.response.body)
    -- the cookie value itself, and a fresh masking of the same token, work too
    local cookie_value = cookie:match("_xsrf=(.*)")
    req = fetch(app, "POST", "/?_xsrf=" .. cookie_value, { headers = { Cookie = cookie } })
    assert.equal(200, req.response.status)
  end)

  it("answers 403 to a token that does not match the cookie", function()
    local token = token_and_cookie()
    local _, other_cookie = token_and_cookie()
    local req = fetch(app, "POST", "/?_xsrf=" .. token, { headers = { Cookie = other_cookie } })
    assert.equal(403, req.response.status)
    req = fetch(app, "POST", "/?_xsrf=" .. token)
    assert.equal(403, req.response.status)
    req = fetch(app, "POST", "/?_xsrf=2|zz|zz|1", { headers = { Cookie = other_cookie } })
    assert.equal(403, req.response.status)
  end)

  it("does not check GET, HEAD or OPTIONS, nor when xsrf_cookies is off", function()
    local H = handler({ options = function(self) self:write("o") end,
                        post = function(self) self:write("p") end })
    local on = app_with(H, { xsrf_cookies = true })
    assert.equal(200, fetch(on, "OPTIONS", "/").response.status)
    assert.equal(200, fetch(app_with(H), "POST", "/").response.status)
  end)

  it("is a method any handler can call", function()
    local H = handler({ get = function(self) self:check_xsrf_cookie() end })
    assert.equal(403, fetch(app_with(H), "GET", "/").response.status)
  end)
end)

describe("current_user and authenticated", function()
  local calls = 0
  local Secret = handler({
    get_current_user = function(self)
      calls = calls + 1
      return self:get_cookie("user")
    end,
    get = web.authenticated(function(self)
      local _ = self.current_user
      self:write("hi " .. self.current_user)
    end),
    post = web.authenticated(function(self) self:write("posted") end),
  })

  before_each(function() calls = 0 end)

  it("computes current_user lazily, once", function()
    local app = app_with(Secret)
    local req = fetch(app, "GET", "/", { headers = { Cookie = "user=bob" } })
    assert.equal("hi bob", req.response.body)
    assert.equal(1, calls)
    local Plain = handler({ get_current_user = function() calls = calls + 1 end,
                            get = function(self) self:write("x") end })
    fetch(app_with(Plain), "GET", "/")
    assert.equal(1, calls) -- not asked for, not computed
  end)

  it("caches a nil user too", function()
    local seen = {}
    local H = handler({
      get_current_user = function() calls = calls + 1 end,
      get = function(self) seen = { self.current_user, self.current_user } end,
    })
    fetch(app_with(H), "GET", "/")
    assert.equal(1, calls)
    assert.same({}, seen)
  end)

  it("may be set explicitly, in prepare for instance", function()
    local H = handler({
      prepare = function(self) self.current_user = "preset" end,
      get = web.authenticated(function(self) self:write(self.current_user) end),
    })
    assert.equal("preset", fetch(app_with(H), "GET", "/"):body_text())
  end)

  it("redirects GET to login_url?next=<uri> when there is no user", function()
    local app = app_with(Secret, { login_url = "/login" }, "/secret")
    local req = fetch(app, "GET", "/secret?a=1")
    assert.equal(302, req.response.status)
    assert.equal("/login?next=%2Fsecret%3Fa%3D1", req.response.headers["Location"])
    req = fetch(app, "HEAD", "/secret")
    assert.equal(405, req.response.status) -- Secret defines no head
    assert.equal(403, fetch(app, "POST", "/secret").response.status)
  end)

  it("uses the full URL for an absolute login_url and keeps one with a query", function()
    local app = app_with(Secret, { login_url = "https://auth.example/login" }, "/s")
    local req = fetch(app, "GET", "/s", { headers = { Host = "app.example" } })
    assert.equal("https://auth.example/login?next=http%3A%2F%2Fapp.example%2Fs",
                 req.response.headers["Location"])
    app = app_with(Secret, { login_url = "/login?x=1" }, "/s")
    assert.equal("/login?x=1", fetch(app, "GET", "/s").response.headers["Location"])
  end)

  it("answers 403 without login_url", function()
    assert.equal(403, fetch(app_with(Secret), "GET", "/").response.status)
  end)
end)

describe("built-in handlers", function()
  it("ErrorHandler answers its status_code", function()
    local app = web.Application({ { "/gone", web.ErrorHandler, { status_code = 410 } } })
    local req = fetch(app, "POST", "/gone")
    assert.equal(410, req.response.status)
    assert.equal(html_page(410, "Gone"), req.response.body)
  end)

  it("RedirectHandler fills in captures and keeps the query", function()
    local app = web.Application({
      { "/old/(%w+)", web.RedirectHandler, { url = "/new/{0}" } },
      { "/tmp", web.RedirectHandler, { url = "/elsewhere?x=1", permanent = false } },
    })
    local req = fetch(app, "GET", "/old/abc?q=1&r=2")
    assert.equal(301, req.response.status)
    assert.equal("/new/abc?q=1&r=2", req.response.headers["Location"])
    req = fetch(app, "GET", "/tmp?y=2")
    assert.equal(302, req.response.status)
    assert.equal("/elsewhere?x=1&y=2", req.response.headers["Location"])
  end)

  it("FallbackHandler hands the handler to the container for any verb", function()
    local container = setmetatable({ seen = {} }, {
      __call = function(self, h)
        self.seen[#self.seen + 1] = h.request.method
        h:set_status(202)
        h:write("legacy " .. h.request.path)
        if h.request.method == "POST" then h:finish() end
      end,
    })
    local app = web.Application({ { ".*", web.FallbackHandler, { fallback = container } } })
    local req = fetch(app, "GET", "/any/thing")
    assert.equal(202, req.response.status)
    assert.equal("legacy /any/thing", req.response.body)
    assert.equal("legacy /p", fetch(app, "POST", "/p"):body_text())
    assert.same({ "GET", "POST" }, container.seen)
  end)
end)

describe("render", function()
  local saved_loaded, saved_preload

  before_each(function()
    saved_loaded, saved_preload = package.loaded["gust.template"], package.preload["gust.template"]
    fake.clear_logs()
  end)
  after_each(function()
    package.loaded["gust.template"], package.preload["gust.template"] = saved_loaded, saved_preload
  end)

  it("fails clearly without gust.template", function()
    package.loaded["gust.template"] = nil
    package.preload["gust.template"] = function() error("module 'gust.template' not found") end
    local H = handler({ get = function(self) self:render("x.html", {}) end })
    local req = fetch(app_with(H), "GET", "/")
    assert.equal(500, req.response.status)
    assert.truthy(fake.find_log("error", "needs the gust.template module"))
  end)

  it("loads templates through gust.template's Loader", function()
    local loaded = {}
    package.loaded["gust.template"] = {
      Loader = function(path)
        return { load = function(_, name)
          loaded[#loaded + 1] = path .. "/" .. name
          return { generate = function(_, ns)
            return "<p>" .. ns.name .. " " .. tostring(ns.handler ~= nil) .. "</p>"
          end }
        end }
      end,
    }
    local H = handler({ get = function(self) self:render("page.html", { name = "N" }) end })
    local req = fetch(app_with(H, { template_path = "/tpl-for-spec" }), "GET", "/")
    assert.equal("<p>N true</p>", req.response.body)
    assert.same({ "/tpl-for-spec/page.html" }, loaded)
  end)
end)

describe("StaticFileHandler", function()
  local lfs = require "lfs"
  local root, content, mtime

  local function write_file(path, data)
    local f = assert(io.open(path, "wb"))
    f:write(data)
    f:close()
  end

  setup(function()
    root = os.tmpname()
    os.remove(root)
    assert(lfs.mkdir(root))
    assert(lfs.mkdir(root .. "/static"))
    assert(lfs.mkdir(root .. "/static/sub"))
    content = "Hello static"
    write_file(root .. "/static/hello.txt", content)
    write_file(root .. "/static/sub/index.html", "<h1>index</h1>")
    write_file(root .. "/static/app.js", "var x = 1;")
    write_file(root .. "/secret.txt", "secret")
    mtime = lfs.attributes(root .. "/static/hello.txt").modification
  end)

  teardown(function()
    os.remove(root .. "/static/hello.txt")
    os.remove(root .. "/static/sub/index.html")
    os.remove(root .. "/static/app.js")
    os.remove(root .. "/static/sub")
    os.remove(root .. "/static")
    os.remove(root .. "/secret.txt")
    os.remove(root)
  end)

  local function app(kwargs, settings)
    kwargs = kwargs or {}
    kwargs.path = kwargs.path or (root .. "/static")
    return web.Application({ { "/s/(.*)", web.StaticFileHandler, kwargs } }, settings)
  end

  it("sends a file with send_file and the right headers", function()
    local req = fetch(app(), "GET", "/s/hello.txt")
    local r = req.response
    assert.equal(200, r.status)
    assert.same({ path = root .. "/static/hello.txt", offset = 0, length = #content }, r.file)
    assert.equal("text/plain", r.headers["Content-Type"])
    assert.equal("bytes", r.headers["Accept-Ranges"])
    assert.equal(string.format('"%x-%x"', #content, mtime), r.headers["Etag"])
    assert.equal(httputil.format_http_date(mtime), r.headers["Last-Modified"])
    assert.is_nil(r.headers["Cache-Control"])
    assert.equal("application/javascript", fetch(app(), "GET", "/s/app.js").response.headers["Content-Type"])
  end)

  it("serves HEAD the same way (the core drops the body)", function()
    local req = fetch(app(), "HEAD", "/s/hello.txt")
    assert.equal(200, req.response.status)
    assert.equal(#content, req.response.file.length)
  end)

  it("never serves outside its root", function()
    local a = app()
    for _, uri in ipairs({
      "/s/../secret.txt", "/s/%2e%2e/secret.txt", "/s/sub/../../secret.txt",
      "/s/..", "/s//etc/passwd", "/s/%2Fetc%2Fpasswd", "/s/hello.txt%00.png",
    }) do
      local req = fetch(a, "GET", uri)
      assert.equal(403, req.response.status, uri)
      assert.is_nil(req.response.file, uri)
    end
    -- "." segments are harmless
    assert.equal(200, fetch(a, "GET", "/s/./sub/./index.html").response.status)
  end)

  it("answers 404 for a missing file and 403 for a directory", function()
    assert.equal(404, fetch(app(), "GET", "/s/nope.txt").response.status)
    assert.equal(403, fetch(app(), "GET", "/s/sub").response.status)
  end)

  it("serves default_filename for directories, redirecting to the slash form", function()
    local a = app({ default_filename = "index.html" })
    local req = fetch(a, "GET", "/s/sub")
    assert.equal(301, req.response.status)
    assert.equal("/s/sub/", req.response.headers["Location"])
    req = fetch(a, "GET", "/s/sub/")
    assert.equal(200, req.response.status)
    assert.equal(root .. "/static/sub/index.html", req.response.file.path)
    assert.equal("text/html", req.response.headers["Content-Type"])
  end)

  it("answers single ranges with 206 and Content-Range", function()
    local function range(h)
      return fetch(app(), "GET", "/s/hello.txt", { headers = { Range = h } }).response
    end
    local r = range("bytes=0-4")
    assert.equal(206, r.status)
    assert.equal("bytes 0-4/12", r.headers["Content-Range"])
    assert.same({ offset = 0, length = 5 }, { offset = r.file.offset, length = r.file.length })
    r = range("bytes=6-")
    assert.equal(206, r.status)
    assert.equal("bytes 6-11/12", r.headers["Content-Range"])
    assert.equal(6, r.file.offset)
    assert.equal(6, r.file.length)
    r = range("bytes=-3")
    assert.equal(206, r.status)
    assert.equal("bytes 9-11/12", r.headers["Content-Range"])
    assert.equal(9, r.file.offset)
    assert.equal(3, r.file.length)
    r = range("bytes=5-100")
    assert.equal(206, r.status)
    assert.equal("bytes 5-11/12", r.headers["Content-Range"])
    assert.equal(7, r.file.length)
    r = range("bytes=-100")
    assert.equal(200, r.status) -- the whole file
    assert.equal(12, r.file.length)
    r = range("bytes=0-")
    assert.equal(200, r.status)
    r = range("bytes=0-1,4-5")
    assert.equal(200, r.status) -- several ranges: the whole file
    r = range("items=0-1")
    assert.equal(200, r.status)
  end)

  it("answers 416 to an unsatisfiable range", function()
    for _, h in ipairs({ "bytes=12-", "bytes=50-60", "bytes=-0", "bytes=5-3" }) do
      local r = fetch(app(), "GET", "/s/hello.txt", { headers = { Range = h } }).response
      assert.equal(416, r.status, h)
      assert.equal("bytes */12", r.headers["Content-Range"], h)
      assert.is_nil(r.file, h)
    end
  end)

  it("answers 304 to a matching If-None-Match", function()
    local etag = fetch(app(), "GET", "/s/hello.txt").response.headers["Etag"]
    for _, inm in ipairs({ etag, "W/" .. etag, '"other", ' .. etag, "*" }) do
      local r = fetch(app(), "GET", "/s/hello.txt", { headers = { ["If-None-Match"] = inm } }).response
      assert.equal(304, r.status, inm)
      assert.is_nil(r.file)
      assert.equal("", r.body)
      assert.equal(etag, r.headers["Etag"])
      assert.is_nil(r.headers["Content-Type"])
    end
    local r = fetch(app(), "GET", "/s/hello.txt", { headers = { ["If-None-Match"] = '"nope"' } }).response
    assert.equal(200, r.status)
    -- If-None-Match wins over If-Modified-Since
    r = fetch(app(), "GET", "/s/hello.txt", { headers = {
      ["If-None-Match"] = '"nope"', ["If-Modified-Since"] = httputil.format_http_date(mtime) } }).response
    assert.equal(200, r.status)
  end)

  it("answers 304 when not modified since", function()
    local function ims(t)
      return fetch(app(), "GET", "/s/hello.txt",
                   { headers = { ["If-Modified-Since"] = httputil.format_http_date(t) } }).response.status
    end
    assert.equal(304, ims(mtime))
    assert.equal(304, ims(mtime + 60))
    assert.equal(200, ims(mtime - 60))
    local r = fetch(app(), "GET", "/s/hello.txt", { headers = { ["If-Modified-Since"] = "garbage" } })
    assert.equal(200, r.response.status)
  end)

  it("is routed by settings.static_path, and static_url adds a cached version", function()
    local urls = {}
    local H = handler({ get = function(self)
      urls = { self:static_url("hello.txt"), self:static_url("hello.txt"),
               self:static_url("missing.txt"), self:static_url("hello.txt", true) }
    end })
    local a = web.Application({ { "/", H } }, { static_path = root .. "/static" })
    local req = fetch(a, "GET", "/static/hello.txt")
    assert.equal(200, req.response.status)
    assert.equal(root .. "/static/hello.txt", req.response.file.path)
    fetch(a, "GET", "/", { headers = { Host = "h:1" } })
    local v = fake.core.hex(fake.core.sha1(content)):sub(1, 8)
    assert.equal("/static/hello.txt?v=" .. v, urls[1])
    assert.equal(urls[1], urls[2])
    assert.equal("/static/missing.txt", urls[3])
    assert.equal("http://h:1/static/hello.txt?v=" .. v, urls[4])
    -- versioned URLs are cacheable for a long time
    req = fetch(a, "GET", "/static/hello.txt?v=" .. v)
    assert.equal("max-age=" .. 86400 * 365 * 10, req.response.headers["Cache-Control"])
    assert.truthy(req.response.headers["Expires"])
  end)

  it("honours static_url_prefix", function()
    local a = web.Application({}, { static_path = root .. "/static", static_url_prefix = "/assets-1.0/" })
    assert.equal(200, fetch(a, "GET", "/assets-1.0/hello.txt").response.status)
    assert.equal(404, fetch(a, "GET", "/assets-1X0/hello.txt").response.status)
  end)

  it("requires static_path for static_url", function()
    fake.clear_logs()
    local H = handler({ get = function(self) self:static_url("x") end })
    assert.equal(500, fetch(app_with(H), "GET", "/").response.status)
    assert.truthy(fake.find_log("error", "static_path"))
  end)

  it("answers 404 when the file goes away before it is sent", function()
    write_file(root .. "/static/brief.txt", "here")
    local Vanishing = web.StaticFileHandler:extend()
    function Vanishing:set_extra_headers()
      self:set_header("X-Extra", "1")
      os.remove(self.absolute_path)
    end
    local a = web.Application({ { "/v/(.*)", Vanishing, { path = root .. "/static" } } })
    local req = fetch(a, "GET", "/v/brief.txt")
    assert.equal(404, req.response.status)
    assert.is_nil(req.response.headers["X-Extra"])
    assert.equal(html_page(404, "Not Found"), req.response.body)
  end)

  it("resolves a relative root against the working directory", function()
    local lfs_cwd = lfs.currentdir()
    assert(lfs.chdir(root))
    local ok, err = pcall(function()
      local a = web.Application({ { "/r/(.*)", web.StaticFileHandler, { path = "static" } } })
      local req = fetch(a, "GET", "/r/hello.txt")
      assert.equal(root .. "/static/hello.txt", req.response.file.path)
      assert.equal(403, fetch(a, "GET", "/r/../secret.txt").response.status)
    end)
    lfs.chdir(lfs_cwd)
    assert(ok, err)
  end)
end)
