-- gust.web.render: render() and render_string() over gust.template's Loader.
-- Runs against a fake gust.core (tests/lua/fake_core.lua).

local helpers = require "web_helpers"
local fake, fetch = helpers.fake, helpers.fetch
local handler, app_with = helpers.handler, helpers.app_with

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
