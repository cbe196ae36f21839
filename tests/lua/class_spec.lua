-- gust.class, and RequestHandler:extend() built on it.
-- Runs against a fake gust.core (tests/lua/fake_core.lua): each request
-- runs app(req, method, path, query) in a coroutine as the core does, and
-- the fake handle records what finish/flush/send_file were given.

local helpers = require "web_helpers"
local web, fetch = helpers.web, helpers.fetch
local class = require "gust.class"

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
