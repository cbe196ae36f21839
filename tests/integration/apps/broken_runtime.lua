-- Deliberately broken: an error while loading, on line 3.
local core = require "gust.core"
local x = nil + 1
return function(req) req:finish(200, nil, nil, "x") end
