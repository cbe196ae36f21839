-- gust.web.routing and gust.web.application: routes, reverse_url, settings.
-- Runs against a fake gust.core (tests/lua/fake_core.lua): each request
-- runs app(req, method, path, query) in a coroutine as the core does, and
-- the fake handle records what finish/flush/send_file were given.

local helpers = require "web_helpers"
local web, fetch, handler, html_page = helpers.web, helpers.fetch, helpers.handler, helpers.html_page

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

  it("splits PREFIX(CAPTURE)SUFFIX routes without match(), exactly as the pattern would", function()
    local routing = require "gust.web.routing"
    local H = handler({})
    local patterns = { "/hello/([^/]+)", "/static/(.*)", "/a/(.+)", "/u/([^/]+)/edit",
                       "/x/([^/]+)%.json", "^/p%-q/([^/]+)$", "/%((.*)", "/([^/]+)" }
    local paths = { "/hello/you", "/hello/", "/hello/a/b", "/hello/you/", "/static/",
                    "/static/a/b.css", "/a/", "/a/x", "/u/bob/edit", "/u//edit", "/u/a/b/edit",
                    "/x/a.b.json", "/x/.json", "/x/a/b.json", "/p-q/z", "/(abc", "/", "/abc" }
    for _, pattern in ipairs(patterns) do
      local router = routing.Router.new({ ncaps = 0 })
      local spec = router:add({ pattern, H })
      assert.is_not_nil(spec.split, pattern)
      for _, path in ipairs(paths) do
        local found, cap = router:find(path)
        local want = path:match(spec.regex)
        assert.equal(want, found == spec and cap or nil, pattern .. " on " .. path)
      end
    end
    -- Shapes it leaves to match(): a class, an escaped "%" before the
    -- capture, a literal after a rest capture.
    for _, pattern in ipairs({ "/(%d+)", "/%%(.*)", "/a(.*)b", "/a([^/]+)?" }) do
      assert.is_nil(routing.Router.new():add({ pattern, H }).split, pattern)
    end
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
