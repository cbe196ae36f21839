-- Deliberately broken: an error while loading, on line 3.
local core = require "gust.core" -- luacheck: ignore 211
local x = nil + 1 -- luacheck: ignore 211
return function(req) req:finish(200, nil, nil, "x") end
