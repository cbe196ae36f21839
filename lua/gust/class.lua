-- Plain-metatable classes: extend() and is_instance(), nothing global.
--
-- A class is a table that is also the metatable of its instances
-- (cls.__index = cls). Class tables inherit through a separate hidden
-- metatable { __index = base }, so a subclass may replace its own instance
-- __index with a function (RequestHandler does, for the lazy current_user)
-- without changing how methods are found along the class chain.

local _M = { _VERSION = "0.1.0" }

local type, rawget, error = type, rawget, error
local setmetatable, getmetatable = setmetatable, getmetatable

-- Lua reads metamethods with rawget on the instance's metatable, so they are
-- not inherited through __index: a subclass copies its base's once.
local METAMETHODS = {
  "__tostring", "__call", "__eq", "__lt", "__le", "__concat", "__len",
  "__unm", "__add", "__sub", "__mul", "__div", "__mod", "__pow",
  "__newindex", "__gc", "__name",
}

-- Base:extend(proto?) -> subclass. proto, when given, becomes the class
-- table itself (its fields are the subclass's methods).
function _M.extend(base, proto)
  if type(base) ~= "table" then
    error("bad argument #1 to 'extend' (class expected, got " .. type(base) .. ")", 2)
  end
  if proto ~= nil and type(proto) ~= "table" then
    error("bad argument #2 to 'extend' (table expected, got " .. type(proto) .. ")", 2)
  end
  local cls = proto or {}
  for i = 1, #METAMETHODS do
    local m = METAMETHODS[i]
    if rawget(cls, m) == nil then cls[m] = rawget(base, m) end
  end
  cls.__index = cls
  cls.super = base
  -- Constructors written as a __call on the class's own metatable (for
  -- example Application(routes, settings)) carry over to subclasses.
  local base_mt = getmetatable(base)
  return setmetatable(cls, {
    __index = base,
    __call = base_mt and base_mt.__call or nil,
  })
end

-- true when obj is an instance of cls or of one of its subclasses.
function _M.is_instance(obj, cls)
  if type(obj) ~= "table" then return false end
  local c = getmetatable(obj)
  while c ~= nil do
    if c == cls then return true end
    if type(c) ~= "table" then return false end
    c = rawget(c, "super")
  end
  return false
end

return _M
