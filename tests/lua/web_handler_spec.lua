-- gust.web.handler: the RequestHandler life cycle, output, errors and
-- arguments.
-- Runs against a fake gust.core (tests/lua/fake_core.lua): each request
-- runs app(req, method, path, query) in a coroutine as the core does, and
-- the fake handle records what finish/flush/send_file were given.

local helpers = require "web_helpers"
local fake, web, fetch = helpers.fake, helpers.web, helpers.fetch
local handler, app_with, html_page = helpers.handler, helpers.app_with, helpers.html_page

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

  it("escapes request text in what it logs", function()
    local H = handler({
      get = function(_, name) error(web.HTTPError(404, "no page %s", name)) end,
      post = function(_, name) error("cannot post " .. name) end,
    })
    local a = app_with(H, nil, "/p/(.*)")
    fetch(a, "GET", "/p/x%0a[error]%20forged")
    fetch(a, "POST", "/p/y%0d%0a[error]%20forged")
    local warn, err = fake.find_log("warn", "no page"), fake.find_log("error", "cannot post")
    assert.equal("404 GET /p/x%0a[error]%20forged (127.0.0.1): no page x\\x0a[error] forged", warn.msg)
    assert.truthy(err.msg:find("cannot post y\\x0d\\x0a[error] forged\nstack traceback:\n", 1, true))
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
