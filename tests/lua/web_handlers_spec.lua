-- gust.web.handlers: ErrorHandler, RedirectHandler, FallbackHandler.
-- Runs against a fake gust.core (tests/lua/fake_core.lua): each request
-- runs app(req, method, path, query) in a coroutine as the core does, and
-- the fake handle records what finish/flush/send_file were given.

local helpers = require "web_helpers"
local web, fetch, html_page = helpers.web, helpers.fetch, helpers.html_page

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
